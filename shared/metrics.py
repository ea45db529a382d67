"""Prometheus /metrics for one worker, read at scrape time.

Nothing here runs per message: the hot path keeps the plain counters of
shared.stats.Stats, and WorkerCollector turns them, and the state of the worker's
connections, into metric families only when Prometheus asks. Labels are the exchange
and, where listed, the connection, reconnect reason or record source: a bounded set,
never a symbol.
"""

import socket
import threading
import time
from collections.abc import Iterator
from itertools import accumulate
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from shared.stats import LATENCY_BOUNDS_MS
from shared.worker import Worker

# (metric name without _total, help, Stats attribute): counters labelled by exchange alone.
EXCHANGE_COUNTERS = (
    ("coinstream_frames", "WebSocket frames received.", "frames"),
    ("coinstream_dead_letters", "Frames or REST bodies that could not be decoded, sent to the dead-letter topic.",
     "dead_letters"),
    ("coinstream_exchange_errors", "Error frames or error responses from the exchange.", "exchange_errors"),
    ("coinstream_timestamps_nulled", "Records whose exchange_ts was out of range, published as null.",
     "timestamps_nulled"),
    ("coinstream_unknown_symbols", "Configured markets the exchange does not list, or its REST API refused.",
     "unknown_symbols"),
    ("coinstream_rest_polls", "REST requests made (snapshots, fallback polls, retries).", "rest_polls"),
    ("coinstream_rest_skipped", "REST fallback tickers dropped: their socket was heard since the round began, or "
     "its new subscription was being answered (the stream's records are newer).", "rest_skipped"),
    ("coinstream_rest_refreshes", "Refreshes of quiet markets from REST while their socket answers.", "refreshes"),
    ("coinstream_rest_refreshed", "Records those refreshes published (a number, or a book's level, had changed).",
     "refreshed"),
    ("coinstream_rest_errors", "REST requests that failed (5xx, timeout, connection error, an answer holding none "
     "of the markets asked for).", "rest_errors"),
    ("coinstream_rest_resent", "GETs sent again at once: a kept-alive connection ended before answering.",
     "rest_resent"),
    ("coinstream_rate_limit_waits", "Waits after HTTP 429/418 from the exchange.", "rate_limit_waits"),
    ("coinstream_host_switches", "Moves between the exchange's host and its alternate host.", "host_switches"),
    ("coinstream_kafka_delivered", "Records and dead letters Kafka acknowledged.", "delivered"),
    ("coinstream_kafka_delivery_failures", "Records Kafka refused for good (kept in the undelivered file).",
     "delivery_failures"),
    ("coinstream_spool_dropped", "Records dropped because the disk spool, or its disk, was full or not writable.",
     "spool_dropped"),
    ("coinstream_kafka_producer_replacements", "Stuck Kafka producers replaced by a new one.",
     "producer_replacements"),
    ("coinstream_book_frames", "Frames received on book sockets.", "book_frames"),
    ("coinstream_book_conflated", "Book messages that changed nothing in the top N: no record.", "book_conflated"),
    ("coinstream_book_skipped", "Book changes not applied: their book was awaiting its snapshot, or lost; "
     "snapshots older than the book kept (Coinone); REST fallback books answered after their socket was heard again, "
     "or while its new subscription was being answered.",
     "book_skipped"),
)
# Every reason a book is lost for (shared.book.LossReason): each is reported from the
# start, at 0, so that an alert on one has a series to watch.
BOOK_LOSS_REASONS = ("gap", "checksum", "crossed", "snapshot_stale")
# The histogram's `le` labels, in seconds, as Prometheus writes them.
_LATENCY_LE = tuple(floatToGoString(bound / 1000) for bound in LATENCY_BOUNDS_MS)


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        worker = self._worker
        stats = worker.stats
        exchange = worker.venue.name
        for name, documentation, attribute in EXCHANGE_COUNTERS:
            yield _of_exchange(CounterMetricFamily(name, documentation, labels=["exchange"]),
                               exchange, getattr(stats, attribute))

        yield _of_exchange(GaugeMetricFamily("coinstream_asyncio_tasks", "Tasks on the worker's event loop.",
                                             labels=["exchange"]), exchange, worker.task_count())

        records = CounterMetricFamily("coinstream_records", "Ticker records published, by transport.",
                                      labels=["exchange", "source"])
        records.add_metric([exchange, "ws"], stats.ws_records)
        records.add_metric([exchange, "rest"], stats.rest_records)
        yield records

        book_records = CounterMetricFamily("coinstream_book_records", "Order book records published, by transport.",
                                           labels=["exchange", "source"])
        book_records.add_metric([exchange, "ws"], stats.book_ws_records)
        book_records.add_metric([exchange, "rest"], stats.book_rest_records)
        yield book_records
        resyncs = CounterMetricFamily("coinstream_book_resyncs", "Books lost and rebuilt, by reason.",
                                      labels=["exchange", "reason"])
        book_resyncs = dict(stats.book_resyncs)
        for reason in BOOK_LOSS_REASONS:
            resyncs.add_metric([exchange, reason], book_resyncs.get(reason, 0))
        yield resyncs

        reconnects = CounterMetricFamily("coinstream_reconnects", "WebSocket reconnects, by reason.",
                                         labels=["exchange", "reason"])
        # dict() copies in one step: the event loop thread may add a reason meanwhile.
        for reason, count in sorted(dict(stats.reconnects).items()):
            reconnects.add_metric([exchange, reason], count)
        yield reconnects

        connected = GaugeMetricFamily("coinstream_ws_connected", "1 while the connection is subscribed and reading.",
                                      labels=["exchange", "connection"])
        silence = GaugeMetricFamily("coinstream_seconds_since_last_record",
                                    "Seconds since the connection's socket last delivered a ticker (+Inf: never).",
                                    labels=["exchange", "connection"])
        heard = GaugeMetricFamily("coinstream_seconds_since_heard",
                                  "Seconds since anything (data, heartbeat, pong) was heard on the connection's "
                                  "socket: its liveness, which a quiet market does not affect.",
                                  labels=["exchange", "connection"])
        for connection in worker.connections:
            labels = [exchange, str(connection.index)]
            connected.add_metric(labels, 1 if connection.connected else 0)
            silence.add_metric(labels, connection.seconds_since_last_record())
            heard.add_metric(labels, connection.seconds_since_heard())
        book_silence = GaugeMetricFamily("coinstream_seconds_since_last_book",
                                         "Seconds since the book connection's socket last delivered a book "
                                         "record (+Inf: never).", labels=["exchange", "connection"])
        for connection in worker.book_connections:
            labels = [exchange, f"book-{connection.index}"]
            connected.add_metric(labels, 1 if connection.connected else 0)
            book_silence.add_metric(labels, connection.seconds_since_last_record())
            heard.add_metric(labels, connection.seconds_since_heard())
        yield connected
        yield silence
        yield heard
        yield book_silence

        yield _of_exchange(GaugeMetricFamily("coinstream_kafka_queue_depth", "Records waiting in librdkafka's queue.",
                                             labels=["exchange"]), exchange, worker.sink.queue_depth())
        yield _of_exchange(GaugeMetricFamily("coinstream_spool_bytes", "Bytes of records waiting in the disk spool.",
                                             labels=["exchange"]), exchange, stats.spool_bytes)
        yield _of_exchange(GaugeMetricFamily("coinstream_spool_records", "Records waiting in the disk spool.",
                                             labels=["exchange"]), exchange, stats.spool_records)
        yield _of_exchange(GaugeMetricFamily("coinstream_spool_inherited_records",
                                             "Records an earlier run left in the disk spool, at this run's start.",
                                             labels=["exchange"]), exchange, stats.spool_inherited)

        yield _of_exchange(GaugeMetricFamily(
            "coinstream_kafka_seconds_since_last_delivery",
            "Seconds since Kafka last acknowledged a record (since the worker started, before the first).",
            labels=["exchange"]), exchange, time.monotonic() - stats.last_delivery_at)
        ack = GaugeMetricFamily("coinstream_kafka_ack_latency_seconds",
                                "A produce request's wait to be sent and round trip to Kafka's acknowledgement, "
                                "as librdkafka times them (percentiles summed, slowest broker) over its last "
                                "statistics window with records; the batch's wait before (up to linger.ms) "
                                "is not included.", labels=["exchange", "quantile"])
        if stats.ack_latency_s is not None:  # none before the first window with records
            for quantile, seconds in zip(("0.5", "0.99"), stats.ack_latency_s):
                ack.add_metric([exchange, quantile], seconds)
        yield ack

        latency = HistogramMetricFamily("coinstream_kafka_delivery_report_latency_seconds",
                                        "produce() to the worker serving Kafka's delivery report: the "
                                        "acknowledgement plus the wait for the worker's next poll of reports "
                                        "(up to runtime.read_pause_s while frames arrive, 0.1 s otherwise).",
                                        labels=["exchange"])
        # Copied first: the delivery callback may add to a bucket while we sum them.
        totals = list(stats.latency_totals)
        latency.add_metric([exchange], list(zip(_LATENCY_LE, accumulate(totals))), stats.latency_sum_s)
        yield latency


def _of_exchange(family: CounterMetricFamily | GaugeMetricFamily, exchange: str, value: float) -> Metric:
    family.add_metric([exchange], value)
    return family


def registry_for(worker: Worker) -> CollectorRegistry:
    """The worker's metrics and its process's (process_resident_memory_bytes, process_cpu_seconds_total...)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(WorkerCollector(worker))
    return registry


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: a scrape is no news (wsgiref writes every request to stderr)."""


def serve(worker: Worker, host: str, port: int) -> None:
    """Serve /metrics from a daemon thread; OSError when the address cannot be bound.

    What prometheus_client's start_http_server does, but for its thread's wait: that
    one polls for a shutdown request twice a second, two wakeups a second of an idle
    worker, and this server is never shut down (a daemon thread, ended with the
    process). Here the thread sleeps until a scrape arrives, or an hour."""
    # The address family of the host, as start_http_server finds it: an IPv6 host too.
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(str(address[0]), port, make_wsgi_app(registry_for(worker)), Server, handler_class=_Quiet)
    # Its wait for a shutdown request, which never comes: an hour, not half a second.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600.0}, name="metrics",
                     daemon=True).start()
