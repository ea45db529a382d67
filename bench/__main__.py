"""python -m bench: how fast one worker is, end to end and stage by stage.

  python -m bench                      every scenario (make bench)
  python -m bench --exchange upbit --seconds 10 --rates 1000,max

Scenarios, each on the same machine in one run:
  tiers    in-process, on simulator-shaped frames: (1) decode + normalize,
           (2) plus serialization, against a naive pipeline (stdlib json, dict,
           Decimal, json.dumps), all per message
  e2e      a worker process reading the simulator (its own process) and producing
           to a real local broker (idempotent, acks=all): sustained records/s
           delivered, produce-to-delivery-report latency p50/p99 (histogram bucket
           bounds), worker RSS and CPU; at 1,000 msg/s and at the highest rate the
           simulator can send
Results are printed and written to bench/results/latest.md.
"""

import argparse
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec

from simulator.__main__ import mode
from simulator.core import universe
from tests.harness import Broker, Simulator, WorkerProcess, override_file

RESULTS = Path(__file__).parent / "results" / "latest.md"
WORKERS = {"binance": "Binance", "upbit": "Upbit"}


# --- tiers -------------------------------------------------------------------------

def sample_frames(exchange: str, count: int = 2000) -> list[bytes]:
    sim_class = mode(exchange)
    sim = sim_class(universe(sim_class.default_quote, 50), rate_per_s=0)
    ids = list(sim.quotes)
    return [sim.ticker_frame(ids[i % len(ids)], sim.quotes[ids[i % len(ids)]], 1_700_000_000_000 + i).encode()
            for i in range(count)]


def venue_for(exchange: str) -> Any:
    venue_class = getattr(importlib.import_module(f"workers.{exchange}"), WORKERS[exchange])
    venue = venue_class("ws://127.0.0.1", "http://127.0.0.1")
    sim_class = mode(exchange)
    venue.learn([venue.market(base, quote) for base, quote in universe(sim_class.default_quote, 50)])
    return venue


def naive(frame: bytes) -> bytes:
    """The original project's way: json.loads into dicts, Decimal, round, json.dumps."""
    message = json.loads(frame, parse_float=Decimal)
    data = message.get("data", message)
    price = Decimal(str(data.get("c", data.get("trade_price"))))
    record = {key: str(value) for key, value in data.items()}
    record["price"] = str(price.quantize(Decimal("0.1")))
    return json.dumps(record).encode()


def per_message_us(function: Any, frames: list[bytes], repeat: int = 5) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        for frame in frames:
            function(frame)
        timings.append((time.perf_counter() - started) / len(frames) * 1e6)
    return timings


def tiers(exchange: str) -> list[tuple[str, list[float]]]:
    frames = sample_frames(exchange)
    venue = venue_for(exchange)
    encoder = msgspec.json.Encoder()

    def decode_normalize(frame: bytes) -> Any:
        return venue.parse_ws(frame, 1)

    def with_serialization(frame: bytes) -> Any:
        return [encoder.encode(ticker) for ticker in venue.parse_ws(frame, 1)]

    return [("tier 1: decode + normalize", per_message_us(decode_normalize, frames)),
            ("tier 2: + serialize", per_message_us(with_serialization, frames)),
            ("naive baseline (json + dict + Decimal)", per_message_us(naive, frames))]


# --- end to end -------------------------------------------------------------------

COUNTERS = re.compile(r"counters frames=(\d+) records=(\d+) .* delivered=(\d+) .*"
                      r"delivery_p50_ms<=(\S+) delivery_p99_ms<=(\S+)")


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def end_to_end(exchange: str, rate: float, seconds: float, bootstrap: str, workdir: Path) -> dict[str, Any]:
    sim = Simulator(workdir, [exchange], rate, markets=50, journal=False)
    config = override_file(workdir, bootstrap, sim.config["exchanges"], {"stats_interval_s": 1})
    worker = WorkerProcess(exchange, config, workdir)
    try:
        time.sleep(5)  # warm up: connect, snapshot, librdkafka batches
        pid = worker.process.pid
        cpu0, lines0, t0 = _proc_cpu_s(pid), len(COUNTERS.findall(worker.log())), time.monotonic()
        rss = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            rss.append(_rss_mb(pid))
        cpu1, t1 = _proc_cpu_s(pid), time.monotonic()
        window = COUNTERS.findall(worker.log())[lines0:]
        delivered = [int(match[2]) for match in window]
        p50 = [float(match[3]) for match in window if match[3] != "None"]
        p99 = [float(match[4]) for match in window if match[4] != "None"]
        return {"rate": rate, "records_per_s": (delivered[-1] - delivered[0]) / max(len(delivered) - 1, 1),
                "p50_ms": statistics.median(p50) if p50 else None, "p99_ms": max(p99) if p99 else None,
                "rss_mb": max(rss), "cpu_cores": (cpu1 - cpu0) / (t1 - t0)}
    finally:
        worker.stop()
        sim.stop()


# --- report -----------------------------------------------------------------------

def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", action="append", choices=sorted(WORKERS))
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rates", default="1000,max", help="comma-separated msg/s; 'max' = as fast as possible")
    parser.add_argument("--skip-e2e", action="store_true")
    arguments = parser.parse_args()
    exchanges = arguments.exchange or sorted(WORKERS)
    lines = [f"# coinstream benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}",
             f"- msgspec {version('msgspec')}, websockets {version('websockets')}, "
             f"confluent-kafka {version('confluent-kafka')}, librdkafka {__import__('confluent_kafka').libversion()[0]}",
             "", "## Tiers (µs per message; median and range of 5 runs over 2,000 frames)", "",
             "| exchange | stage | median µs | min–max |", "|---|---|---|---|"]
    for exchange in exchanges:
        for name, timings in tiers(exchange):
            lines.append(f"| {exchange} | {name} | {statistics.median(timings):.2f} | "
                         f"{min(timings):.2f}–{max(timings):.2f} |")
        print("\n".join(lines[-3:]), flush=True)
    if not arguments.skip_e2e:
        lines += ["", f"## End to end: simulator → worker → local Kafka (acks=all, idempotent), "
                      f"{arguments.seconds:.0f} s per scenario", "",
                  "| exchange | offered msg/s | delivered records/s | produce→ack p50 ms ≤ | p99 ms ≤ | "
                  "worker RSS MB | worker CPU cores |", "|---|---|---|---|---|---|---|"]
        with tempfile.TemporaryDirectory(prefix="coinstream-bench-") as scratch:
            bootstrap = os.environ.get("COINSTREAM_TEST_BOOTSTRAP")
            broker = None
            if not bootstrap:
                broker = Broker(Path(scratch) / "kafka")
                bootstrap = broker.start()
            try:
                for exchange in exchanges:
                    for rate_text in arguments.rates.split(","):
                        rate = 1_000_000.0 if rate_text == "max" else float(rate_text)
                        workdir = Path(scratch) / f"{exchange}-{rate_text}"
                        workdir.mkdir()
                        result = end_to_end(exchange, rate, arguments.seconds, bootstrap, workdir)
                        lines.append(f"| {exchange} | {rate_text} | {result['records_per_s']:,.0f} | "
                                     f"{result['p50_ms']} | {result['p99_ms']} | {result['rss_mb']:.0f} | "
                                     f"{result['cpu_cores']:.2f} |")
                        print(lines[-1], flush=True)
            finally:
                if broker is not None:
                    broker.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
