"""coinstream status: one table of all ten workers, and an exit code for scripts.

For each worker: its supervisord state (XML-RPC over supervisord's unix socket, as
supervisorctl does), and from two scrapes of its Prometheus /metrics `--window`
seconds apart: WebSocket connections up (ticker and book sockets), records/s, age of the
last record, reconnects, Kafka queue depth and delivery failures; and its books: book
records/s, age of the last book record, and books lost and rebuilt (resyncs, by reason
in coinstream_book_resyncs_total), "-" for a worker that collects no books.

A worker is enabled when supervisord.conf starts it (autostart). Exit 1 when any
enabled worker is unhealthy: not RUNNING, metrics unreachable, no connection up, its
last record (of a worker with ticker sockets) or its last book record (of one with book
sockets) older than --max-age, or records waiting for Kafka (queue or spool) with
no delivery for longer than --max-delivery-wait; the HEALTH column says which. Exit 78
for a bad configuration, like the workers (after the supervisord half of the table).

A second table shows the configured topics' health from the cluster's metadata
(coinstream.topic_health): partitions, replicas in sync against the replication factor,
under-replicated partitions; exit 1 too when a topic is missing, has a partition
under-replicated or without a leader, or Kafka cannot be reached.
"""

import configparser
import math
import sys
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from supervisor.options import ClientOptions

from shared import config as configuration
from shared.arguments import OneLineParser, number
from coinstream import topic_health
from coinstream.check import SUPERVISOR_CONF
from coinstream.table import format_table

SCRAPE_TIMEOUT_S = 2.0
# A healthy broker acknowledges within seconds; the worker replaces a producer stuck
# this long while Kafka is up (shared.sink.STUCK_AFTER_S).
DEFAULT_MAX_DELIVERY_WAIT_S = 15.0
SUPERVISORD_UNREACHABLE = "supervisord unreachable"
STATE_UNKNOWN = "?"  # supervisord did not answer
EXIT_UNHEALTHY = 1
EXIT_CONFIG = 78

Labels = dict[str, str]


@dataclass
class Scrape:
    """One reading of a worker's /metrics: every sample, by sample name."""

    at: float  # time.monotonic() when the response arrived
    samples: dict[str, list[tuple[Labels, float]]]

    def total(self, name: str) -> float | None:
        """The sum over every label set, or None when the worker does not export it."""
        values = self.values(name)
        return sum(values) if values else None

    def values(self, name: str) -> list[float]:
        return [value for _, value in self.samples.get(name, [])]


def parse_metrics(text: str, at: float) -> Scrape:
    """Prometheus text exposition -> Scrape; ValueError when it is not that format."""
    samples: dict[str, list[tuple[Labels, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return Scrape(at, samples)


def scrape(url: str | None) -> Scrape | str:
    """The worker's metrics, or why they could not be read."""
    if url is None:
        return "metrics disabled (metrics.ports: 0)"
    try:
        response = requests.get(url, timeout=SCRAPE_TIMEOUT_S)
        response.raise_for_status()
    except requests.RequestException as error:
        return f"metrics unreachable ({type(error).__name__})"
    try:
        return parse_metrics(response.text, time.monotonic())
    except ValueError as error:
        return f"metrics unreadable ({error})"


@dataclass
class WorkerStatus:
    name: str
    enabled: bool
    state: str  # supervisord's state name, or why it is unknown
    first: Scrape | str | None = None
    second: Scrape | str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def connections(self) -> tuple[int, int] | None:
        """(connected, configured) WebSocket connections."""
        if not isinstance(self.second, Scrape):
            return None
        flags = self.second.values("coinstream_ws_connected")
        return sum(1 for flag in flags if flag >= 1), len(flags)

    @property
    def records_per_s(self) -> float | None:
        return self._rate("coinstream_records_total")

    @property
    def book_records_per_s(self) -> float | None:
        return self._rate("coinstream_book_records_total")

    def _rate(self, counter: str) -> float | None:
        if not (isinstance(self.first, Scrape) and isinstance(self.second, Scrape)):
            return None
        before = self.first.total(counter)
        after = self.second.total(counter)
        elapsed = self.second.at - self.first.at
        if before is None or after is None or after < before or elapsed <= 0:
            return None  # a counter that went down means the worker restarted in between
        return (after - before) / elapsed

    @property
    def last_record_age_s(self) -> float | None:
        """Seconds since the newest ticker record on any connection; None when there was none."""
        return self._youngest("coinstream_seconds_since_last_record")

    @property
    def last_book_age_s(self) -> float | None:
        """Seconds since the newest book record on any book connection; None when there was none."""
        return self._youngest("coinstream_seconds_since_last_book")

    def _youngest(self, gauge: str) -> float | None:
        if not isinstance(self.second, Scrape):
            return None
        ages = [age for age in self.second.values(gauge) if math.isfinite(age)]
        return min(ages) if ages else None

    @property
    def undelivered_for_s(self) -> float | None:
        """Seconds without a delivery while records wait for Kafka; None when none wait."""
        if not isinstance(self.second, Scrape):
            return None
        waiting = (self.second.total("coinstream_kafka_queue_depth") or 0) + (
            self.second.total("coinstream_spool_bytes") or 0)
        return self.second.total("coinstream_kafka_seconds_since_last_delivery") if waiting else None

    def assess(self, max_age_s: float, max_delivery_wait_s: float = DEFAULT_MAX_DELIVERY_WAIT_S) -> None:
        if not self.enabled:
            return
        if self.state == STATE_UNKNOWN:
            self.problems.append(SUPERVISORD_UNREACHABLE)
            return
        if self.state != "RUNNING":
            self.problems.append(f"not RUNNING ({self.state})")
            return
        if not isinstance(self.second, Scrape):
            self.problems.append(self.second or "metrics not read")
            return
        connections = self.connections
        if connections is None or connections[0] == 0:
            self.problems.append("no connection up")
        # A worker with book sockets alone (channels: [book]) has no ticker to be late.
        books = self.collects("coinstream_seconds_since_last_book")
        if self.collects("coinstream_seconds_since_last_record") or not books:
            self._check_age("record", self.last_record_age_s, max_age_s)
        if books:
            self._check_age("book", self.last_book_age_s, max_age_s)
        undelivered = self.undelivered_for_s
        if undelivered is not None and undelivered > max_delivery_wait_s:
            self.problems.append(f"kafka: no delivery for {undelivered:.0f} s")

    def _check_age(self, kind: str, age: float | None, max_age_s: float) -> None:
        if age is None:
            self.problems.append(f"no {kind} yet")
        elif age > max_age_s:
            self.problems.append(f"last {kind} {age:.0f} s ago (> {max_age_s:g} s)")

    def collects(self, gauge: str) -> bool:
        """Whether the worker has connections of that kind (each exports its age gauge)."""
        return isinstance(self.second, Scrape) and bool(self.second.values(gauge))

    def row(self) -> list[str]:
        metrics = self.second if isinstance(self.second, Scrape) else None
        connections = self.connections
        rate = self.records_per_s
        age = self.last_record_age_s
        book_rate = self.book_records_per_s
        book_age = self.last_book_age_s
        # Every worker exports the book counters (at 0); only one with book sockets, their ages.
        books = self.collects("coinstream_seconds_since_last_book")
        if not self.enabled:
            health = "disabled"
        else:
            health = "; ".join(self.problems) or "ok"
        return [
            self.name,
            self.state,
            f"{connections[0]}/{connections[1]}" if connections else "-",
            f"{rate:.1f}" if rate is not None else "-",
            f"{age:.1f}s" if age is not None else "-",
            _count(metrics, "coinstream_reconnects_total"),
            _count(metrics, "coinstream_kafka_queue_depth"),
            _count(metrics, "coinstream_kafka_delivery_failures_total"),
            f"{book_rate:.1f}" if books and book_rate is not None else "-",
            f"{book_age:.1f}s" if books and book_age is not None else "-",
            _count(metrics, "coinstream_book_resyncs_total") if books else "-",
            health,
        ]


HEADER = ("WORKER", "STATE", "WS", "REC/S", "LAST REC", "RECONNECTS", "KAFKA QUEUE", "DELIVERY FAILURES",
          "BOOK REC/S", "LAST BOOK", "BOOK RESYNCS", "HEALTH")
NUMERIC_COLUMNS = {2, 3, 4, 5, 6, 7, 8, 9, 10}


def _count(metrics: Scrape | None, name: str) -> str:
    if metrics is None:
        return "-"
    # A counter with no series yet (no reconnect so far) is zero.
    return f"{metrics.total(name) or 0:.0f}"


def enabled_programs(supervisor_conf: Path) -> dict[str, bool]:
    """program name -> whether supervisord starts it (autostart, default true)."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read(supervisor_conf)
    return {section.split(":", 1)[1]: parser.getboolean(section, "autostart", fallback=True)
            for section in parser.sections() if section.startswith("program:")}


def supervisor_states(supervisor_conf: Path) -> dict[str, str] | str:
    """program name -> state name (RUNNING, STOPPED, FATAL...), or why supervisord did not answer."""
    options = ClientOptions()
    options.realize(["-c", str(supervisor_conf)])
    try:
        processes = options.getServerProxy().supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as error:
        return f"supervisord unreachable at {options.serverurl}: {error}"
    return {process["name"]: process["statename"] for process in processes}


def metrics_url(config: configuration.Config, exchange: str) -> str | None:
    """The worker's /metrics address from the config, or None where it serves none."""
    port = config.metrics.ports.get(exchange, 0)
    return f"http://{config.metrics.host}:{port}/metrics" if port else None


def supervised(supervisor_conf: Path) -> list[WorkerStatus]:
    """Every worker with its supervisord state; says on stderr when supervisord did not answer."""
    programs = enabled_programs(supervisor_conf)
    states = supervisor_states(supervisor_conf)
    if isinstance(states, str):
        print(states, file=sys.stderr)
    workers = []
    for name in configuration.EXCHANGES:
        if name not in programs:
            state = "not in conf"
        elif isinstance(states, str):
            state = STATE_UNKNOWN
        else:
            state = states.get(name, "not loaded")
        workers.append(WorkerStatus(name, programs.get(name, False), state))
    return workers


def collect(config: configuration.Config, supervisor_conf: Path, window_s: float,
            max_age_s: float, max_delivery_wait_s: float = DEFAULT_MAX_DELIVERY_WAIT_S) -> list[WorkerStatus]:
    workers = supervised(supervisor_conf)
    urls = [metrics_url(config, worker.name) for worker in workers]
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        first = list(pool.map(scrape, urls))
        time.sleep(window_s)
        second = list(pool.map(scrape, urls))
    for worker, before, after in zip(workers, first, second):
        worker.first, worker.second = before, after
        worker.assess(max_age_s, max_delivery_wait_s)
    return workers


def print_table(workers: list[WorkerStatus]) -> None:
    for line in format_table(HEADER, [worker.row() for worker in workers], NUMERIC_COLUMNS):
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream status", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", help="override file (default: $COINSTREAM_CONFIG)")
    parser.add_argument("--supervisor-conf", metavar="PATH", type=Path, default=SUPERVISOR_CONF,
                        help="supervisord.conf of the running collector (default: the repository's)")
    parser.add_argument("--max-age", metavar="SECONDS", type=number(float, above=0), default=60.0,
                        help="a worker whose last record is older than this is unhealthy (default: 60)")
    parser.add_argument("--max-delivery-wait", metavar="SECONDS", type=number(float, above=0),
                        default=DEFAULT_MAX_DELIVERY_WAIT_S,
                        help="a worker with records waiting for Kafka and no delivery for longer than this "
                             f"is unhealthy (default: {DEFAULT_MAX_DELIVERY_WAIT_S:g})")
    parser.add_argument("--window", metavar="SECONDS", type=number(float, above=0), default=3.0,
                        help="seconds between the two scrapes that give records/s (default: 3)")
    arguments = parser.parse_args(argv)
    if not arguments.supervisor_conf.is_file():
        parser.error(f"--supervisor-conf: {arguments.supervisor_conf}: no such file")
    try:
        config = configuration.load(arguments.config)
    except configuration.ConfigError as error:
        # Without the config there are no metrics addresses; supervisord still has its say.
        print(f"coinstream status: error: {error}", file=sys.stderr)
        workers = supervised(arguments.supervisor_conf)
        for worker in workers:
            worker.second = "metrics not read (configuration error)"
            worker.assess(arguments.max_age, arguments.max_delivery_wait)
        print_table(workers)
        sys.exit(EXIT_CONFIG)
    workers = collect(config, arguments.supervisor_conf, arguments.window, arguments.max_age,
                      arguments.max_delivery_wait)
    print_table(workers)
    print()
    unhealthy_topics = topic_health.show(config)
    unhealthy = [worker.name for worker in workers if worker.problems]
    if unhealthy:
        print(f"unhealthy: {', '.join(unhealthy)}")
    if unhealthy_topics:
        print(f"unhealthy topics: {', '.join(unhealthy_topics)}")
    if unhealthy or unhealthy_topics:
        sys.exit(EXIT_UNHEALTHY)


if __name__ == "__main__":
    main()
