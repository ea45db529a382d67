"""coinstream verify [TOPIC ...]: prove or disprove delivery from what Kafka holds, by run and seq.

Reads every partition of the topics (default: the configured ticker and book topics) from the
beginning, from --offset N, or from --since (1h, 30m, 2026-12-04T10:00Z), to its end
(records written meanwhile too, until the reading catches up), with a consumer that
joins no group and commits nothing. For each topic, exchange and run (a run numbers its
ticker records and its book records each from 1, on their own topics): the records, the first
and last seq, the seqs missing, the repeats, the seqs out of order within a partition,
and the first and last received_ns; on a topic with message.timestamp.type=LogAppendTime,
also the longest a record waited from its receipt to the log (the delivery stall, in ms).

The tail of a run: a run ends with holes when its worker was killed (SIGKILL) with
records on their way, because partitions are sent independently. A missing seq above
the lowest of the run's last seqs in each partition it wrote to is in that run's tail;
below it, in the middle. A tail is "ended" when a later run of the same exchange was
read (the worker started again, so the missing records can no longer come) or when
--ended says every run has stopped; otherwise it is "open": the run may still be
running and its records on their way, and verify reports them without failing.
A partition that stopped receiving a run's records early (a symbol gone quiet) lowers
that bound, so more of the run's holes count as its tail. Records published after the
last seq Kafka holds for a run leave no trace in Kafka: only the worker's counters
line (records= against delivered=) tells of them.

Seqs below a run's first seq read are missing too, when every partition was read from
its first offset 0. Reading from a later start (or after retention deleted the start),
each partition starts at its own place in the run: a seq below the highest of the
run's first seqs in each partition is then "not read", not missing.

Exit 0 when no record is missing (open tails aside), none is repeated or out of order,
and every record read is one of coinstream's (JSON; one without seq, a dead letter, is
counted apart), 1 otherwise, 2 on a usage error (bad arguments, a topic that does not exist),
69 when Kafka cannot be read, 78 for a bad configuration.
"""

import argparse
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn

import msgspec
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, KafkaError, KafkaException, TopicPartition

from coinstream import cli
from coinstream.table import format_table
from shared import config as configuration
from shared.arguments import OneLineParser
from shared.config import client_settings

EXIT_GAPS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
METADATA_TIMEOUT_S = 10.0
# Give up when no record arrives for this long while partitions are still unread.
STALL_TIMEOUT_S = 30.0
BATCH = 10_000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """A bad argument or a topic that does not exist: exit 2."""


class Unavailable(Exception):
    """Kafka could not be read: exit 69."""


class _Sequenced(msgspec.Struct):
    """The fields an audit needs; a dead letter has no seq (0)."""

    exchange: str = ""
    run: str = ""
    seq: int = 0
    received_ns: int = 0


_decode = msgspec.json.Decoder(_Sequenced).decode
_ZERO_RUNS = re.compile(rb"\x00+")


@dataclass(frozen=True)
class Start:
    """Where each partition is read from: the beginning, an offset, or a time (ms since the epoch)."""

    offset: int | None = None
    since_ms: int | None = None

    def describe(self) -> str:
        if self.since_ms is not None:
            return f"since {_utc(self.since_ms * 1_000_000)}"
        return "the beginning" if self.offset is None else f"offset {self.offset}"


def parse_since(text: str, now_s: float | None = None) -> int:
    """'1h', '30m', '90s', '2d' ago, or an ISO 8601 time (UTC unless it names a zone) -> ms since the epoch."""
    now_s = time.time() if now_s is None else now_s
    duration = _DURATION.match(text)
    if duration:
        return int((now_s - float(duration.group(1)) * _UNITS[duration.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: not a duration (90s, 30m, 1h, 2d) nor an ISO time "
                         f"(2026-12-04T10:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


class RunAudit:
    """One run's records as read: each seq's count in a bytearray indexed from `base`."""

    __slots__ = ("topic", "exchange", "run", "records", "base", "seen", "first_seq", "last_seq", "repeats",
                 "out_of_order", "first_received_ns", "last_received_ns", "first_in_partition", "last_in_partition",
                 "max_wait_ms",
                 "missing", "tail", "tail_ended", "head_unread")

    def __init__(self, exchange: str, run: str, seq: int, topic: str = "") -> None:
        self.topic = topic
        self.exchange = exchange
        self.run = run
        self.base = seq
        self.seen = bytearray(1024)
        # Filled by finish(), with those below:
        self.records = 0
        self.first_seq = seq
        self.last_seq = seq
        self.repeats = 0
        self.out_of_order = 0
        self.first_received_ns = 0
        self.last_received_ns = 0
        self.first_in_partition: dict[int, int] = {}
        self.last_in_partition: dict[int, int] = {}
        # Longest wait from receipt to the log, on LogAppendTime topics (None elsewhere).
        self.max_wait_ms: float | None = None
        self.missing: list[tuple[int, int]] = []
        self.tail: list[tuple[int, int]] = []
        self.tail_ended = False
        self.head_unread = 0

    def index(self, seq: int) -> int:
        """Where seq's count lives in `seen`, growing it (doubling) as needed."""
        at = seq - self.base
        if at < 0:
            grow = min(max(-at, len(self.seen)), self.base - 1)
            self.seen[0:0] = bytes(grow)
            self.base -= grow
            at += grow
        elif at >= len(self.seen):
            self.seen.extend(bytes(max(at + 1 - len(self.seen), len(self.seen))))
        return at

    def finish(self, from_first_offset: bool, ended: bool) -> None:
        """Counts, first and last seq, and the missing ranges between them, split into
        middle and tail (the hot loop only marks each seq seen)."""
        self.first_seq = self.base + self.seen.find(1)
        self.last_seq = self.base + self.seen.rfind(1)
        self.records = len(self.seen) - self.seen.count(0) + self.repeats
        frontier = min(self.last_in_partition.values())
        start = self.first_seq - self.base
        end = self.last_seq - self.base + 1
        first_seq = self.first_seq
        ranges = [(first_seq + hole.start(), first_seq + hole.end() - 1)
                  for hole in _ZERO_RUNS.finditer(memoryview(self.seen)[start:end])]
        if self.first_seq > 1:
            ranges.insert(0, (1, self.first_seq - 1))
        if not from_first_offset:
            head = max(self.first_in_partition.values())
            self.head_unread = sum(last - first + 1 for first, last in ranges if last < head)
            ranges = [(max(first, head), last) for first, last in ranges if last >= head]
        # The frontier is a seq read, so no hole spans it.
        self.missing = [hole for hole in ranges if hole[1] < frontier]
        self.tail = [hole for hole in ranges if hole[0] > frontier]
        self.tail_ended = ended

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    @property
    def tail_count(self) -> int:
        return sum(last - first + 1 for first, last in self.tail)

    @property
    def lost(self) -> int:
        """Records proven missing: the middle, and the tail once the run has ended."""
        return self.missing_count + (self.tail_count if self.tail_ended else 0)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.repeats or self.out_of_order)

    def problems(self) -> list[str]:
        """One line per finding, for people."""
        lines = [f"seq {first}–{last} missing ({last - first + 1:,})" for first, last in self.missing]
        kind = "the run ended (SIGKILL?)" if self.tail_ended else "open: the run may still be sending it"
        lines += [f"tail: seq {first}–{last} missing ({last - first + 1:,}); {kind}" for first, last in self.tail]
        if self.repeats:
            lines.append(f"{self.repeats:,} repeats")
        if self.out_of_order:
            lines.append(f"{self.out_of_order:,} seqs out of order within a partition")
        if self.head_unread:
            lines.append(f"{self.head_unread:,} seqs before the start point not read")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "exchange": self.exchange, "run": self.run, "records": self.records,
            "first_seq": self.first_seq, "last_seq": self.last_seq,
            "missing": [list(hole) for hole in self.missing], "missing_count": self.missing_count,
            "tail": [list(hole) for hole in self.tail], "tail_count": self.tail_count,
            "tail_ended": self.tail_ended, "head_unread": self.head_unread,
            "repeats": self.repeats, "out_of_order": self.out_of_order,
            "first_received_ns": self.first_received_ns, "last_received_ns": self.last_received_ns,
            "max_wait_ms": self.max_wait_ms, "ok": self.ok,
        }


@dataclass
class Report:
    topics: list[str]
    start: Start
    runs: list[RunAudit] = field(default_factory=list)
    records: int = 0  # every message read
    without_seq: int = 0  # dead letters and other records that carry no seq
    undecodable: int = 0
    read_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every run whole, and every record one of coinstream's: a record that is not
        (another producer on the topic, a corrupt one) would stop a consumer too."""
        return self.undecodable == 0 and all(run.ok for run in self.runs)

    def runs_of(self, exchange: str) -> list[RunAudit]:
        return [run for run in self.runs if run.exchange == exchange]

    def as_json(self) -> dict[str, Any]:
        return {"topics": self.topics, "start": self.start.describe(), "records": self.records,
                "without_seq": self.without_seq, "undecodable": self.undecodable,
                "read_s": round(self.read_s, 3), "ok": self.ok, "runs": [run.as_json() for run in self.runs]}

    def text(self) -> list[str]:
        several = len(self.topics) > 1
        header = (*(("TOPIC",) if several else ()), "EXCHANGE", "RUN", "RECORDS", "SEQ", "MISSING", "TAIL", "REPEATS", "OUT OF ORDER",
                  "FIRST RECEIVED", "LAST RECEIVED", "MAX WAIT", "VERDICT")
        rows = [[*((run.topic,) if several else ()), run.exchange, run.run, f"{run.records:,}", f"{run.first_seq}–{run.last_seq}",
                 f"{run.missing_count:,}", f"{run.tail_count:,}" + ("" if run.tail_ended or not run.tail else " open"),
                 f"{run.repeats:,}", f"{run.out_of_order:,}", _utc(run.first_received_ns),
                 _utc(run.last_received_ns), "-" if run.max_wait_ms is None else f"{run.max_wait_ms:,.0f} ms",
                 "ok" if run.ok else "FAILED"] for run in self.runs]
        lines = format_table(header, rows, {column + several for column in (2, 4, 5, 6, 7, 10)})
        for run in self.runs:
            where = f"{run.topic} " if several else ""
            lines += [f"{where}{run.exchange} {run.run}: {problem}" for problem in run.problems()]
        rate = self.records / self.read_s if self.read_s else 0.0
        lines.append(f"{self.records:,} records from {', '.join(self.topics)} ({self.start.describe()}) "
                     f"in {self.read_s:.1f} s ({rate:,.0f}/s); {len(self.runs)} runs; "
                     f"{self.without_seq:,} without seq; {self.undecodable:,} undecodable")
        problems = [*([] if all(run.ok for run in self.runs) else ["records missing, repeated or out of order"]),
                    *([f"{self.undecodable:,} records that are no coinstream record"] if self.undecodable else [])]
        lines.append("verdict: " + ("; ".join(problems) or "every run complete, nothing repeated"))
        return lines


def _utc(ns: int) -> str:
    moment = datetime.fromtimestamp(ns / 1e9, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _partitions(consumer: Consumer, topics: Sequence[str], start: Start) -> tuple[list[TopicPartition], bool]:
    """Where to start in each partition that holds records from there, and whether every start is offset 0."""
    try:
        metadata = consumer.list_topics(timeout=METADATA_TIMEOUT_S).topics
    except KafkaException as error:
        raise Unavailable(f"Kafka unreachable: {error.args[0].str()}") from None
    absent = [topic for topic in topics if topic not in metadata]
    if absent:
        raise UsageError(f"no such topic: {', '.join(absent)}")
    every = [TopicPartition(topic, partition) for topic in topics for partition in sorted(metadata[topic].partitions)]
    try:
        marks = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S)
                 for tp in every}
        if start.since_ms is not None:
            found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, start.since_ms)
                                                for tp in every], timeout=METADATA_TIMEOUT_S)
            # -1: no record that new; nothing to read there.
            offsets = [tp.offset if tp.offset >= 0 else marks[(tp.topic, tp.partition)][1] for tp in found]
        else:
            offsets = [max(low, min(start.offset or 0, high)) for low, high in marks.values()]
    except KafkaException as error:
        raise Unavailable(f"cannot read the partitions' offsets: {error.args[0].str()}") from None
    starts = [TopicPartition(tp.topic, tp.partition, offset) for tp, offset in zip(every, offsets)
              if offset < marks[(tp.topic, tp.partition)][1]]
    return starts, all(offset == 0 for offset in offsets)


def audit(client: dict[str, Any], topics: Sequence[str], start: Start = Start(), ended: bool = False,
          stall_timeout_s: float = STALL_TIMEOUT_S) -> Report:
    """Read `topics` from `start` to their end now and audit every run in them."""
    report = Report(list(topics), start)
    consumer = Consumer({**client_settings(client), "group.id": f"coinstream-verify-{uuid.uuid4().hex}",
                         # Kafka unreachable is one Unavailable line, not librdkafka's retries.
                         "logger": configuration.UNHEARD,
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         # Large fetches, and no pause when the local queue is full (librdkafka's
                         # fetch.queue.backoff.ms is 1 s): 140,000 -> 320,000 records/s read here.
                         "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024,
                         "queued.max.messages.kbytes": 256 * 1024, "fetch.queue.backoff.ms": 0})
    began = time.monotonic()
    try:
        assignment, from_first_offset = _partitions(consumer, topics, start)
        runs = _read(consumer, assignment, report, stall_timeout_s)
    finally:
        consumer.close()
    report.read_s = time.monotonic() - began
    later_run_of = {}
    for run in sorted(runs.values(), key=lambda run: run.first_received_ns):
        later_run_of[run.topic, run.exchange] = run  # the newest run of each exchange in a topic, once sorted
    for run in runs.values():
        run.finish(from_first_offset, ended or later_run_of[run.topic, run.exchange] is not run)
    report.runs = sorted(runs.values(), key=lambda run: (report.topics.index(run.topic) if run.topic in report.topics
                                                         else 0, _exchange_order(run.exchange),
                                                         run.first_received_ns))
    return report


def _read(consumer: Consumer, assignment: list[TopicPartition], report: Report,
          stall_timeout_s: float) -> dict[tuple[str, str], RunAudit]:
    """The hot loop: every message once, decoded into four fields, until each partition's end."""
    runs: dict[tuple[str, str], RunAudit] = {}
    unread = {(tp.topic, tp.partition) for tp in assignment}
    if not unread:
        return runs
    consumer.assign(assignment)
    last_progress = time.monotonic()
    run_id, run_topic, current = "", "", None
    end_of_partition = KafkaError._PARTITION_EOF
    while unread:
        try:
            batch = consumer.consume(num_messages=BATCH, timeout=0.5)
        except KafkaException as error:
            raise Unavailable(f"reading failed: {error.args[0].str()}") from None
        if not batch:
            if time.monotonic() - last_progress > stall_timeout_s:
                raise Unavailable(f"no record for {stall_timeout_s:.0f} s with {len(unread)} partitions "
                                  f"unread: {', '.join(f'{topic}[{partition}]' for topic, partition in unread)}")
            continue
        last_progress = time.monotonic()
        report.records += len(batch)
        for message in batch:
            error = message.error()
            if error is not None:
                report.records -= 1
                if error.code() == end_of_partition:
                    unread.discard((message.topic(), message.partition()))
                continue  # else transient: librdkafka retries
            try:
                record = _decode(message.value())
            except msgspec.DecodeError:
                report.undecodable += 1
                continue
            seq = record.seq
            if not seq:
                report.without_seq += 1
                continue
            topic = message.topic() or ""
            if record.run != run_id or topic != run_topic or current is None:
                run_id, run_topic = record.run, topic
                current = runs.get((topic, run_id))
                if current is None:
                    current = runs[topic, run_id] = RunAudit(record.exchange, run_id, seq, topic)
                    current.first_received_ns = current.last_received_ns = record.received_ns
                    current.max_wait_ms = (-math.inf if message.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME
                                           else None)
            at = seq - current.base
            seen = current.seen
            if at < 0 or at >= len(seen):
                at = current.index(seq)
                seen = current.seen
            if seen[at]:
                current.repeats += 1
            else:
                seen[at] = 1
                # A run's records in this topic: its partition number says where.
                partition = message.partition()
                previous = current.last_in_partition.get(partition, 0)
                if seq > previous:
                    current.last_in_partition[partition] = seq
                    if not previous:
                        current.first_in_partition[partition] = seq
                else:
                    current.out_of_order += 1
            received = record.received_ns
            if received < current.first_received_ns:
                current.first_received_ns = received
            elif received > current.last_received_ns:
                current.last_received_ns = received
            if current.max_wait_ms is not None:
                wait_ms = message.timestamp()[1] - received / 1e6
                if wait_ms > current.max_wait_ms:
                    current.max_wait_ms = wait_ms
    return runs


def _exchange_order(exchange: str) -> int:
    try:
        return configuration.EXCHANGES.index(exchange)
    except ValueError:
        return len(configuration.EXCHANGES)


def _topics(arguments: argparse.Namespace, config: configuration.Config) -> list[str]:
    if arguments.topics:
        return list(dict.fromkeys(arguments.topics))
    return sorted({config.ticker_topic(name) for name in configuration.EXCHANGES}
                  | {config.book_topic(name) for name in configuration.EXCHANGES})


def _start(arguments: argparse.Namespace) -> Start:
    if arguments.since is not None and arguments.offset is not None:
        raise UsageError("give --since or --offset, not both")
    if arguments.offset is not None and arguments.offset < 0:
        raise UsageError(f"--offset {arguments.offset}: must be 0 or more")
    if arguments.since is not None:
        return Start(since_ms=parse_since(arguments.since))
    return Start(offset=arguments.offset)


def _bootstrap_servers(text: str) -> str:
    if not configuration.is_bootstrap_servers(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not {configuration.BOOTSTRAP_SERVERS_FORM}")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream verify", description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to read (default: the ticker and book topics)")
    parser.add_argument("--since", metavar="WHEN", help="from a time: 90s, 30m, 1h, 2d ago, or 2026-12-04T10:00Z")
    parser.add_argument("--offset", metavar="N", type=int, help="from offset N of every partition")
    parser.add_argument("--ended", action="store_true",
                        help="every run has stopped: a run's missing tail counts as lost even with no later run")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    parser.add_argument("--bootstrap", metavar="HOST:PORT", type=_bootstrap_servers,
                        help="Kafka to read (default: the config's)")
    parser.add_argument("--config", metavar="PATH",
                        help=f"override file (default: ${configuration.ENV_OVERRIDE_FILE})")
    arguments = parser.parse_args(argv)

    def fail(code: int, message: str) -> NoReturn:
        cli.fail("coinstream verify", code, message)

    config = cli.config_or_exit("coinstream verify", arguments.config)
    client = client_settings(config.kafka.producer)
    if arguments.bootstrap:
        client["bootstrap.servers"] = arguments.bootstrap
    try:
        report = audit(client, _topics(arguments, config), _start(arguments), arguments.ended)
    except UsageError as error:
        fail(EXIT_USAGE, str(error))
    except Unavailable as error:
        fail(EXIT_UNAVAILABLE, f"{client.get('bootstrap.servers')}: {error}")
    if arguments.json:
        print(json.dumps(report.as_json()))
    else:
        print("\n".join(report.text()))
    if not report.ok:
        sys.exit(EXIT_GAPS)


if __name__ == "__main__":
    main()
