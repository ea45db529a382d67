"""python -m bench: how fast one worker is, stage by stage and end to end.

  python -m bench                          every scenario but book-peer (make bench), about
                                           50 minutes, 20 of them book-rss's
  python -m bench --scenario decode        one scenario (repeatable: several, in that order)
  python -m bench --scenario e2e --exchange upbit --seconds 10 --rates 1000,max

Scenarios, each on the same machine in one run, the naive pipeline on the same frames:
  decode   tiers 1 and 2 for all ten exchanges (bench.tiers): decode + normalize,
           then + serialization; µs per frame, median and range of repeated passes
  produce  tier 3 for all ten: Worker.on_frame with a real KafkaSink to a local broker,
           each call timed (frame receipt -> produce() returned, p50/p99 µs) at a paced
           10,000 msg/s and flat out, and produce -> delivery report; the naive
           pipeline waits for each record's ack
  e2e      tier 4 (bench.e2e): simulator process -> worker process -> broker, for
           Binance, OKX and Upbit at 1,000 and 10,000 msg/s and as fast as the worker
           reads: records/s delivered, delivery latency, RSS, CPU; 3 runs each; and
           Binance at 1,000 msg/s with runtime.read_pause_s 0, the baseline of the pause,
           and with read_pause_s 0.01 and frames_per_read 10, half the pause for more CPU;
           each run followed by the stack's ceiling (bench.ceiling) on the same feed and
           settings, the ratio to it on every row
  fleet    all ten workers at once, each exchange's universe (bench.e2e.FLEET), 20,000
           msg/s in all (--fleet-rate): records/s, CPU and RSS per worker and in total
  verify   coinstream verify reading and auditing 1,000,000 ticker records (bench.verify)
  book     one order book message in-process (bench.book): a Binance @depth20 frame,
           OKX updates of 1-5 levels; µs per message of thread CPU time
  book-e2e simulator process -> Binance worker collecting books alone (top 10 of 50
           markets from @depth10@100ms pushes, its channel for top 10) -> broker, paced
           and flat out (--book-rates): book records/s acked, frames read, worker and
           simulator CPU; flat out, the simulator writes pre-rendered pushes in bulk
  book-rss one worker keeping the books of 300 markets for --book-minutes (10 for the
           target), Binance (whole top-10 pushes) and OKX (400-level books kept from
           changes), or each --exchange: RSS sampled every 5 s, its growth first minute -> last
  book-peer (only when named) the peer of issue 20 §7 beside coinstream in the same run: cryptofeed
           (bench/peer_cryptofeed.py, in a virtualenv of its own: --cryptofeed-python)
           keeping the same simulated Binance books, writing them to the same broker
           with its own Kafka backend; acked records/s and CPU per record of both
The fleet scenario collects the books of every exchange too
(--fleet-book-rate updates/s in all, shared as the tickers are); --fleet-book-rate 0:
tickers only.
A broker is started on free ports unless COINSTREAM_TEST_BOOTSTRAP names one.
Results are printed and written to bench/results/latest.md.
"""

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import confluent_kafka

from bench.book import book_scenario
from bench.e2e import (BOOK_E2E_MARKETS, BOOK_RSS_MARKETS, FLEET, MAX_RATE, PACED_CPU_RATE, PACED_CPU_RUNS,
                       PACED_CPU_SECONDS, BookEndToEnd, PeerEndToEnd, book_end_to_end, book_memory, ceiling,
                       end_to_end, fleet, peer_end_to_end)
from bench.verify import verify_scenario
from bench.tiers import (EXCHANGES, decode_tiers, fresh_venue, median_and_range,
                         naive_produce_us, produce_tier, sample_frames)
from tests.harness import Broker

RESULTS = Path(__file__).parent / "results" / "latest.md"
E2E_EXCHANGES = ("binance", "okx", "upbit")
PRODUCE_RUNS = 3
E2E_RUNS = 3
FLEET_RUNS = 3
PACED_RATE = 10_000.0
PACED_FRAMES = 20_000  # 2 s at 10,000 msg/s
NAIVE_PRODUCE_FRAMES = 100  # each waits for its ack: ~ms apiece


@contextmanager
def broker(scratch: Path) -> Iterator[str]:
    bootstrap = os.environ.get("COINSTREAM_TEST_BOOTSTRAP")
    if bootstrap:
        yield bootstrap
        return
    own = Broker(scratch / "kafka")
    try:
        yield own.start()
    finally:
        own.stop()


Run = TypeVar("Run")


def spread(runs: list[Run], field: Callable[[Run], float | None], digits: int) -> str:
    """Median [min–max] of one field over repeated runs."""
    values = [value for value in map(field, runs) if value is not None]
    if not values:
        return "–"
    return f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f}–{max(values):,.{digits}f}]"


def decode_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    lines = ["## Tiers 1–2: decode + normalize, + serialize (µs per frame; median and range of "
             "5 passes over 2,000 frames, 50 markets)", "",
             "| exchange | stage | median µs | min–max | naive ÷ coinstream |", "|---|---|---|---|---|"]
    for exchange in arguments.exchange:
        stages = decode_tiers(exchange, sample_frames(exchange))
        medians = [statistics.median(timings) for timings in stages.values()]
        # Stages come in pairs: coinstream's tier, then the naive pipeline's same tier.
        ratios = [medians[1] / medians[0], None, medians[3] / medians[2], None]
        for (name, timings), ratio in zip(stages.items(), ratios):
            lines.append(f"| {exchange} | {name} | {median_and_range(timings)} | "
                         f"{'' if ratio is None else f'{ratio:.1f}×'} |")
        print("\n".join(lines[-4:]), flush=True)
    return lines


def produce_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    lines = [f"## Tier 3: Worker.on_frame → KafkaSink → local broker (median of {PRODUCE_RUNS} runs, "
             "range in brackets)", "",
             "frame receipt → produce() returned, per on_frame call; delivery = produce() → delivery "
             "report (histogram bucket bounds, linger.ms 5). Paced: "
             f"{PACED_FRAMES:,} frames at {PACED_RATE:,.0f} msg/s in 1 ms bursts; max: as fast as one "
             "thread calls on_frame. After sleep: the first frame of each paced burst, the "
             "thread having slept since the last. Naive: json + dict + Decimal + json.dumps, one produce, "
             "wait for its ack.",
             "", "| exchange | rate | frames/s | p50 µs | p99 µs | after sleep p50 µs | after sleep p99 µs "
             "| delivery p50 ms ≤ | delivery p99 ms ≤ |",
             "|---|---|---|---|---|---|---|---|---|"]
    with broker(scratch) as bootstrap:
        for exchange in arguments.exchange:
            frames = sample_frames(exchange, PACED_FRAMES)
            for rate in (PACED_RATE, None):
                runs = []
                for number in range(PRODUCE_RUNS):
                    workdir = Path(tempfile.mkdtemp(prefix=f"{exchange}-{number}-", dir=scratch))
                    runs.append(produce_tier(exchange, frames, rate, bootstrap, workdir))

                lines.append(
                    f"| {exchange} | {runs[0].rate} | {spread(runs, lambda run: run.frames_per_s, 0)} | "
                    f"{spread(runs, lambda run: run.p50_us, 1)} | {spread(runs, lambda run: run.p99_us, 1)} | "
                    f"{spread(runs, lambda run: run.first_p50_us, 1)} | "
                    f"{spread(runs, lambda run: run.first_p99_us, 1)} | "
                    f"{spread(runs, lambda run: run.delivery_p50_ms, 1)} | "
                    f"{spread(runs, lambda run: run.delivery_p99_ms, 1)} |")
                print(lines[-1], flush=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"{exchange}-naive-", dir=scratch))
            naive_us = naive_produce_us(frames[:NAIVE_PRODUCE_FRAMES], bootstrap, workdir)
            lines.append(f"| {exchange} | naive, ack each | {1e6 / naive_us:,.0f} | {naive_us:,.0f} (mean) "
                         "| – | – | – | – | – |")
            print(lines[-1], flush=True)
    return lines


def e2e_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    lines = [f"## Tier 4: simulator process → worker process → local Kafka (acks=all, idempotent), "
             f"{arguments.seconds:.0f} s per run after a warm-up ({paced_seconds(arguments):.0f} s at "
             f"{PACED_CPU_RATE:,} msg/s and below); median [min–max] of {E2E_RUNS} runs "
             f"({PACED_CPU_RUNS} at {PACED_CPU_RATE:,} msg/s and below)", "",
             "Delivery report latency: produce() → the worker serving the delivery report (Kafka's ack plus "
             "the wait for its next poll), from the worker's histogram (bucket bounds: 5, 7.5, 10, 15, 20, "
             "30 ms…) over the whole measured window; the worst second's p99 beside it.", "",
             "Each worker run is followed by a run of the stack's ceiling (bench.ceiling) in its place, on "
             "the same feed, broker, librdkafka settings and socket reading (MessageConnection, "
             "read_pause_s): per frame only a decode into eight fields, an encode and a produce with a "
             "delivery callback; no number check, symbol map, full record, seq, spool or counters. "
             "÷ ceiling: the worker's records/s over the ceiling's flat out (target ≥ 0.8), its CPU over "
             "the ceiling's at a paced rate (target ≤ 1.2), medians of the interleaved runs. CPU: each "
             "thread's time on a CPU as the scheduler counts it (/proc/<pid>/task/<tid>/schedstat, ns).", "",
             "| exchange | offered msg/s | delivered records/s | produce→report p50 ms ≤ | p99 ms ≤ | "
             "p99 of the worst second ms ≤ | worker RSS MB | worker CPU cores | of which its Python thread "
             "| ceiling records/s | ceiling CPU cores | ÷ ceiling |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    # The shipped settings, then the same worker reading every frame at once, as a
    # baseline for what runtime.read_pause_s saves at a low rate, and reading 10 frames
    # at a time, what half the added latency costs there.
    cases = [(exchange, rate_text, {}) for exchange in arguments.exchange if exchange in E2E_EXCHANGES
             for rate_text in arguments.rates.split(",")]
    cases += [(exchange, rate_text, runtime) for exchange, rate_text, _ in cases
              if exchange == "binance" and rate_text == "1000"
              for runtime in ({"read_pause_s": 0}, {"read_pause_s": 0.01, "frames_per_read": 10})]
    with broker(scratch) as bootstrap:
        for exchange, rate_text, runtime in cases:
            runs, bare_runs = [], []
            paced = rate_of(rate_text) <= PACED_CPU_RATE
            seconds, cpu_digits = (paced_seconds(arguments), 3) if paced else (arguments.seconds, 2)
            for _ in range(PACED_CPU_RUNS if paced else E2E_RUNS):
                # Interleaved: load from elsewhere on a shared machine hits both sides alike.
                workdir = Path(tempfile.mkdtemp(prefix=f"{exchange}-{rate_text}-", dir=scratch))
                runs.append(end_to_end(exchange, rate_of(rate_text), seconds, bootstrap, workdir, runtime))
                workdir = Path(tempfile.mkdtemp(prefix=f"{exchange}-ceiling-{rate_text}-", dir=scratch))
                bare_runs.append(ceiling(exchange, rate_of(rate_text), seconds, bootstrap, workdir, runtime))
            # Flat out the rates compare; at a paced rate both deliver it, and the CPU compares.
            field = (lambda run: run.records_per_s) if rate_text == "max" else (lambda run: run.cpu_cores)
            ratio = statistics.median(map(field, runs)) / statistics.median(map(field, bare_runs))
            label = rate_text + "".join(f", {key} {value}" for key, value in runtime.items())
            lines.append(f"| {exchange} | {label} | {spread(runs, lambda run: run.records_per_s, 0)} | "
                         f"{spread(runs, lambda run: run.delivery_p50_ms, 1)} | "
                         f"{spread(runs, lambda run: run.delivery_p99_ms, 1)} | "
                         f"{spread(runs, lambda run: run.delivery_p99_worst_second_ms, 1)} | "
                         f"{spread(runs, lambda run: run.rss_mb, 0)} | "
                         f"{spread(runs, lambda run: run.cpu_cores, cpu_digits)} | "
                         f"{spread(runs, lambda run: run.main_thread_cores, cpu_digits)} | "
                         f"{spread(bare_runs, lambda run: run.records_per_s, 0)} | "
                         f"{spread(bare_runs, lambda run: run.cpu_cores, cpu_digits)} | "
                         f"{ratio:.2f} ({'records/s' if rate_text == 'max' else 'CPU'}) |")
            print(lines[-1], flush=True)
    return lines


def paced_seconds(arguments: argparse.Namespace) -> float:
    """Measured seconds of an e2e run at PACED_CPU_RATE msg/s or less: --seconds, and at
    least PACED_CPU_SECONDS."""
    return max(arguments.seconds, PACED_CPU_SECONDS)


def rate_of(rate_text: str) -> float:
    return MAX_RATE if rate_text == "max" else float(rate_text)


def fleet_book_rates(total: float) -> dict[str, float]:
    """Book updates/s of each exchange: `total` shared among them in the proportions of
    their ticker shares (FLEET)."""
    shares = {exchange: share for exchange, (_, share) in FLEET.items()}
    return {exchange: total * share / sum(shares.values()) for exchange, share in shares.items()} if total else {}


def fleet_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    total = arguments.fleet_rate
    book_rates = fleet_book_rates(arguments.fleet_book_rate)
    books = (f" and {arguments.fleet_book_rate:,.0f} book updates/s (top 10 of every market)"
             if book_rates else "")
    lines = [f"## All ten workers at once: {total:,.0f} ticker msg/s in all{books}, each exchange's universe, "
             f"{arguments.seconds:.0f} s after a warm-up; median [min–max] of {FLEET_RUNS} runs", "",
             "Each worker reads its own simulator process and produces to the local broker "
             "(acks=all, idempotent). Markets and shares of the total are estimates of the live feeds "
             "(target: < 1.5 cores in all).",
             "", "| exchange | markets | offered ticker msg/s | offered book updates/s | delivered records/s "
             "| of which book records/s | worker CPU cores | worker RSS MB | simulator CPU cores |",
             "|---|---|---|---|---|---|---|---|---|"]
    per_connection = {exchange: fresh_venue(exchange).markets_per_connection for exchange in FLEET}
    runs = []
    # The simulators and the broker share the workers' cores, and so does any other work
    # on the machine: each run's load average at its start goes with its numbers.
    loads = []
    with broker(scratch) as bootstrap:
        for number in range(FLEET_RUNS):
            workdir = scratch / f"fleet{number}"
            workdir.mkdir()
            loads.append(os.getloadavg()[0])
            runs.append(fleet(total, arguments.seconds, bootstrap, workdir, per_connection, book_rates))
    for rows in zip(*runs):  # one exchange's row from every run
        first = rows[0]
        lines.append(f"| {first.exchange} | {first.markets} | {first.offered_per_s:,.0f} | "
                     f"{first.book_offered_per_s:,.0f} | {spread(list(rows), lambda row: row.records_per_s, 0)} | "
                     f"{spread(list(rows), lambda row: row.book_records_per_s, 0)} | "
                     f"{spread(list(rows), lambda row: row.cpu_cores, 3)} | {spread(list(rows), lambda row: row.rss_mb, 0)} | "
                     f"{spread(list(rows), lambda row: row.simulator_cpu_cores, 3)} |")
    lines.append(f"| **all ten** | {sum(row.markets for row in runs[0]):,} | {total:,.0f} | "
                 f"{sum(book_rates.values()):,.0f} | "
                 f"{spread(runs, lambda run: sum(row.records_per_s for row in run), 0)} | "
                 f"{spread(runs, lambda run: sum(row.book_records_per_s for row in run), 0)} | "
                 f"**{spread(runs, lambda run: sum(row.cpu_cores for row in run), 2)}** | "
                 f"{spread(runs, lambda run: sum(row.rss_mb for row in run), 0)} | "
                 f"{spread(runs, lambda run: sum(row.simulator_cpu_cores for row in run), 2)} |")
    lines += ["", f"Load average at each run's start: {', '.join(f'{load:.1f}' for load in loads)} "
              f"({os.cpu_count()} cores)."]
    print("\n".join(lines[-len(runs[0]) - 3:]), flush=True)
    return lines


BOOK_E2E_EXCHANGE = "binance"
BOOK_RSS_EXCHANGES = ["binance", "okx"]
BOOK_RSS_TARGET_MB = 120


def book_e2e_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    lines = [f"## Order books end to end: simulator process → {BOOK_E2E_EXCHANGE} worker (books alone, "
             f"{BOOK_E2E_MARKETS} markets) → local Kafka (acks=all, idempotent), {arguments.seconds:.0f} s per run "
             f"once every book is live; median [min–max] of {E2E_RUNS} runs", "",
             "The worker reads Binance's partial-depth stream, the least of <symbol>@depth5/10/20@100ms that holds "
             "book_depth levels: each push the complete top N, replacing the book. So book_depth 10 reads "
             "@depth10@100ms pushes, and book_depth 20 reads the @depth20@100ms pushes the target names, each "
             "record then twice the levels (the target's top 10 out of @depth20 frames is not a configuration "
             "the worker has). Acked: book records Kafka acknowledged. Read: book frames the worker read. At "
             "benchmark rates (500 updates/s and more) the simulator writes pushes from a ring of books rendered "
             "once, each with a new lastUpdateId (simulator/books.py _send_bulk), so that the worker, not the "
             "simulator's rendering, sets the rate; below that it renders every update "
             "(target: ≥ 40,000 records/s).", "",
             "| book_depth (stream) | offered updates/s | acked records/s | frames read/s | conflated/s | "
             "skipped/s | resyncs | worker CPU cores | of which its Python thread | worker µs CPU per record | "
             "worker RSS MB | simulator CPU cores |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with broker(scratch) as bootstrap:
        for depth in (int(text) for text in arguments.book_depths.split(",")):
            for rate_text in arguments.book_rates.split(","):
                runs: list[BookEndToEnd] = []
                for _ in range(E2E_RUNS):
                    workdir = Path(tempfile.mkdtemp(prefix=f"book-{depth}-{rate_text}-", dir=scratch))
                    runs.append(book_end_to_end(BOOK_E2E_EXCHANGE, rate_of(rate_text), arguments.seconds,
                                                bootstrap, workdir, depth=depth))
                lines.append(f"| {depth} (@depth{depth}@100ms) | {rate_text} | "
                             f"{spread(runs, lambda run: run.records_per_s, 0)} | "
                             f"{spread(runs, lambda run: run.frames_per_s, 0)} | "
                             f"{spread(runs, lambda run: run.conflated_per_s, 0)} | "
                             f"{spread(runs, lambda run: run.skipped_per_s, 0)} | "
                             f"{sum(run.resyncs for run in runs)} | "
                             f"{spread(runs, lambda run: run.cpu_cores, 3)} | "
                             f"{spread(runs, lambda run: run.main_thread_cores, 3)} | "
                             f"{spread(runs, per_record_us, 1)} | {spread(runs, lambda run: run.rss_mb, 0)} | "
                             f"{spread(runs, lambda run: run.simulator_cpu_cores, 2)} |")
                print(lines[-1], flush=True)
    return lines


def book_rss_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    exchanges = arguments.exchange if arguments.exchanges_named else BOOK_RSS_EXCHANGES
    lines = [f"## RSS of one worker keeping the books of {BOOK_RSS_MARKETS} markets (top 10, tickers off) for "
             f"{arguments.book_minutes:g} min once every book is live, sampled every 5 s "
             f"(target: ≤ {BOOK_RSS_TARGET_MB} MB, flat)", "",
             "| exchange | book records acked | a second | RSS first MB | RSS last MB | RSS max MB | "
             "growth, first minute → last MB |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with broker(scratch) as bootstrap:
        for exchange in exchanges:
            workdir = Path(tempfile.mkdtemp(prefix="book-rss-", dir=scratch))
            memory = book_memory(exchange, arguments.book_minutes, bootstrap, workdir)
            samples = memory.samples_mb
            lines.append(f"| {exchange} | {memory.records:,} | {memory.records / (memory.minutes * 60):,.0f} | "
                         f"{samples[0]:.0f} | {samples[-1]:.0f} | {max(samples):.0f} | {memory.growth_mb:+.1f} |")
            print(lines[-1], flush=True)
    return lines


def book_peer_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    # Absolute, as the peer runs in its own directory; not resolve(): a venv's python is a
    # symlink, and the interpreter it points to would run outside the venv.
    python = str(Path(arguments.cryptofeed_python).absolute())
    if not Path(python).is_file():
        raise SystemExit(f"bench: --cryptofeed-python {python}: no such file; make one with: python3.11 -m venv "
                         ".venv-cryptofeed && .venv-cryptofeed/bin/pip install cryptofeed aiokafka")
    lines = [f"## Order books beside the peer: coinstream and cryptofeed on the same simulated Binance books "
             f"(top 10 of 50 markets: coinstream from the partial-depth stream @depth10@100ms, cryptofeed from "
             f"the diff stream on REST seeds, each its Binance book channel), the same broker, one after the other per "
             f"rate, {arguments.seconds:.0f} s measured; median [min–max] of {E2E_RUNS} runs", "",
             "coinstream: the worker, books alone, records of the changed top 10 only (conflated), idempotent "
             "librdkafka producer, acks=all, batched. cryptofeed "
             f"{version_of(python, 'cryptofeed')} (aiokafka {version_of(python, 'aiokafka')}): its Binance "
             "book (Decimal levels, the lastUpdateId rule), BookKafka with snapshots_only (the top 10 of every "
             "message: no conflation), acks=all, idempotent, each send awaited before the next as its writer "
             "does; adapted to the simulator only in its endpoints, symbol list and subscribe (see "
             "bench/peer_cryptofeed.py). Acked: records in the topic (cryptofeed) or acknowledged (coinstream) "
             "a second. CPU: the whole process, all threads. Target: coinstream ≥ 5× the records/s at equal or "
             "lower CPU per record.", "",
             "| offered updates/s | coinstream records/s | coinstream CPU cores | coinstream µs CPU per record | "
             "cryptofeed records/s | cryptofeed CPU cores | cryptofeed µs CPU per record | records/s ratio |",
             "|---|---|---|---|---|---|---|---|"]
    with broker(scratch) as bootstrap:
        for rate_text in arguments.book_rates.split(","):
            ours: list[BookEndToEnd] = []
            theirs: list[PeerEndToEnd] = []
            for _ in range(E2E_RUNS):
                workdir = Path(tempfile.mkdtemp(prefix=f"peer-{rate_text}-", dir=scratch))
                ours.append(book_end_to_end(BOOK_E2E_EXCHANGE, rate_of(rate_text), arguments.seconds, bootstrap,
                                            workdir))
                workdir = Path(tempfile.mkdtemp(prefix=f"cryptofeed-{rate_text}-", dir=scratch))
                theirs.append(peer_end_to_end(python, rate_of(rate_text), arguments.seconds, bootstrap, workdir))
            ratio = (statistics.median(run.records_per_s for run in ours)
                     / max(statistics.median(run.records_per_s for run in theirs), 1e-9))
            lines.append(f"| {rate_text} | {spread(ours, lambda run: run.records_per_s, 0)} | "
                         f"{spread(ours, lambda run: run.cpu_cores, 3)} | {spread(ours, per_record_us, 1)} | "
                         f"{spread(theirs, lambda run: run.records_per_s, 0)} | "
                         f"{spread(theirs, lambda run: run.cpu_cores, 3)} | {spread(theirs, per_record_us, 1)} | "
                         f"{ratio:.1f}× |")
            print(lines[-1], flush=True)
    return lines


def per_record_us(run: BookEndToEnd | PeerEndToEnd) -> float | None:
    return run.cpu_cores / run.records_per_s * 1e6 if run.records_per_s else None


def version_of(python: str, package: str) -> str:
    done = subprocess.run([python, "-c", f"from importlib.metadata import version; print(version({package!r}))"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "?"


def audit_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    with broker(scratch) as bootstrap:
        return verify_scenario(bootstrap)


SCENARIOS = {"decode": decode_scenario, "produce": produce_scenario, "e2e": e2e_scenario, "fleet": fleet_scenario,
             "verify": audit_scenario, "book": book_scenario, "book-e2e": book_e2e_scenario,
             "book-rss": book_rss_scenario, "book-peer": book_peer_scenario}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only this one (repeatable, run in the order given; default: all)")
    parser.add_argument("--exchange", action="append", choices=EXCHANGES,
                        help="only these exchanges (repeatable; default: all; e2e runs Binance, OKX, Upbit)")
    parser.add_argument("--seconds", type=float, default=8, help="e2e, fleet: measured seconds per run")
    parser.add_argument("--rates", default="1000,10000,max", help="e2e: comma-separated msg/s; 'max' = flat out")
    parser.add_argument("--fleet-rate", type=float, default=20_000, help="fleet: msg/s of all ten workers together")
    parser.add_argument("--fleet-book-rate", type=float, default=10_000,
                        help="fleet: book updates/s of all the workers with a book channel together (0: no books)")
    parser.add_argument("--book-rates", default="1000,max", help="book-e2e: comma-separated updates/s; 'max' = flat out")
    parser.add_argument("--book-depths", default="10,20",
                        help="book-e2e: comma-separated book_depth values, each 5, 10 or 20 (Binance's pushes)")
    parser.add_argument("--cryptofeed-python", default=".venv-cryptofeed/bin/python",
                        help="book-peer: the Python of a virtualenv with cryptofeed and aiokafka")
    parser.add_argument("--book-minutes", type=float, default=10, help="book-rss: minutes measured")
    arguments = parser.parse_args()
    arguments.exchanges_named = arguments.exchange is not None
    arguments.exchange = arguments.exchange or list(EXCHANGES)
    # The peer needs a virtualenv of its own: only when asked for.
    names = arguments.scenario or [name for name in SCENARIOS if name != "book-peer"]
    lines = [f"# coinstream benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start "
             "(a shared machine: other work runs alongside)",
             f"- Python {platform.python_version()}; msgspec {version('msgspec')}, websockets {version('websockets')}, "
             f"confluent-kafka {version('confluent-kafka')}, librdkafka {confluent_kafka.libversion()[0]}, "
             f"uvloop {version('uvloop')}",
             f"- scenarios: {', '.join(names)}"]
    failed = []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coinstream-bench-") as scratch:
        for name in names:
            try:
                lines += ["", *SCENARIOS[name](arguments, Path(scratch))]
            except Exception as error:  # one scenario's failure keeps the others' results
                traceback.print_exc()
                failed.append(name)
                lines += ["", f"## {name}: failed", "", f"    {type(error).__name__}: {str(error).splitlines()[0]}"]
            # Written after every scenario: a long run stopped half way keeps what it measured.
            RESULTS.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {RESULTS}")
    if failed:
        raise SystemExit(f"bench: failed: {', '.join(failed)} (see above and {RESULTS})")


if __name__ == "__main__":
    main()
