"""Counters every worker keeps, and the once-a-minute line that reports them."""

import logging
import time
from bisect import bisect_left
from collections import Counter

# Upper bounds (ms) of the delivery-report histogram: produce() to the worker seeing the
# record delivered, that is Kafka's acknowledgement plus the wait for the worker's next
# count of deliveries (shared.sink.KafkaSink.serve_deliveries), timed a batch of records
# (those of one socket read) at a time, from the batch's first. Kafka's own part is
# ack_latency_s, which librdkafka times.
LATENCY_BOUNDS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000, 5000, float("inf"))
_LATENCY_BOUNDS_S = tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS)


class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.records = 0  # ticker records
        self.book_records = 0  # order book records (shared.book_channel)
        self.book_frames = 0  # frames of book sockets
        self.book_ws_records = 0
        self.book_rest_records = 0
        # Book messages that changed nothing in the top N (no record), and changes that
        # came for a book not live (awaiting its snapshot, or lost) and were not applied.
        self.book_conflated = 0
        self.book_skipped = 0
        # Books lost and rebuilt, by reason: gap, checksum, crossed, snapshot_stale.
        self.book_resyncs: Counter[str] = Counter()
        # Records by transport, counted once per frame or REST body (by Worker), for /metrics.
        self.ws_records = 0
        self.rest_records = 0
        self.dead_letters = 0
        self.exchange_errors = 0
        self.timestamps_nulled = 0  # exchange_ts out of range, published as null (shared.record.check_values)
        self.unknown_symbols = 0  # configured markets the exchange does not list or its REST API refuses
        self.reconnects: Counter[str] = Counter()
        self.host_switches = 0  # moves to the alternate host and back (shared.hosts)
        self.rest_polls = 0
        # Ticker fallback answers dropped: their socket's stream was back (Connection.stream_back_since).
        self.rest_skipped = 0
        # Quiet markets refreshed from REST while their socket answers (shared.worker, and
        # shared.book_channel for books): refresh rounds made, and the records they
        # published (also in records or book_records).
        self.refreshes = 0
        self.refreshed = 0
        self.rest_errors = 0
        # GETs sent again at once because a kept-alive connection ended before answering
        # (shared.rest): the server had closed it as idle; not an error of the exchange.
        self.rest_resent = 0
        self.rate_limit_waits = 0
        self.delivered = 0
        # time.monotonic() of the last count that found records Kafka took (of the start,
        # before the first): after each socket read, or the sink's poll loop's pass.
        self.last_delivery_at = time.monotonic()
        self.delivery_failures = 0
        self.spooled = 0
        self.spool_dropped = 0
        self.spool_bytes = 0
        self.spool_records = 0  # in the spool now
        self.spool_inherited = 0  # left in the spool by an earlier run, at the start
        self.producer_replacements = 0  # stuck Kafka producers replaced (shared.sink.STUCK_AFTER_S)
        self.asyncio_tasks = 0  # sampled by the stats reporter, once an interval
        # A produce request's wait to be sent and round trip to Kafka's acknowledgement, p50
        # and p99 in seconds, as librdkafka timed them over its last statistics window in
        # which records were sent (shared.sink.ack_latency_s).
        self.ack_latency_s: tuple[float, float] | None = None
        # Delivery-report latencies since the last report, bucketed (LATENCY_BOUNDS_MS).
        self.latency_counts = [0] * len(LATENCY_BOUNDS_MS)
        # The same buckets since start, never reset: the /metrics histogram.
        self.latency_totals = [0] * len(LATENCY_BOUNDS_MS)
        self.latency_sum_s = 0.0

    def observe_delivery(self, latency_s: float, records: int = 1) -> None:
        """`records` delivered, each `latency_s` after it was handed to the producer."""
        bucket = bisect_left(_LATENCY_BOUNDS_S, latency_s)
        self.latency_counts[bucket] += records
        self.latency_totals[bucket] += records
        self.latency_sum_s += latency_s * records

    def latency_percentile_ms(self, fraction: float) -> float | None:
        """Upper bound of the bucket holding that fraction of deliveries, or None if none."""
        total = sum(self.latency_counts)
        if not total:
            return None
        running = 0
        for bound, count in zip(LATENCY_BOUNDS_MS, self.latency_counts):
            running += count
            if running >= fraction * total:
                return bound
        return LATENCY_BOUNDS_MS[-1]

    def line(self, queue_depth: int) -> str:
        """The counters; '-' where there is nothing to show (no delivery timed this interval)."""
        reconnects = _by_reason(self.reconnects)
        if self.ack_latency_s is None:
            ack_p50 = ack_p99 = "-"
        else:
            ack_p50, ack_p99 = (f"{seconds * 1000:.1f}" for seconds in self.ack_latency_s)
        report_p50, report_p99 = (_at_most(self.latency_percentile_ms(fraction)) for fraction in (0.5, 0.99))
        return (
            f"counters frames={self.frames} records={self.records} "
            f"dead_letters={self.dead_letters} exchange_errors={self.exchange_errors} "
            f"timestamps_nulled={self.timestamps_nulled} unknown_symbols={self.unknown_symbols} "
            f"reconnects={reconnects} host_switches={self.host_switches} "
            f"rest_polls={self.rest_polls} rest_skipped={self.rest_skipped} rest_errors={self.rest_errors} "
            f"rest_resent={self.rest_resent} "
            f"refreshes={self.refreshes} refreshed={self.refreshed} "
            f"rate_limit_waits={self.rate_limit_waits} kafka_queue={queue_depth} "
            f"delivered={self.delivered} delivery_failures={self.delivery_failures} "
            f"spooled={self.spooled} spool_bytes={self.spool_bytes} spool_dropped={self.spool_dropped} "
            f"spool_records={self.spool_records} spool_inherited={self.spool_inherited} "
            f"producer_replacements={self.producer_replacements} "
            f"ack_p50_ms={ack_p50} ack_p99_ms={ack_p99} "
            f"delivery_report_p50_ms{report_p50} delivery_report_p99_ms{report_p99} "
            f"tasks={self.asyncio_tasks}"
            + (f" book_frames={self.book_frames} book_records={self.book_records} "
               f"book_conflated={self.book_conflated} book_skipped={self.book_skipped} "
               f"book_resyncs={_by_reason(self.book_resyncs)}" if self.book_frames or self.book_records else "")
        )

    def report(self, log: logging.Logger, queue_depth: int) -> None:
        """Log the counters line; the latency percentiles cover the time since the last one."""
        log.info(self.line(queue_depth))
        self.latency_counts = [0] * len(LATENCY_BOUNDS_MS)


def _by_reason(counts: Counter[str]) -> str:
    """The total, then each reason's count: 3[gap=2,checksum=1]."""
    total = str(sum(counts.values()))
    if counts:
        total += f"[{','.join(f'{reason}={count}' for reason, count in sorted(counts.items()))}]"
    return total


def _at_most(bound_ms: float | None) -> str:
    """A histogram bucket's upper bound as the line writes it: '<=15', or '=-' for none."""
    return "=-" if bound_ms is None else f"<={bound_ms:g}"
