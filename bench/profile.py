"""Instructions a record: the worker's hot path beside the bare stack's, under callgrind.

  python -m bench.profile                          Binance, OKX and Upbit
  python -m bench.profile --exchange upbit --frames 4000 --annotate

Each side gets the same simulator frames in-process, ten to a read as MessageConnection
hands them over, and the delivery reports served after each read, to a producer with
librdkafka's in-process mock cluster (test.mock.num.brokers) and the worker's producer
settings:
  coinstream  Connection's handler of each read -> Worker.on_frame -> KafkaSink, as live
  bare        bench.ceiling's BareStack: decode eight fields, encode, produce, count
The socket's framing (websockets) is the same on both sides and left out. Callgrind
counts the main thread's instructions (the Python thread, which bounds the rate flat
out; librdkafka's threads are apart) of a run of N frames and of 2N: their difference
over N records is the cost of one, start-up and imports cancelled out. Instruction
counts are repeatable on a busy machine, where timings are not.

Valgrind comes from Debian's package when it is not installed: apt-get download and
dpkg-deb -x into .cache/valgrind, as .ci/run does for promtool (no root needed).
"""

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.ceiling import PIPELINES, BareStack
from bench.tiers import URL, fresh_venue, sample_frames
from shared import config as configuration
from shared.config import Config
from shared.sink import KafkaSink
from shared.stats import Stats
from shared.worker import Connection, Worker
from tests.harness import override_file

FRAMES_PER_READ = 10
DEFAULT_FRAMES = 3000
SIDES = ("coinstream", "bare")
REPOSITORY = Path(__file__).resolve().parent.parent
VALGRIND_CACHE = REPOSITORY / ".cache" / "valgrind"
# The mock cluster stands in for the broker; no address is ever reached.
MOCK_CLUSTER = {"bootstrap.servers": "", "test.mock.num.brokers": 1}
TOPIC = "bench.profile.ticker"


def _config(scratch: Path, exchange: str) -> Config:
    """The shipped configuration, with the simulator's endpoints (never reached)."""
    sections = {exchange: {"ws_url": URL, "rest_url": "http://127.0.0.1"}}
    return configuration.load(override_file(scratch, "127.0.0.1:1", sections, create_topics=False))


def coinstream_side(exchange: str, scratch: Path) -> tuple[Callable[[list[bytes], int], None], Callable[[], int]]:
    """The live path: Connection's handler of each read."""
    config = _config(scratch, exchange)
    log = logging.getLogger(f"bench.profile.{exchange}")
    stats = Stats()
    sink = KafkaSink({**config.kafka.producer, **MOCK_CLUSTER}, TOPIC, TOPIC + ".dead", config.kafka.spool,
                     exchange, stats, log)
    venue = fresh_venue(exchange)
    worker = Worker(venue, config.exchange(exchange), config.runtime_for(exchange), sink, stats, log)
    connection = Connection(worker, [], 0)

    def flush() -> int:
        sink._producer.flush(30)
        sink.serve_deliveries()
        return stats.delivered
    return connection._on_read, flush


def bare_side(exchange: str, scratch: Path) -> tuple[Callable[[list[bytes], int], None], Callable[[], int]]:
    bare = BareStack(exchange, {**_config(scratch, exchange).kafka.producer, **MOCK_CLUSTER}, TOPIC)
    def flush() -> int:
        bare.producer.flush(30)
        return bare.delivered
    return bare.on_read, flush


def inner(side: str, exchange: str, count: int, frames_file: Path) -> None:
    """One side's run over the first `count` frames of `frames_file`, in this process
    (what callgrind watches; the simulator that makes the frames is not)."""
    frames = frames_file.read_bytes().splitlines()[:count]
    with tempfile.TemporaryDirectory(prefix="coinstream-profile-") as scratch:
        async def feed() -> None:
            # In a running loop, as live: the worker's handler looks up the loop.
            on_read, flush = (coinstream_side if side == "coinstream" else bare_side)(exchange, Path(scratch))
            if side == "coinstream":
                # Connection._on_read reports a failing frame through this future.
                on_read.__self__._ended_by = asyncio.get_running_loop().create_future()  # type: ignore[attr-defined]
            clock = time.time_ns
            for start in range(0, len(frames), FRAMES_PER_READ):
                # As MessageConnection.data_received: one clock reading and one call a read.
                on_read(frames[start:start + FRAMES_PER_READ], clock())
            delivered = flush()
            if delivered != count:  # every frame holds one ticker
                raise RuntimeError(f"{side} {exchange}: {delivered} of {count} records delivered")
        asyncio.run(feed())


def valgrind() -> list[str]:
    """The valgrind command, fetched from Debian's package into .cache when absent."""
    if shutil.which("valgrind"):
        return ["valgrind"]
    binary = VALGRIND_CACHE / "usr" / "bin" / "valgrind"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as download:
            subprocess.run(["apt-get", "download", "valgrind"], cwd=download, check=True)
            [package] = Path(download).glob("valgrind_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(package), str(VALGRIND_CACHE)], check=True)
    os.environ["VALGRIND_LIB"] = str(VALGRIND_CACHE / "usr" / "libexec" / "valgrind")
    return [str(binary)]


def main_thread_instructions(out_prefix: Path) -> int:
    """Instructions of thread 1 (the Python thread) from a --separate-threads run."""
    [main_file] = [path for path in out_prefix.parent.glob(out_prefix.name + "*-01")]
    for line in main_file.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {main_file}")


def callgrind(side: str, exchange: str, count: int, scratch: Path) -> Path:
    out = scratch / f"{side}-{exchange}-{count}.out"
    frames_file = scratch / f"{exchange}.frames"
    subprocess.run([*valgrind(), "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                    sys.executable, "-m", "bench.profile", "--inner", side, "--exchange", exchange,
                    "--frames", str(count), "--frames-file", str(frames_file)],
                   check=True, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def instructions_per_record(side: str, exchange: str, frames: int, scratch: Path) -> tuple[float, Path]:
    one = main_thread_instructions(callgrind(side, exchange, frames, scratch))
    double_out = callgrind(side, exchange, 2 * frames, scratch)
    return (main_thread_instructions(double_out) - one) / frames, double_out


def annotate(out_prefix: Path, lines: int = 30) -> str:
    [main_file] = [path for path in out_prefix.parent.glob(out_prefix.name + "*-01")]
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(main_file)],
                          capture_output=True, text=True, check=True).stdout
    return "\n".join(text.splitlines()[:lines + 25])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", action="append", choices=sorted(PIPELINES))
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="N: runs of N and 2N frames")
    parser.add_argument("--side", choices=SIDES, action="append", help="default: both")
    parser.add_argument("--annotate", action="store_true", help="also callgrind_annotate's inclusive top")
    parser.add_argument("--inner", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--frames-file", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    exchanges = arguments.exchange or sorted(PIPELINES)
    if arguments.inner:
        inner(arguments.inner, exchanges[0], arguments.frames, arguments.frames_file)
        return
    sides = arguments.side or list(SIDES)
    print("| exchange | " + " | ".join(f"{side} instr/record" for side in sides)
          + (" | coinstream ÷ bare |" if len(sides) == 2 else " |"))
    print("|---" * (len(sides) + 1 + (len(sides) == 2)) + "|")
    with tempfile.TemporaryDirectory(prefix="coinstream-callgrind-") as scratch:
        for exchange in exchanges:
            # One JSON text a line: none holds a raw newline.
            (Path(scratch) / f"{exchange}.frames").write_bytes(b"\n".join(sample_frames(exchange, 2 * arguments.frames)))
            counts, outs = {}, {}
            for side in sides:
                counts[side], outs[side] = instructions_per_record(side, exchange, arguments.frames, Path(scratch))
            row = f"| {exchange} | " + " | ".join(f"{counts[side]:,.0f}" for side in sides)
            if len(sides) == 2:
                row += f" | {counts['coinstream'] / counts['bare']:.2f} |"
            print(row + ("" if len(sides) == 2 else " |"), flush=True)
            if arguments.annotate:
                for side in sides:
                    print(f"\n### {exchange} {side} ({2 * arguments.frames} frames)\n")
                    print(annotate(outs[side]))


if __name__ == "__main__":
    main()
