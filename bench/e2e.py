"""Tier 4: a worker process reading the simulator (its own process) and producing to a
real local broker (idempotent, acks=all), read from outside through /proc and the
worker's counters line."""

import os
import re
import subprocess
import time
import urllib.request
from datetime import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared import config as configuration
from shared.stats import LATENCY_BOUNDS_MS
from tests.harness import ROOT, Simulator, WorkerProcess, override_file, topic_size

COUNTERS = re.compile(r"counters frames=(\d+) records=(\d+) .* delivered=(\d+) .*"
                      r"delivery_report_p50_ms(?:<=|=)(\S+) delivery_report_p99_ms(?:<=|=)(\S+)")
CEILING_COUNTS = re.compile(r"ceiling delivered=(\d+)")
WARM_UP_S = 5  # connect, snapshot, first librdkafka batches
MAX_RATE = 1_000_000.0  # frames/s asked of the simulator for "as fast as the reader reads"
# Measured seconds of a run at PACED_CPU_RATE msg/s or less, where the worker's CPU is
# compared with the ceiling's: each side takes ~0.02 core there, and a run of 8 s moved
# from one to the next by a fifth (the same code read 1.00 to 1.36 of the ceiling).
PACED_CPU_RATE = 1_000
PACED_CPU_SECONDS = 20
# Interleaved runs of each side at PACED_CPU_RATE or less: single 20 s runs of the same
# code still spread by a quarter on a shared 2-core VM, so the ratio is of medians of five.
PACED_CPU_RUNS = 5


class EndToEnd(msgspec.Struct):
    records_per_s: float
    # produce() -> the worker serving the delivery report, over the whole measured window,
    # histogram bucket bounds
    delivery_p50_ms: float | None
    delivery_p99_ms: float | None
    # The p99 of the worst second in the window (the counters line's, once a second).
    delivery_p99_worst_second_ms: float | None
    rss_mb: float
    cpu_cores: float
    # The Python thread's share (the event loop: sockets, parsing, produce()); the rest
    # is librdkafka's threads.
    main_thread_cores: float


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds of process `pid`, its ended threads included, in 10 ms clock ticks: for
    the fleet's and the simulators' tenths of a core and more."""
    stat = Path(f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _threads_cpu_ns(pid: int) -> dict[int, int]:
    """Each thread's time on a CPU (ns), from the scheduler's own count
    (/proc/<pid>/task/<tid>/schedstat): /proc's stat counts 10 ms clock ticks, and a side
    at 1,000 msg/s (~0.02 core) earns some 16 of them in 8 s, so that one tick more or
    less moved a CPU ratio by a tenth."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended meanwhile
    return times


def _watch(process: WorkerProcess, pattern: re.Pattern[str], seconds: float) -> tuple[list[Any], float, float, float]:
    """The counter lines `process` logged while watched for `seconds`; its peak RSS MB,
    CPU cores (its threads alive at the end: a thread that ended meanwhile is not
    counted; the worker's and the ceiling's last the whole run), and its Python
    thread's cores."""
    pid = process.process.pid
    cpu0 = _threads_cpu_ns(pid)
    lines0, t0 = len(pattern.findall(process.log())), time.monotonic()
    rss = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        rss.append(_rss_mb(pid))
    cpu1, t1 = _threads_cpu_ns(pid), time.monotonic()
    cores = sum(ns - cpu0.get(tid, 0) for tid, ns in cpu1.items()) / 1e9 / (t1 - t0)
    # The main thread's id is the process id.
    main_cores = (cpu1[pid] - cpu0[pid]) / 1e9 / (t1 - t0)
    return pattern.findall(process.log())[lines0:], max(rss), cores, main_cores


def _delivery_histogram(config: Path, exchange: str) -> list[float]:
    """The worker's delivery-report latency histogram from its /metrics: cumulative counts per bucket."""
    port = yaml.safe_load(config.read_text())["metrics"]["ports"][exchange]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "coinstream_kafka_delivery_report_latency_seconds":
            return [sample.value for sample in family.samples if sample.name.endswith("_bucket")]
    raise RuntimeError(f"{exchange}: no delivery histogram on port {port}")


def _window_percentile_ms(before: list[float], after: list[float], fraction: float) -> float | None:
    """Upper bound (ms) of the bucket holding `fraction` of the deliveries between two scrapes."""
    window = [late - early for early, late in zip(before, after)]
    if not window[-1]:
        return None
    return next(bound for bound, count in zip(LATENCY_BOUNDS_MS, window) if count >= fraction * window[-1])


def _stamped(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` with the time of its log line (the line's first field) captured first."""
    return re.compile(r"^(\S+) .*?" + pattern.pattern, re.MULTILINE)


# Where _stamped(COUNTERS) and _stamped(BOOK_COUNTERS) capture delivered and book_records.
DELIVERED = 3
BOOK_RECORDS = 3


def _per_second_by_time(lines: list[tuple[str, ...]], field: int) -> float:
    """A counter's rate over counters lines captured by _stamped, by the lines' own times:
    a worker starved of CPU writes its once-a-second line late, and counting lines as
    seconds overstated the fleet's records/s on a loaded machine."""
    if len(lines) < 2:
        return 0.0
    first, last = lines[0], lines[-1]
    seconds = (datetime.fromisoformat(last[0]) - datetime.fromisoformat(first[0])).total_seconds()
    return (int(last[field]) - int(first[field])) / seconds


def _per_second(delivered: list[int]) -> float:
    """Records a second from cumulative counts printed once a second."""
    return (delivered[-1] - delivered[0]) / max(len(delivered) - 1, 1)


def shipped_runtime() -> dict[str, Any]:
    """The runtime settings the collector ships with (config/coinstream.yaml), a counters
    line every second. Every scenario measures the product as deployed: in the fleet, the
    tests' quick settings (a 3 s handshake timeout, a 5 s watchdog, REST polled every 0.5 s
    after 2 s unheard, reconnects at most 1 s apart) turned the loaded simulators' slow
    answers into a storm of reconnects and REST polls that kept them loaded, and their
    books never live."""
    return {**yaml.safe_load(configuration.DEFAULT_FILE.read_text())["runtime"], "stats_interval_s": 1}


def end_to_end(exchange: str, rate: float, seconds: float, bootstrap: str, workdir: Path,
               runtime: dict[str, float] | None = None) -> EndToEnd:
    """One run; `runtime` overrides the shipped runtime settings (read_pause_s: 0)."""
    sim = Simulator(workdir, [exchange], rate, markets=50, journal=False, edge_shapes=False)
    config = override_file(workdir, bootstrap, sim.config["exchanges"], {**shipped_runtime(), **(runtime or {})})
    worker = WorkerProcess(exchange, config, workdir)
    try:
        time.sleep(WARM_UP_S)
        histogram = _delivery_histogram(config, exchange)
        window, rss, cpu, main_thread = _watch(worker, COUNTERS, seconds)
        histogram_after = _delivery_histogram(config, exchange)
        p99_each_second = [float(match[4]) for match in window if match[4] != "-"]
        return EndToEnd(_per_second([int(match[2]) for match in window]),
                        _window_percentile_ms(histogram, histogram_after, 0.5),
                        _window_percentile_ms(histogram, histogram_after, 0.99),
                        max(p99_each_second) if p99_each_second else None, rss, cpu, main_thread)
    finally:
        worker.stop()
        sim.stop()


def ceiling(exchange: str, rate: float, seconds: float, bootstrap: str, workdir: Path,
            runtime: dict[str, float] | None = None) -> EndToEnd:
    """bench.ceiling in the worker's place: the bare stack on the same feed and settings."""
    sim = Simulator(workdir, [exchange], rate, markets=50, journal=False, edge_shapes=False)
    config = override_file(workdir, bootstrap, sim.config["exchanges"], {**shipped_runtime(), **(runtime or {})})
    bare = WorkerProcess(exchange, config, workdir, "--exchange", exchange, module="bench.ceiling")
    try:
        time.sleep(WARM_UP_S)
        window, rss, cpu, main_thread = _watch(bare, CEILING_COUNTS, seconds)
        if len(window) < 2 or window[-1] == window[0]:
            raise RuntimeError(f"{exchange}: bench.ceiling delivered nothing while measured; its log:\n"
                               f"{bare.log()[-3000:]}")
        return EndToEnd(_per_second([int(count) for count in window]), None, None, None, rss, cpu, main_thread)
    finally:
        bare.stop()
        sim.stop()


# --- all ten workers at once ------------------------------------------------------------

# Markets per exchange, near each one's whole KRW (Korea), USDT (Asia, Binance) or USD
# (Kraken, Coinbase) universe, and its share of a 20,000 msg/s total: busier venues
# send more. Both are estimates of the live feeds, not measurements of them.
FLEET: dict[str, tuple[int, float]] = {
    "upbit": (230, 0.125), "bithumb": (400, 0.10), "coinone": (300, 0.05), "korbit": (150, 0.05),
    "okx": (300, 0.125), "bybit": (500, 0.125), "gateio": (800, 0.10),
    "binance": (400, 0.20), "kraken": (300, 0.05), "coinbase": (300, 0.075),
}
# Coinbase's snapshot takes one REST call per product, 10 a second (30 s for 300), beside
# its sockets: measure after it. Kraken and Korbit pace their connects a second apart.
FLEET_WARM_UP_S = 45


class FleetRow(msgspec.Struct):
    exchange: str
    markets: int
    offered_per_s: float  # ticker frames
    records_per_s: float  # every record Kafka acknowledged, tickers and books
    cpu_cores: float
    rss_mb: float
    book_offered_per_s: float = 0.0  # book updates, all markets together
    book_records_per_s: float = 0.0
    # The exchange's simulator process, on the same cores: not the worker's, reported apart.
    simulator_cpu_cores: float = 0.0


def fleet(total_rate: float, seconds: float, bootstrap: str, workdir: Path,
          markets_per_connection: dict[str, int], book_rates: dict[str, float] | None = None) -> list[FleetRow]:
    """Every worker at once, each against its own simulator process, `total_rate` msg/s in all;
    the exchanges in `book_rates` collect their books too, at that many updates a second."""
    book_rates = book_rates or {}
    sims, configs, workers = {}, {}, {}
    try:
        for exchange, (markets, share) in FLEET.items():
            connections = -(-markets // markets_per_connection[exchange])
            scratch = workdir / exchange
            scratch.mkdir()
            sims[exchange] = Simulator(scratch, [exchange], total_rate * share / connections, markets, journal=False,
                                       edge_shapes=False)
            section = sims[exchange].config["exchanges"]
            if exchange in book_rates:
                # The simulator's books start at its ticker rate: seed them slowly (book_end_to_end).
                sims[exchange].control(exchange, "book_rate", per_s=SEEDING_RATE)
                section = _book_section(sims[exchange], exchange, BOOK_DEPTH)
                section[exchange]["channels"] = ["ticker", "book"]
            configs[exchange] = override_file(scratch, bootstrap, section, shipped_runtime())
        # Every topic exists before the first worker starts: a fresh broker creating topics
        # while workers connect has kept one from its startup check (exit 69, which
        # supervisord would retry and a benchmark cannot).
        for exchange, config in configs.items():
            workers[exchange] = WorkerProcess(exchange, config, config.parent)
        time.sleep(FLEET_WARM_UP_S)
        # Every book live before any rate goes up: simulators rendering their measured book
        # rates starved a later one's seeding on 2 cores (OKX's sockets went unanswered).
        for exchange in book_rates:
            _until_books_live(workers[exchange])
        for exchange, rate in book_rates.items():
            sims[exchange].control(exchange, "book_rate", per_s=rate)
        time.sleep(WARM_UP_S if book_rates else 0)
        pids = {exchange: worker.process.pid for exchange, worker in workers.items()}
        cpu0 = {exchange: _proc_cpu_s(pid) for exchange, pid in pids.items()}
        sim_cpu0 = {exchange: _proc_cpu_s(sim.process.pid) for exchange, sim in sims.items()}
        counters, book_counters = _stamped(COUNTERS), _stamped(BOOK_COUNTERS)
        lines0 = {exchange: len(counters.findall(worker.log())) for exchange, worker in workers.items()}
        books0 = {exchange: len(book_counters.findall(workers[exchange].log())) for exchange in book_rates}
        t0 = time.monotonic()
        rss: dict[str, list[float]] = {exchange: [] for exchange in pids}
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            for exchange, pid in pids.items():
                rss[exchange].append(_rss_mb(pid))
        elapsed = time.monotonic() - t0
        rows = []
        for exchange, worker in workers.items():
            window = counters.findall(worker.log())[lines0[exchange]:]
            if len(window) < 2:
                raise RuntimeError(f"{exchange}: no counters lines while measured; its log:\n{worker.log()[-3000:]}")
            row = FleetRow(exchange, FLEET[exchange][0], total_rate * FLEET[exchange][1],
                           _per_second_by_time(window, DELIVERED),
                           (_proc_cpu_s(pids[exchange]) - cpu0[exchange]) / elapsed, max(rss[exchange]),
                           simulator_cpu_cores=(_proc_cpu_s(sims[exchange].process.pid) - sim_cpu0[exchange]) / elapsed)
            if exchange in book_rates:
                # book_records counts what was published; the acked share is in delivered above.
                row.book_offered_per_s = book_rates[exchange]
                row.book_records_per_s = _per_second_by_time(book_counters.findall(worker.log())[books0[exchange]:],
                                                             BOOK_RECORDS)
            rows.append(row)
        return rows
    finally:
        for worker in workers.values():
            worker.stop()
        for sim in sims.values():
            sim.stop()


# --- order books ---------------------------------------------------------------------

BOOK_DEPTH = 10
BOOK_E2E_MARKETS = 50
BOOK_RSS_MARKETS = 300
# Book updates a second each simulator sends the RSS run, all its markets together:
# a busy venue's diff stream of 300 markets (Binance pushes each at most every 100 ms).
BOOK_RSS_RATE = 1_000.0


class BookEndToEnd(msgspec.Struct):
    """One book run: the worker's acked records against what the simulator sent it."""

    records_per_s: float  # book records Kafka acknowledged a second
    frames_per_s: float  # book frames the worker read a second (the simulator's output)
    conflated_per_s: float  # of those, messages that left the top N unchanged: no record
    # Changes not applied, their book awaiting its snapshot: a stream behind its REST seed
    # (the simulator queueing more than its socket sends) shows here.
    skipped_per_s: float
    resyncs: int  # books lost and rebuilt while measured (should be 0: no fault asked)
    rss_mb: float
    cpu_cores: float
    main_thread_cores: float
    # The simulator's process: near a core, it is what limits the rate (rendering every
    # update in Python; not so for the bulk ring of whole books, simulator/books.py).
    simulator_cpu_cores: float


BOOK_COUNTERS = re.compile(r"counters frames=\d+ records=\d+ .* delivered=(\d+) .* book_frames=(\d+) "
                           r"book_records=(\d+) book_conflated=(\d+) book_skipped=(\d+) book_resyncs=(\d+)")


def _book_section(sim: Simulator, exchange: str, depth: int) -> dict[str, Any]:
    """The simulator's endpoints for `exchange`, collecting its books alone (no ticker socket)."""
    return {exchange: {**sim.config["exchanges"][exchange], "channels": ["book"], "book_depth": depth}}


BOOKS_LIVE_TIMEOUT_S = 180


def _until_books_live(worker: WorkerProcess, timeout_s: float = BOOKS_LIVE_TIMEOUT_S) -> None:
    """Wait until a second of book frames passes with no change skipped: every book seeded
    from REST (Binance's seeds come one REST call at a time, slower while the simulator is busy)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(1)
        lines = BOOK_COUNTERS.findall(worker.log())
        if len(lines) >= 2 and lines[-1][1] != lines[-2][1] and lines[-1][4] == lines[-2][4]:
            return
    raise RuntimeError(f"{worker.exchange}: books not all live after {timeout_s:.0f} s; its log:\n"
                       f"{worker.log()[-3000:]}")


# Book updates a second while the books are seeded: a REST seed is the book now, so a
# stream queued behind it (a simulator sending more than its socket carries) would never
# catch up with it; the rate measured is set once every book is live.
SEEDING_RATE = 200.0


@contextmanager
def _books_live(exchange: str, rate: float, markets: int, depth: int, bootstrap: str,
                workdir: Path) -> Iterator[tuple[Simulator, WorkerProcess]]:
    """The simulator and a worker collecting the books of `markets` markets alone, every
    book seeded (at SEEDING_RATE), then `rate` updates a second, warmed up; stopped after."""
    sim = Simulator(workdir, [exchange], SEEDING_RATE, markets=markets, journal=False, edge_shapes=False)
    config = override_file(workdir, bootstrap, _book_section(sim, exchange, depth), shipped_runtime())
    worker = WorkerProcess(exchange, config, workdir)
    try:
        _until_books_live(worker)
        sim.control(exchange, "book_rate", per_s=rate)
        time.sleep(WARM_UP_S)
        yield sim, worker
    finally:
        worker.stop()
        sim.stop()


def book_end_to_end(exchange: str, rate: float, seconds: float, bootstrap: str, workdir: Path,
                    markets: int = BOOK_E2E_MARKETS, depth: int = BOOK_DEPTH) -> BookEndToEnd:
    """One worker collecting the books of `markets` markets, the simulator sending `rate`
    book updates a second in all (MAX_RATE: as fast as the worker reads; Binance's
    partial-depth pushes from the simulator's bulk ring), acked by Kafka."""
    with _books_live(exchange, rate, markets, depth, bootstrap, workdir) as (sim, worker):
        sim_cpu0, started = _proc_cpu_s(sim.process.pid), time.monotonic()
        window, rss, cpu, main_thread = _watch(worker, BOOK_COUNTERS, seconds)
        sim_cpu = (_proc_cpu_s(sim.process.pid) - sim_cpu0) / (time.monotonic() - started)
        if len(window) < 2:
            raise RuntimeError(f"{exchange}: no book counters while measured; its log:\n{worker.log()[-3000:]}")
        first, last = window[0], window[-1]
        intervals = max(len(window) - 1, 1)  # the counters line comes once a second

        def per_second(index: int) -> float:
            return (int(last[index]) - int(first[index])) / intervals
        return BookEndToEnd(per_second(0), per_second(1), per_second(3), per_second(4),
                            int(last[5]) - int(first[5]), rss, cpu, main_thread, sim_cpu)


RSS_SAMPLE_S = 5


class BookMemory(msgspec.Struct):
    markets: int
    minutes: float
    samples_mb: list[float]  # RSS once every RSS_SAMPLE_S after the warm-up
    records: int  # book records acked meanwhile

    @property
    def growth_mb(self) -> float:
        """The last minute's mean RSS minus the first minute's: flat is near 0."""
        per_minute = max(1, int(60 / RSS_SAMPLE_S))
        head, tail = self.samples_mb[:per_minute], self.samples_mb[-per_minute:]
        return sum(tail) / len(tail) - sum(head) / len(head)


def book_memory(exchange: str, minutes: float, bootstrap: str, workdir: Path, markets: int = BOOK_RSS_MARKETS,
                rate: float = BOOK_RSS_RATE) -> BookMemory:
    """The RSS of one worker keeping the books of `markets` markets for `minutes`."""
    with _books_live(exchange, rate, markets, BOOK_DEPTH, bootstrap, workdir) as (_, worker):
        before = BOOK_COUNTERS.findall(worker.log())
        samples = []
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            time.sleep(RSS_SAMPLE_S)
            samples.append(_rss_mb(worker.process.pid))
        after = BOOK_COUNTERS.findall(worker.log())
        if not before or not after or after[-1][0] == before[-1][0]:
            raise RuntimeError(f"{exchange}: no book records while measured; its log:\n{worker.log()[-3000:]}")
        return BookMemory(markets, minutes, samples, int(after[-1][0]) - int(before[-1][0]))


# --- the peer: cryptofeed on the same feed (bench/peer_cryptofeed.py) -------------------

PEER_SEEDING_S = 20  # cryptofeed seeds a book at its first update, one REST call at a time


class PeerEndToEnd(msgspec.Struct):
    records_per_s: float  # records in the topic a second: acked by Kafka
    rss_mb: float
    cpu_cores: float
    simulator_cpu_cores: float


def peer_end_to_end(python: str, rate: float, seconds: float, bootstrap: str, workdir: Path,
                    markets: int = BOOK_E2E_MARKETS, depth: int = BOOK_DEPTH) -> PeerEndToEnd:
    """cryptofeed (run by `python`, a virtualenv with cryptofeed and aiokafka) keeping the
    Binance books of `markets` markets from the simulator, as book_end_to_end's worker does."""
    sim = Simulator(workdir, ["binance"], SEEDING_RATE, markets=markets, journal=False, edge_shapes=False)
    config = override_file(workdir, bootstrap, _book_section(sim, "binance", depth))
    topic = yaml.safe_load(config.read_text())["topics"]["book"]
    section = sim.config["exchanges"]["binance"]
    log_path = workdir / "cryptofeed.log"
    with open(log_path, "w") as log:
        peer = subprocess.Popen(
            [python, str(ROOT / "bench" / "peer_cryptofeed.py"), "--ws", section["ws_url"].removesuffix("/stream"),
             "--rest", section["rest_url"], "--bootstrap", bootstrap, "--topic", topic,
             "--symbols", ",".join(section["symbols"]), "--depth", str(depth)],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT)  # where cryptofeed writes feedhandler.log
    try:
        time.sleep(PEER_SEEDING_S)
        if topic_size(bootstrap, topic) == 0:
            raise RuntimeError(f"cryptofeed wrote nothing in {PEER_SEEDING_S} s; its log:\n{log_path.read_text()[-3000:]}")
        sim.control("binance", "book_rate", per_s=rate)
        time.sleep(WARM_UP_S)
        pid = peer.pid
        size0, cpu0, sim_cpu0, started = topic_size(bootstrap, topic), _proc_cpu_s(pid), _proc_cpu_s(sim.process.pid), \
            time.monotonic()
        rss = []
        while time.monotonic() - started < seconds:
            time.sleep(1)
            rss.append(_rss_mb(pid))
        size1, cpu1, sim_cpu1 = topic_size(bootstrap, topic), _proc_cpu_s(pid), _proc_cpu_s(sim.process.pid)
        elapsed = time.monotonic() - started
        return PeerEndToEnd((size1 - size0) / elapsed, max(rss), (cpu1 - cpu0) / elapsed, (sim_cpu1 - sim_cpu0) / elapsed)
    finally:
        peer.terminate()
        try:
            peer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            peer.kill()
        sim.stop()
