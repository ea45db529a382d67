"""Where records go: Kafka (the product) or stdout (replays, debugging).

A sink stamps each record with the run id and the next sequence number, encodes it
once with a reused msgspec encoder, and hands it on without waiting. Kafka delivery
is asynchronous: librdkafka batches (linger.ms), retries, and reports each record
Kafka did not take through a callback; the event loop serves those and counts the
delivered ones after each socket read, and with a poll() every POLL_INTERVAL_S while
records are pending (KafkaSink.serve).
"""

import asyncio
import logging
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, ThrottleEvent, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from shared.config import Spool as SpoolConfig
from shared.config import client_settings
from shared.log import ThrottleFilter, Throttled
from shared.record import Book, DeadLetter, Ticker
from shared.spool import UNSURE, DiskSpool, SpoolError
from shared.stats import Stats

# The delivery reports' backstop while no socket reads (see serve_deliveries): REST-only
# records wait up to this long for their report. Every wakeup costs (~0.1 ms of CPU on
# a 2-core VM), and an idle worker woke mostly for this loop: it runs this often only
# while records are pending (in librdkafka, the spool, or held for a missing topic),
# and not while socket reads count deliveries (KafkaSink._put_off).
POLL_INTERVAL_S = 0.1
# With nothing pending the loop rests this long, or until a record is handed to the
# producer (then it is back within POLL_INTERVAL_S): what it serves meanwhile is only
# librdkafka's own events (statistics every STATISTICS_INTERVAL_MS, errors, log lines).
IDLE_POLL_INTERVAL_S = 1.0
# librdkafka (2.16) can stay stuck after a broker restart that left a partition without a
# leader for a moment (a single node, or replication factor 1): its queue never moves
# again, even once metadata names the leader (librdkafka issue #5430). Measured against
# the bundled broker: a bare producer stuck after 2 of ~60 restarts and did not recover
# in the 60 and 150 s watched (the second with topic.metadata.refresh.interval.ms at
# 10 s); a worker after 8 of 128, while a healthy one resumes 1-3 s after the broker is
# back. So: with records queued, no delivery report, and a fresh client seeing every
# partition led for STUCK_AFTER_S, the producer is replaced. Probed every
# PROBE_INTERVAL_S while deliveries stand still.
PROBE_INTERVAL_S = 5.0
STUCK_AFTER_S = 15.0
PROBE_TIMEOUT_S = 5.0
# A record the stuck producer sent may be in Kafka with its answer lost. Before a new
# producer sends the stuck one's records again, the topics are read from this long
# before deliveries stopped, for at most WRITTEN_SCAN_TIMEOUT_S, and the records Kafka
# holds already are dropped (see _written_already).
WRITTEN_LOOKBACK_S = 30.0
WRITTEN_SCAN_TIMEOUT_S = 10.0
# At a stop, Kafka keeps the flush budget (runtime.stop_timeout_s) while it takes records,
# holds them back by a quota (a throttled response: it then mutes the connection for the
# throttle time it names, metadata requests too), or, slow, still answers a metadata
# request within BROKER_ANSWER_S each NO_BROKER_S without a delivery; otherwise (down, frozen) the queue goes to the spool at once. Purged
# records come back through their delivery reports some time after purge() (0.1-1 s
# measured): they are waited for up to PURGE_RETURN_S.
NO_BROKER_S = 1.0
BROKER_ANSWER_S = 0.5
PURGE_RETURN_S = 5.0
# Produce errors that mean the topic is not there (deleted, or not yet known again):
# records wait in the spool, and it is tried again, as in an outage.
# A topic deleted, or deleted and created again (a new topic id: records sent to the old
# one are refused with the id errors), is waited for, not refused for good.
TOPIC_MISSING = (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
                 KafkaError.UNKNOWN_TOPIC_ID, KafkaError.INCONSISTENT_TOPIC_ID)
TOPIC_RETRY_S = 2.0
# librdkafka's statistics (statistics.interval.ms, unless the config sets it) time Kafka's
# part of the delivery latency, which the worker's count of deliveries cannot: it sees a
# record delivered at its next count after Kafka's acknowledgement.
STATISTICS_INTERVAL_MS = 10_000
# librdkafka reports only the records Kafka did not take (delivery.report.only.error): a
# Python delivery callback for every record cost ~5k instructions of the worker's ~57k a
# record (bench.profile). The delivered ones are counted from the producer's queue
# instead (_count_deliveries).
DELIVERY_REPORTS = {"delivery.report.only.error": True}
# librdkafka's batch.size when the config sets none.
LIBRDKAFKA_BATCH_SIZE = 1_000_000


class _Window(msgspec.Struct):
    """One of librdkafka's rolling latency windows (µs), as its statistics name them."""

    cnt: int = 0
    p50: int = 0
    p99: int = 0


class _BrokerStatistics(msgspec.Struct):
    # Records put in requests (the window's cnt is all we read: its times are wrong with
    # message.timeout.ms 0 in librdkafka 2.16, librdkafka issue #5555); requests' wait to
    # be sent; their round trip to the broker's answer.
    int_latency: _Window = msgspec.field(default_factory=_Window)
    outbuf_latency: _Window = msgspec.field(default_factory=_Window)
    rtt: _Window = msgspec.field(default_factory=_Window)


class _Statistics(msgspec.Struct):
    brokers: dict[str, _BrokerStatistics] = {}


_statistics = msgspec.json.Decoder(_Statistics)


def ack_latency_s(statistics_json: str) -> tuple[float, float] | None:
    """A produce request's wait to be sent plus its round trip to Kafka's acknowledgement,
    p50 and p99 in seconds (each stage's percentile, summed), the slowest broker's, from
    one librdkafka statistics report; None when no record was sent in its window.

    The batch's wait before that (up to linger.ms) is not in it: librdkafka times it
    (int_latency) wrongly when message.timeout.ms is 0, as coinstream sets it."""
    percentiles = []
    for broker in _statistics.decode(statistics_json).brokers.values():
        if broker.int_latency.cnt:  # records went to this broker in the window
            stages = (broker.outbuf_latency, broker.rtt)
            percentiles.append((sum(stage.p50 for stage in stages) / 1e6, sum(stage.p99 for stage in stages) / 1e6))
    return max(percentiles, key=lambda pair: pair[1], default=None)


class _Sequenced(msgspec.Struct):
    run: str = ""
    seq: int = 0  # dead letters have none
    received_ns: int = 0


_sequenced = msgspec.json.Decoder(_Sequenced)


def _publish_order(record: tuple[str, bytes, bytes]) -> tuple[str, int]:
    """Per topic, the order publish() numbered the records in."""
    topic, _, value = record
    return topic, _sequenced.decode(value).seq


def _identity(topic: str, value: bytes) -> tuple[str, str, int]:
    """A record's topic, run and seq: one record, however many times it is sent (a run
    numbers its ticker and its book records each on their own)."""
    sequenced = _sequenced.decode(value)
    return topic, sequenced.run, sequenced.seq


def _end_wait(waiting: "asyncio.Future[None]") -> None:
    if not waiting.done():
        waiting.set_result(None)


def _not_also_an_error(record: logging.LogRecord) -> bool:
    """False for librdkafka's log line of a broker failure it also hands to error_cb
    (each one logged at ERROR is, rd_kafka_broker_set_error), which _on_error logs."""
    return not (record.levelno >= logging.ERROR and record.getMessage().startswith("FAIL "))


class SinkError(Exception):
    """The sink cannot start (Kafka unreachable, a topic missing): one line, exit non-zero.
    `key` is the config key at fault, whose file the line names (Config.origin)."""

    def __init__(self, message: str, key: tuple[str, ...]) -> None:
        super().__init__(message)
        self.key = key


class Sink(Protocol):
    stats: Stats
    run: str

    def publish(self, tickers: list[Ticker]) -> None: ...
    def publish_book(self, book: Book) -> None: ...
    def dead_letter(self, letter: DeadLetter) -> None: ...
    def queue_depth(self) -> int: ...
    def serve_deliveries(self) -> None: ...
    async def serve(self) -> None: ...
    def close(self, timeout_s: float) -> None: ...


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


class StdoutSink:
    """Records as JSON lines on stdout; dead letters as JSON lines on stderr."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.run = new_run_id()
        self._seq = 0
        self._book_seq = 0
        self._encoder = msgspec.json.Encoder()
        self._out = sys.stdout.buffer
        self._err = sys.stderr.buffer

    def publish(self, tickers: list[Ticker]) -> None:
        for ticker in tickers:
            self._seq += 1
            ticker.run = self.run
            ticker.seq = self._seq
            self._out.write(self._encoder.encode(ticker) + b"\n")
        self.stats.records += len(tickers)

    def publish_book(self, book: Book) -> None:
        self._book_seq += 1
        book.run = self.run
        book.seq = self._book_seq
        self._out.write(self._encoder.encode(book) + b"\n")
        self.stats.book_records += 1

    def dead_letter(self, letter: DeadLetter) -> None:
        letter.run = self.run
        self._err.write(b"dead-letter " + self._encoder.encode(letter) + b"\n")
        self._err.flush()
        self.stats.dead_letters += 1

    def queue_depth(self) -> int:
        return 0

    def serve_deliveries(self) -> None:
        """Nothing to serve: a line on stdout is written at once, never reported later."""

    async def serve(self) -> None:
        while True:
            self._out.flush()
            await asyncio.sleep(0.2)

    def close(self, timeout_s: float) -> None:
        self._out.flush()


class KafkaSink:
    def __init__(
        self,
        producer_config: dict[str, str | int | float | bool],
        ticker_topic: str,
        dead_letter_topic: str,
        spool: SpoolConfig,
        exchange: str,
        stats: Stats,
        log: logging.Logger,
        book_topic: str | None = None,
    ) -> None:
        self.stats = stats
        self.run = new_run_id()
        self._log = log
        self._throttled = Throttled(log)
        self._bootstrap = producer_config.get("bootstrap.servers")
        self._ticker_topic = ticker_topic
        self._dead_letter_topic = dead_letter_topic
        self._book_topic = book_topic
        # Every topic the sink writes to, for the readiness checks.
        self._topics = [topic for topic in (ticker_topic, dead_letter_topic, book_topic) if topic]
        self._undelivered_path = Path(spool.dir) / f"{exchange}.undelivered.jsonl"
        self._authentication_error: str | None = None  # the latest, from error_cb
        self._quiet = False  # error_cb records but does not log (check_ready)
        self._seq = 0
        self._book_seq = 0  # book records are numbered on their own
        self._encoder = msgspec.json.Encoder()
        self._encode = self._encoder.encode
        # Tickers are encoded into this one buffer, which keeps its size, and copied out:
        # encode() grows a new one from a few bytes each record (~500 instructions more).
        self._buffer = bytearray(1024)
        self._keys: dict[str, bytes] = {}
        try:
            self._spool = DiskSpool(Path(spool.dir), exchange, spool.max_mb * 1024 * 1024, spool.when_full,
                                    stats, log)
        except SpoolError as error:
            raise SinkError(str(error), ("kafka", "spool", "dir")) from None
        stats.spool_inherited = self._spool.inherited
        self._purged: list[tuple[str, bytes, bytes]] = []
        self._unsure: set[tuple[str, str, int]] = set()  # purged in flight (topic, run, seq): Kafka may hold them
        # Records of a topic Kafka says is gone, held until the queue is empty (see _retry_missing_topic).
        self._topic_missing: list[tuple[str, bytes, bytes]] = []
        self._topic_missing_since: float | None = None  # while set, records go to the spool
        self._topic_missing_logged_at: float | None = None  # the first failure of this absence
        self._topic_retry_at = 0.0
        self._throttled_until = 0.0  # a broker's quota holds records back until then (throttle_cb)
        # librdkafka logs through Python logging, throttled, instead of raw to stderr.
        kafka_log = logging.getLogger("coinstream.kafka")
        kafka_log.addFilter(_not_also_an_error)
        kafka_log.addFilter(ThrottleFilter(log))
        self._client_config = {**producer_config, "logger": kafka_log}
        # One delivery callback for the producer, not one passed with every produce():
        # ~0.4 µs less a record (no per-message callback reference to parse and hold).
        self._producer_config = {"statistics.interval.ms": STATISTICS_INTERVAL_MS, **self._client_config,
                                 **DELIVERY_REPORTS, "on_delivery": self._on_delivery, "error_cb": self._on_error,
                                 "stats_cb": self._on_statistics, "throttle_cb": self._on_throttle}
        try:
            self._producer = Producer(self._producer_config)
        except KafkaException as error:
            raise SinkError(f"kafka.producer: {error.args[0].str()}", ("kafka", "producer")) from None
        self._new_producer_counts()
        # Progress of deliveries, as serve() last saw it (see STUCK_AFTER_S).
        self._delivered_seen = 0
        self._standing_since = time.monotonic()
        self._next_probe_at = 0.0
        self._cluster_ready_since: float | None = None
        self._replacing = False
        self._unreturned: int | None = None  # at close: records librdkafka did not give back
        # While serve() waits for its next pass: what ends the wait, its timer, and when
        # it fires (time.monotonic()).
        self._waiting: asyncio.Future[None] | None = None
        self._pass_timer: asyncio.TimerHandle | None = None
        self._pass_at = 0.0

    def check_ready(self, timeout_s: float) -> None:
        """Fail fast, in one line, when the cluster or a topic is not there."""
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException as error:
            # Refused credentials look like a broker down to list_topics; error_cb tells
            # them apart. Its errors and librdkafka's log lines are served unlogged: the
            # failure is reported in one line.
            kafka_log = self._client_config["logger"]
            kafka_log.disabled = self._quiet = True
            try:
                self._producer.poll(0)
            finally:
                kafka_log.disabled = self._quiet = False
            if self._authentication_error is not None:
                raise SinkError(f"kafka.producer: Kafka authentication failed at {self._bootstrap}: "
                                f"{self._authentication_error}", ("kafka", "producer")) from None
            raise SinkError(
                f"kafka.producer.bootstrap.servers: Kafka unreachable at {self._bootstrap}: {error.args[0].str()}",
                ("kafka", "producer", "bootstrap.servers"),
            ) from None
        for topic in self._topics:
            if topic not in metadata.topics:
                raise SinkError(
                    f"topics: Kafka topic {topic!r} does not exist: create the topics with "
                    f"'coinstream topics' (coinstream run does this)", ("topics",)
                )
        self._fit_batches_to_topics(timeout_s)

    def _fit_batches_to_topics(self, timeout_s: float) -> None:
        """Keep librdkafka's record batches within what every topic takes (its
        max.message.bytes). Kafka refuses a batch larger than that whole, each record in it
        as too large, though each alone would fit: after an outage, when the backlog goes
        out in full batches, thousands of book records went to undelivered.jsonl. Left as
        configured when Kafka does not tell the topics' settings (no DescribeConfigs right)."""
        admin = AdminClient({**client_settings(self._client_config), "logger": self._client_config["logger"]})
        try:
            limits = {resource.name: int(future.result(timeout_s)["max.message.bytes"].value) for resource, future
                      in admin.describe_configs([ConfigResource("topic", topic) for topic in self._topics],
                                                request_timeout=timeout_s).items()}
        except (KafkaException, TimeoutError, KeyError):
            return
        topic, limit = min(limits.items(), key=lambda item: item[1])
        batch_bytes = int(self._producer_config.get("batch.size", LIBRDKAFKA_BATCH_SIZE))
        if limit >= batch_bytes:
            return
        self._log.warning("kafka: topic %r takes record batches of at most %d bytes (max.message.bytes): "
                          "batches are kept to that (batch.size %d)", topic, limit, batch_bytes)
        self._producer_config["batch.size"] = limit
        self._producer = Producer(self._producer_config)  # nothing was produced yet

    # Hot path: no await, no logging, one encode, one produce. ---------------------

    def publish(self, tickers: list[Ticker]) -> None:
        """Stamp, encode and hand over `tickers` in order: a socket read's, or a REST
        body's. One call for them all, _send's fast case inlined: a Python call costs as
        much as a record's checks (bench.profile)."""
        run, keys, spool = self.run, self._keys, self._spool
        encode_into, buffer = self._encoder.encode_into, self._buffer
        produce, topic = self._producer.produce, self._ticker_topic
        seq = self._seq
        handed = 0
        # Straight to produce() while nothing waits: once a record goes to _send, which may
        # start spooling, every later one goes there too, and _send decides where it goes.
        direct = not (spool.size_bytes or self._replacing or self._topic_missing_since is not None)
        for ticker in tickers:
            seq += 1
            ticker.run = run
            ticker.seq = seq
            key = keys.get(ticker.symbol)
            if key is None:
                key = keys[ticker.symbol] = f"{ticker.exchange}:{ticker.symbol}".encode()
            encode_into(ticker, buffer)
            value = bytes(buffer)
            if direct:
                try:
                    produce(topic, value, key)
                    handed += 1
                    continue
                except (BufferError, KafkaException):
                    direct = False  # the queue full, or refused: _send decides
            self._send(topic, value, key)  # behind what waits already
        self._seq = seq
        self.stats.records += len(tickers)
        if handed:
            self._handed += handed
            if self._handing_since is None:
                self._handing_since = now = time.monotonic()
                if self._waiting is not None and self._pass_at > now + POLL_INTERVAL_S:
                    self._move_pass(now + POLL_INTERVAL_S)  # resting: this record's report is pending

    def publish_book(self, book: Book) -> None:
        self._book_seq += 1
        book.run = self.run
        book.seq = self._book_seq
        key = self._keys.get(book.symbol)
        if key is None:
            key = self._keys[book.symbol] = f"{book.exchange}:{book.symbol}".encode()
        self._send(self._book_topic or "", self._encoder.encode(book), key)
        self.stats.book_records += 1

    def dead_letter(self, letter: DeadLetter) -> None:
        letter.run = self.run
        self._send(self._dead_letter_topic, self._encoder.encode(letter), letter.exchange.encode())
        self.stats.dead_letters += 1

    def _send(self, topic: str, value: bytes, key: bytes) -> None:
        if self._spool or self._replacing or self._topic_missing_since is not None:
            # Keep order: nothing may overtake records already waiting on disk, those of a
            # stuck producer being taken back (_replace_producer), or those of a missing topic.
            self._spool.append(topic, key, value)
            return
        try:
            self._producer.produce(topic, value, key)
        except BufferError:
            # librdkafka's queue is full (Kafka away for long): spill to disk.
            self._spool.append(topic, key, value)
        except KafkaException as error:
            self._produce_refused(error.args[0], (topic, key, value), spool=True)
        else:
            self._handed_one()

    def _handed_one(self) -> None:
        """Count a record produce() took (publish() does the same inline)."""
        self._handed += 1
        if self._handing_since is None:
            self._handing_since = now = time.monotonic()
            if self._waiting is not None and self._pass_at > now + POLL_INTERVAL_S:
                self._move_pass(now + POLL_INTERVAL_S)  # resting: this record's report is pending

    def _produce_refused(self, error: KafkaError, record: tuple[str, bytes, bytes], spool: bool) -> bool:
        """produce() refused the record at once. A missing topic: the record waits (in the
        spool if `spool`), True. Anything else (too large for the broker...): Kafka will
        never take it, so it goes to undelivered.jsonl, False."""
        if error.code() in TOPIC_MISSING:
            self._note_topic_missing(record[0], error)
            if spool:
                self._spool.append(*record)
            return True
        self._undelivered([record], error)
        return False

    def queue_depth(self) -> int:
        if self._unreturned is not None:
            # Closed: librdkafka's count would include an error event arrived since.
            return self._unreturned
        return len(self._producer)

    # Delivery reports: served after each read from the exchange's sockets, and by the
    # poll loop when they are quiet. ------------------------------------------------

    def serve_deliveries(self) -> None:
        """Run the delivery callbacks librdkafka has ready; never blocks.

        Called after every read from a socket: the loop is awake anyway, and a report
        then waits for the next read (at most runtime.read_pause_s while frames come),
        not for a timer. A timer as fast would cost a wakeup (~0.1 ms CPU here) each time.
        """
        self._producer.poll(0)
        self._count_deliveries()

    def _new_producer_counts(self) -> None:
        """Start counting the records of a new producer (see _count_deliveries)."""
        self._handed = 0  # records produce() took
        self._reported = 0  # of them, those reported back (the failures: DELIVERY_REPORTS)
        self._settled = 0  # of them, those counted delivered
        self._handing_since: float | None = None  # time.monotonic() of the first record handed since the last count
        # (records handed in all, when the first of them was), a batch of records per count: what delivery
        # latencies are timed by.
        self._handed_at: deque[tuple[int, float]] = deque()

    def _count_deliveries(self) -> None:
        """Count the records Kafka took since the last count, and time their delivery.

        librdkafka reports only failures, so a record produce() took and the producer no
        longer holds (len(), which counts the reports not yet served as well) was
        delivered: handed - reported - len(). len() also counts other events waiting
        to be served (statistics, errors, logs): that can only make the count lower,
        and it is kept where it was until the count is higher. Each record's delivery
        latency is timed from the first record handed in the same batch (the records
        between two counts: one socket read's) to this count, its batch found by its
        place in produce order (as records are acknowledged in their order per
        partition; a record reported failed shifts that order by one)."""
        handed_at = self._handed_at
        if self._handing_since is not None:
            handed_at.append((self._handed, self._handing_since))
            self._handing_since = None
        settled = self._handed - self._reported - len(self._producer)
        if settled <= self._settled:
            return
        now = time.monotonic()
        stats = self.stats
        stats.delivered += settled - self._settled
        stats.last_delivery_at = now
        timed = self._settled
        while handed_at and timed < settled:
            handed, since = handed_at[0]
            if handed <= settled:
                handed_at.popleft()
            batch = min(handed, settled) - timed
            if batch > 0:
                stats.observe_delivery(now - since, batch)
                timed += batch
        self._settled = settled
        if self._waiting is not None and self._pass_at < now + POLL_INTERVAL_S / 2:
            self._put_off(now)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        # Only failures are reported (DELIVERY_REPORTS): the record left the producer.
        self._reported += 1
        record = (message.topic() or "", message.key() or b"", message.value() or b"")
        if error.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._purged.append(record)  # not refused: we stopped waiting at exit
            if error.code() == KafkaError._PURGE_INFLIGHT:
                self._unsure.add(_identity(record[0], record[2]))
            return
        if error.code() in TOPIC_MISSING:
            self._note_topic_missing(record[0], error)
            self._topic_missing.append(record)
            return
        if error.code() == KafkaError._DESTROY:
            # librdkafka dropped a partition that still queued the record, never sent: its
            # topic was deleted (or deleted and created again). Seen in one CI run of
            # test_a_deleted_topic_is_waited_for_and_nothing_is_lost_or_repeated, where it
            # went to undelivered.jsonl as refused for good. It waits with the missing topic's.
            self._hold_for_missing_topic()
            self._topic_missing.append(record)
            return
        # Kafka refused the record for good (too large...): keep it on disk.
        self._undelivered([record], error)

    def _undelivered(self, records: list[tuple[str, bytes, bytes]], error: KafkaError) -> None:
        """Records Kafka will never take: to undelivered.jsonl, counted (delivery_failures)."""
        self.stats.delivery_failures += len(records)
        self._throttled.warning(
            "undelivered records", "%d record(s) not delivered (%s); kept in %s", len(records), error.str(),
            self._undelivered_path)
        lines = [msgspec.json.encode({"topic": topic, "key": key.decode(), "value": value.decode(),
                                      "error": error.str()}) + b"\n" for topic, key, value in records]
        try:
            with open(self._undelivered_path, "ab") as undelivered:
                undelivered.writelines(lines)
        except OSError as failure:  # the spool's disk full or read-only: lost, and counted so
            self.stats.delivery_failures -= len(records)
            self.stats.spool_dropped += len(records)
            self._throttled.warning("undelivered records lost", "%d undelivered record(s) could not be kept in %s "
                                    "(%s): dropped, counted in spool_dropped", len(records),
                                    self._undelivered_path, failure.strerror or failure)

    def _hold_for_missing_topic(self) -> None:
        """Hold every record (in the spool, in order) until the missing topic is tried again."""
        if self._topic_missing_since is None:
            self._topic_missing_since = time.monotonic()
            self._topic_retry_at = self._topic_missing_since + TOPIC_RETRY_S

    def _note_topic_missing(self, topic: str, error: KafkaError) -> None:
        self._hold_for_missing_topic()
        if self._topic_missing_logged_at is None:
            self._topic_missing_logged_at = self._topic_missing_since
            self._log.error("kafka: topic %r is missing (%s): records wait in the spool, and it is tried "
                            "every %.0f s until it is back (create it with 'coinstream topics')",
                            topic, error.str(), TOPIC_RETRY_S)

    def _on_statistics(self, statistics_json: str) -> None:
        # A window without records keeps the last figure: an idle worker has no new one.
        self.stats.ack_latency_s = ack_latency_s(statistics_json) or self.stats.ack_latency_s

    def _on_throttle(self, event: ThrottleEvent) -> None:
        self._throttled_until = max(self._throttled_until, time.monotonic() + event.throttle_time)

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            self._authentication_error = error.str()
        if not self._quiet:
            self._throttled.warning("kafka errors", "kafka: %s", error.str())

    async def serve(self) -> None:
        """Serve delivery callbacks, drain the spool and watch for a stuck producer, on a steady cadence."""
        await self._settle_unsure()
        while True:
            self.serve_deliveries()
            if self._topic_missing_since is not None:
                self._retry_missing_topic()
            elif self._spool:
                self._drain_spool()
            self.stats.spool_bytes = self._spool.size_bytes
            self.stats.spool_records = self._spool.records
            await self._replace_producer_if_stuck()
            pending = len(self._producer) or self._spool or self._topic_missing_since is not None or self._replacing
            await self._wait(POLL_INTERVAL_S if pending else IDLE_POLL_INTERVAL_S)

    async def _wait(self, seconds: float) -> None:
        """Until the loop's next pass, `seconds` from now; moved sooner when a record is
        handed while it rests (publish, _handed_one: its report within POLL_INTERVAL_S)
        and later while socket reads count deliveries (_put_off). Moved, the timer: the
        loop is not woken to be put back to sleep."""
        loop = asyncio.get_running_loop()
        self._waiting = waiting = loop.create_future()
        self._pass_at = time.monotonic() + seconds
        self._pass_timer = loop.call_later(seconds, _end_wait, waiting)
        try:
            await waiting
        finally:
            self._pass_timer.cancel()
            self._waiting = self._pass_timer = None

    def _move_pass(self, at: float) -> None:
        """The loop's next pass at `at` (time.monotonic()), while it waits for it."""
        waiting, timer = self._waiting, self._pass_timer
        if waiting is None or timer is None or waiting.done():
            return
        timer.cancel()
        self._pass_at = at
        self._pass_timer = waiting.get_loop().call_later(at - time.monotonic(), _end_wait, waiting)

    def _put_off(self, now: float) -> None:
        """A socket read counted deliveries: the reads serve the reports, so the loop's
        pass is put off to POLL_INTERVAL_S after this one, and once the reads stop, or
        the deliveries do, it comes within POLL_INTERVAL_S as before. At 1,000 msg/s a
        read every 20 ms kept none of its ten passes a second. Moved at most once in half
        the interval (a timer's cost a read flat out), and never while the spool, a
        missing topic or a producer replacement wants the loop's cadence; a producer that
        delivers nothing is never put off, so its check (_replace_producer_if_stuck) runs."""
        if not self._spool and self._topic_missing_since is None and not self._replacing:
            self._move_pass(now + POLL_INTERVAL_S)

    def _retry_missing_topic(self) -> None:
        """Once the producer holds none of the missing topic's records, they go to the
        front of the spool, in order; then the spool is tried every TOPIC_RETRY_S."""
        if len(self._producer):
            return
        if self._topic_missing:
            self._spool.prepend(sorted(self._topic_missing, key=_publish_order))
            self._topic_missing = []
        if time.monotonic() < self._topic_retry_at:
            return
        self._topic_retry_at = time.monotonic() + TOPIC_RETRY_S
        self._topic_missing_since = None
        self._drain_spool()
        if self._topic_missing_since is None and self._topic_missing_logged_at is not None:
            self._log.warning("kafka: the topic is back after %.0f s; sending the spool",
                              time.monotonic() - self._topic_missing_logged_at)
            self._topic_missing_logged_at = None

    async def _settle_unsure(self) -> None:
        """Records an earlier run spooled with their fate unknown (in flight at its stop):
        those Kafka holds already are dropped, the rest sent first. On a thread: reading
        Kafka takes up to WRITTEN_SCAN_TIMEOUT_S; publish() spools behind meanwhile."""
        unsure = self._spool.take_unsure()
        if not unsure:
            return
        self._replacing = True
        try:
            written, complete = await asyncio.to_thread(self._written_already, unsure)
        except BaseException:
            self._spool.prepend(unsure, unsure=True)
            self._replacing = False
            raise
        resend = [record for record in unsure if _identity(record[0], record[2]) not in written]
        self._spool.prepend(resend)
        self._replacing = False
        # Kafka took those it holds: the earlier run counted them among its records.
        self.stats.delivered += len(written)
        self._log.warning(
            "spool: %d records an earlier run sent without an answer: %d found in Kafka already and dropped, "
            "%d to send%s", len(unsure), len(written), len(resend),
            "" if complete else "; Kafka could not be read in full, so a record it holds already may arrive "
                                "twice (drop repeats by run and seq)")

    async def _replace_producer_if_stuck(self) -> None:
        now = time.monotonic()
        if self.stats.delivered != self._delivered_seen or not len(self._producer):
            self._delivered_seen = self.stats.delivered
            self._standing_since = now
            self._cluster_ready_since = None
            return
        if now - self._standing_since < PROBE_INTERVAL_S or now < self._next_probe_at:
            return
        self._next_probe_at = now + PROBE_INTERVAL_S
        # A Kafka outage looks the same from here: only a client of its own tells them apart.
        if not await asyncio.to_thread(self._every_partition_led):
            self._cluster_ready_since = None
            return
        if self._cluster_ready_since is None:
            self._cluster_ready_since = now
        elif now - self._cluster_ready_since >= STUCK_AFTER_S:
            await self._replace_producer(now - self._standing_since)
            # The new producer gets as long as the old one had before it is judged.
            self._standing_since = time.monotonic()
            self._cluster_ready_since = None

    def _every_partition_led(self) -> bool:
        """True when a fresh client sees a leader for every partition of the sink's topics,
        and every leader answers it. Metadata alone is not enough: with two of three nodes
        of a cluster down, no controller is left to elect new leaders, and the survivor
        still names the dead ones (tests/integration/test_cluster.py)."""
        probe = Consumer({**client_settings(self._client_config), "group.id": f"coinstream-probe-{self.run}",
                          "enable.auto.commit": False, "logger": self._client_config["logger"]})
        try:
            metadata = probe.list_topics(timeout=PROBE_TIMEOUT_S)
            topics = [metadata.topics.get(name) for name in self._topics]
            if not all(topic is not None and topic.error is None and topic.partitions
                       and all(partition.leader >= 0 for partition in topic.partitions.values())
                       for topic in topics):
                return False
            # Each partition's offsets come from its leader: an answer proves it serves.
            for topic in topics:
                for partition in topic.partitions:  # type: ignore[union-attr]
                    probe.get_watermark_offsets(TopicPartition(topic.topic, partition),  # type: ignore[union-attr]
                                                timeout=PROBE_TIMEOUT_S)
            return True
        except KafkaException:
            return False
        finally:
            probe.close()

    async def _replace_producer(self, standing_s: float) -> None:
        """Start a new producer and move what the stuck one holds to the front of the spool.

        Taking the records back waits on Kafka (up to a second for those in flight, then
        up to WRITTEN_SCAN_TIMEOUT_S and a few metadata timeouts to read the topics), so
        it runs on a thread. The loop goes on reading the sockets meanwhile, and publish()
        spools behind the records being taken back. A stop meanwhile waits for them.
        """
        stuck, self._producer = self._producer, Producer(self._producer_config)
        # The stuck producer's counts; its failures are reported during the take-back, while
        # the new one is handed nothing (publish() spools while _replacing).
        stuck_handed, stuck_reported, stuck_settled = self._handed, self._reported, self._settled
        self._new_producer_counts()
        self._replacing = True
        taking_back = asyncio.ensure_future(asyncio.to_thread(self._take_back, stuck))
        try:
            await asyncio.shield(taking_back)
        finally:
            # Also when the worker stops meanwhile: the records must reach the spool.
            await asyncio.wait([taking_back])
            if taking_back.exception() is None:
                self._spool.prepend(taking_back.result()[0])
            else:  # a bug: keep every record, even one Kafka may hold, and fail below
                self._spool.prepend(sorted(self._purged, key=_publish_order))
                self._purged = []
            # What the stuck producer took and neither gave back nor holds was delivered.
            stuck_reported += self._reported
            self._reported = 0
            self.stats.delivered += max(0, stuck_handed - stuck_reported - len(stuck) - stuck_settled)
            self._replacing = False
        resend, in_flight, found, complete = taking_back.result()
        # Those Kafka held already were delivered; their reports went with the stuck producer.
        self.stats.delivered += found
        self.stats.producer_replacements += 1
        self._log.error(
            "kafka: no delivery for %.0f s while every partition has a leader: librdkafka is stuck; "
            "%d records moved to the spool (%d were in flight, %d found in Kafka already and dropped) "
            "and a new producer started%s",
            standing_s, len(resend), in_flight, found,
            "" if complete else "; Kafka could not be read in full, so a record it holds already may "
                                "arrive twice (drop repeats by run and seq)")
        self._drain_spool()

    def _take_back(self, stuck: Producer) -> tuple[list[tuple[str, bytes, bytes]], int, int, bool]:
        """The stuck producer's records, oldest first, less those Kafka holds already; how
        many were in flight, how many Kafka held, and whether its topics were read in full.
        On a thread: the stuck producer's delivery callbacks run here, and only here."""
        stuck.purge(in_queue=True, in_flight=False)
        stuck.poll(0)  # the purged records come back through _on_delivery, oldest first
        in_flight = stuck.flush(1)
        if in_flight:
            # Sent, never answered: Kafka may hold them already. Their purge is done by
            # librdkafka's broker threads, so they come back some time after it, not at once:
            # a single poll(0) here lost 1,067 records of a producer stuck on a frozen leader
            # (tests/integration/test_cluster.py). flush() serves them as they come.
            stuck.purge(in_queue=True, in_flight=True)
            if unreturned := stuck.flush(PROBE_TIMEOUT_S):
                self._log.error("kafka: %d records of the stuck producer did not come back from librdkafka "
                                "within %.0f s of their purge and are lost", unreturned, PROBE_TIMEOUT_S)
        # Purged in-flight records come back after the queued ones, which are younger.
        self._purged.sort(key=_publish_order)
        # Also a queued record may be in Kafka already: one sent before the connection was
        # lost and queued again for a retry, which only the old producer id would have
        # let the broker recognise. Measured before this check: 2,097 repeats in a run
        # with 3 replacements, 0 in one with 1.
        written, complete = self._written_already(self._purged)
        resend = [record for record in self._purged if _identity(record[0], record[2]) not in written]
        self._purged = []
        self._unsure.clear()  # checked just now
        return resend, in_flight, len(written), complete

    def _written_already(self, records: list[tuple[str, bytes, bytes]]) -> tuple[set[tuple[str, str, int]], bool]:
        """The topic, run and seq of those `records` that their topics hold already, and
        whether the topics could be read to their end (WRITTEN_SCAN_TIMEOUT_S). Read from
        WRITTEN_LOOKBACK_S before the oldest was received: none was written earlier."""
        # Dead letters have no seq to know them by: they are always sent again.
        sequenced = [_sequenced.decode(value) for _, _, value in records]
        wanted = {(topic, record.run, record.seq) for (topic, _, _), record in zip(records, sequenced) if record.seq}
        if not wanted:
            return set(), True
        since_ms = int(min(record.received_ns for record in sequenced if record.seq) / 1e6
                       - WRITTEN_LOOKBACK_S * 1000)
        consumer = Consumer({**client_settings(self._client_config), "group.id": f"coinstream-check-{self.run}",
                             "enable.auto.commit": False, "logger": self._client_config["logger"]})
        found: set[tuple[str, str, int]] = set()
        try:
            topics = consumer.list_topics(timeout=PROBE_TIMEOUT_S).topics
            asked = [TopicPartition(topic, partition, since_ms) for topic in {topic for topic, _, _ in records}
                     for partition in topics[topic].partitions]
            # The first offset at or after since_ms; a negative one: no record that new.
            starts = [start for start in consumer.offsets_for_times(asked, timeout=PROBE_TIMEOUT_S)
                      if start.offset >= 0]
            ends = [consumer.get_watermark_offsets(start, timeout=PROBE_TIMEOUT_S)[1] for start in starts]
            unread = {(start.topic, start.partition): end for start, end in zip(starts, ends) if start.offset < end}
            consumer.assign([start for start in starts if (start.topic, start.partition) in unread])
            deadline = time.monotonic() + WRITTEN_SCAN_TIMEOUT_S
            while unread and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=10_000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    place = (message.topic() or "", message.partition() or 0)
                    if (message.offset() or 0) + 1 >= unread.get(place, 0):
                        unread.pop(place, None)
                    try:
                        identity = _identity(message.topic() or "", message.value() or b"")
                    except msgspec.DecodeError:
                        continue  # not one of coinstream's records
                    if identity in wanted:
                        found.add(identity)
        except (KafkaException, KeyError):  # KeyError: a topic gone meanwhile
            return found, False
        finally:
            consumer.close()
        return found, not unread

    def _drain_spool(self) -> None:
        spool = self._spool
        while (record := spool.peek()) is not None:
            topic, key, value = record
            if topic.startswith(UNSURE.decode()):
                return  # Kafka may hold it: the next start checks (_settle_unsure) before it is sent
            try:
                self._producer.produce(topic, value, key)
                self._handed_one()
            except BufferError:
                return
            except KafkaException as error:
                if self._produce_refused(error.args[0], record, spool=False):
                    return  # the topic is missing: the record stays first in the spool
            spool.pop()

    def close(self, timeout_s: float) -> None:
        """Flush while Kafka takes records, within timeout_s; what it did not take stays in
        the spool for the next run. Never raises."""
        try:
            self._flush(timeout_s)
        except SpoolError as error:
            self._log.error("%s", error)
        self.stats.spool_bytes = self._spool.size_bytes
        self.stats.spool_records = self._spool.records
        self._spool.close()

    def _broker_answers(self) -> bool:
        """Whether Kafka answers a metadata request within BROKER_ANSWER_S: a broker down
        refuses it, a frozen one never answers it."""
        try:
            self._producer.list_topics(self._ticker_topic, timeout=BROKER_ANSWER_S)
            return True
        except KafkaException:
            return False

    def _flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        answered_at = max(self.stats.last_delivery_at, time.monotonic() - NO_BROKER_S / 2)
        delivered = self.stats.delivered
        # Kafka keeps the budget while it answers; after NO_BROKER_S without an answer it is
        # not there (down, frozen, or the topic gone), and waiting longer only delays the stop.
        while (self._spool or len(self._producer)) and self._topic_missing_since is None:
            now = time.monotonic()
            if now >= deadline:
                break
            if now - max(answered_at, self._throttled_until) >= NO_BROKER_S:
                if not self._broker_answers():
                    break
                answered_at = time.monotonic()  # slow, not away: it keeps the budget
            if self._spool:
                self._drain_spool()
                if not len(self._producer):
                    break  # what is left waits for the next start's check (marked unsure)
            self._producer.flush(min(0.1, deadline - now))
            self._count_deliveries()
            if self.stats.delivered != delivered:
                delivered, answered_at = self.stats.delivered, time.monotonic()
        # Counted once more: the loop's own look at len() may find a record gone that the
        # count before it still saw pending (delivered in between, by librdkafka's thread,
        # with no report: only failures have one), which no count would have seen since.
        self._count_deliveries()
        self._unreturned = 0
        if remaining := len(self._producer):
            # Every record comes back through its delivery report, oldest first per partition,
            # some time after purge(): flush() serves them as they come.
            self._producer.purge(in_queue=True, in_flight=True)
            if unreturned := self._producer.flush(PURGE_RETURN_S):
                self._unreturned = unreturned
                self._log.error("kafka: %d records did not come back from librdkafka within %.0f s of their "
                                "purge and are lost", unreturned, PURGE_RETURN_S)
            self._count_deliveries()  # those Kafka took before the purge
        purged = sorted(self._purged + self._topic_missing, key=_publish_order)
        self._purged, self._topic_missing = [], []
        unsure = [record for record in purged if _identity(record[0], record[2]) in self._unsure]
        self._spool.prepend([record for record in purged if _identity(record[0], record[2]) not in self._unsure])
        # In flight: Kafka may have them, or write them later (a frozen broker resumes).
        self._spool.prepend(unsure, unsure=True)
        if self._spool:
            self._log.error(
                "Kafka did not take %d records (%d bytes) before the stop (%d queued, %d of them sent without "
                "an answer); they stay in the spool and are sent first on the next start, those sent after a "
                "check of Kafka", self._spool.records, self._spool.size_bytes, remaining, len(unsure))
