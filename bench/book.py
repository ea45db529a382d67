"""python -m bench.book: what one order book message costs in-process (issue 20's per-message targets).

  python -m bench.book                  µs per message of this thread's CPU time (a busy
                                        machine inflates it far less than the wall clock),
                                        median and range of 7 passes
  python -m bench.book --instructions   the same messages under callgrind: instructions per
                                        message, exact from run to run (needs valgrind)
  --measure NAME                        only this measure (repeatable)
  --keep-callgrind DIRECTORY            with --instructions: keep each measure's callgrind
                                        out file there, for callgrind_annotate

Each measure runs what a worker's book channel will run for one message, on frames shaped
exactly like the exchange's (Binance's built from the real one in tests/fixtures, OKX's
generated in its format: see okx_snapshot):
  depth20       Binance btcusdt@depth20@100ms, 20 levels a side: decode, OrderBook.replace,
                check (crossed), changed_top (top 10), Book record, encode. The book moves
                as a busy one does: a few sizes a frame, a price step now and then, so most
                texts were in the frame before (target: 10 µs)
  depth20-new   the same, every price and size text new: the worst case of the text caches
  depth20-runtime
                the depth20 frames through the worker's own path: workers.binance's parser
                and shared.book_channel at a depth of 10 (lastUpdateId rule, checks,
                conflation, counters), publishing to a sink that encodes each record as
                the Kafka sink does
  okx-deep      OKX `books` update of 1-5 levels below the top 25 of a 400-level BTC-USDT
                book: decode, seqId check, apply, checksum check, conflated (4 µs)
  okx-in-25     the same with its levels at ranks 11-25: the checksum is computed again,
                the top 10 is not published
  okx-deep-runtime, okx-in-25-runtime
                the same messages through the worker's own path: workers.okx's parser
                and shared.book_channel (sequence rule, checks, conflation, counters),
                publishing to a sink that encodes each record as the Kafka sink does:
                what the runtime adds to the bare measures above
"""

import argparse
import binascii
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from bench.tiers import Pass, median_and_range, per_message_us
import logging

from shared.book import OKX, OrderBook, okx_checksum
from shared.config import ExchangeConfig, Runtime
from shared.record import Book, Level
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.venue import Venue
from shared.worker import Worker
from tests.conftest import fixture_bytes
from workers.binance import Binance
from workers.okx import Okx

DEPTH = 10
FRAMES = 2000
WARM_UP_FRAMES = 500
RECEIVED_NS = 1_790_000_000_000_000_000


# --- Binance @depth20 -----------------------------------------------------------------

# gc=False, as in workers.binance and workers.okx: decoded frames hold no reference cycle.
class PartialDepth(msgspec.Struct, gc=False):
    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


class PartialDepthPush(msgspec.Struct, gc=False):
    stream: str
    data: PartialDepth


def _binance_price(cents: int) -> str:
    """A BTCUSDT price as Binance writes it: 8 decimals."""
    return f"{cents // 100}.{cents % 100:02d}000000"


def _binance_size(units: int, last_digits: int = 0) -> str:
    """A size of `units` 1e-5 as Binance writes it: 8 decimals (the last three given)."""
    return f"{units // 100_000}.{units % 100_000:05d}{last_digits:03d}"


def depth20_frames(count: int, every_text_new: bool = False) -> list[bytes]:
    """`count` @depth20 pushes like the real one, the book moving as a busy one does."""
    real = json.loads(fixture_bytes("binance", "ws_partial_depth20_trimmed.json"))
    best_bid = int(Decimal(real["data"]["bids"][0][0]) * 100)  # in 0.01 ticks
    update_id = real["data"]["lastUpdateId"]
    rng = random.Random(20)
    sizes: dict[int, int] = {}  # tick -> size in 1e-5 units

    def size_of(tick: int) -> int:
        return sizes.setdefault(tick, rng.randint(1, 500_000))

    frames = []
    for number in range(count):
        if rng.random() < 0.2:  # the price steps a tick
            best_bid += rng.choice((-1, 1))
        for _ in range(rng.randint(1, 6)):  # a few sizes change
            sizes[best_bid + rng.randint(-19, 20)] = rng.randint(1, 500_000)
        # Every text new: the prices move 40 ticks a frame, the sizes' last digits change.
        shift, last_digits = (40 * number, number % 1000) if every_text_new else (0, 0)
        bids = [(_binance_price(best_bid - level + shift), _binance_size(size_of(best_bid - level), last_digits))
                for level in range(20)]
        asks = [(_binance_price(best_bid + 1 + level + shift), _binance_size(size_of(best_bid + 1 + level), last_digits))
                for level in range(20)]
        update_id += rng.randint(1, 60)
        frames.append(msgspec.json.encode(
            {"stream": real["stream"], "data": {"lastUpdateId": update_id, "bids": bids, "asks": asks}}))
    return frames


def depth20_pass() -> Callable[[bytes], bytes | None]:
    decoder = msgspec.json.Decoder(PartialDepthPush)
    encoder = msgspec.json.Encoder()
    markets = {"btcusdt@depth20@100ms": ("BTC-USDT", "BTCUSDT")}
    book = OrderBook("BTCUSDT", DEPTH, window=DEPTH)  # every frame is the whole book: keep the top N

    def on_frame(frame: bytes) -> bytes | None:
        push = decoder.decode(frame)
        symbol, raw_symbol = markets[push.stream]
        book.replace(push.data.bids, push.data.asks)
        book.check()
        top = book.changed_top()
        if top is None:
            return None  # conflated
        return encoder.encode(Book("binance", symbol, raw_symbol, *top, DEPTH, push.data.lastUpdateId, None,
                                   RECEIVED_NS, "ws"))
    return on_frame


# --- OKX books --------------------------------------------------------------------------

class OkxBookData(msgspec.Struct, gc=False):
    asks: list[list[str]]
    bids: list[list[str]]
    ts: int
    checksum: int
    prevSeqId: int = -1
    seqId: int = 0


class OkxArg(msgspec.Struct, gc=False):
    instId: str


class OkxBookPush(msgspec.Struct, gc=False):
    arg: OkxArg
    action: str
    data: list[OkxBookData]


def okx_levels(levels: list[list[str]]) -> list[Level]:
    """(price, size) of OKX's [price, size, "0", order count] levels."""
    return [(price, size) for price, size, *_ in levels]


OKX_LEVELS = 400  # a `books` snapshot's levels a side


def _okx_price(cents: int) -> str:
    """A BTC-USDT price as OKX writes it: up to 2 decimals, no trailing zeros ("8477", "8475.3")."""
    whole, fraction = divmod(cents, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".")


def _okx_level(rng: random.Random, price: str) -> list[str]:
    """[price, size, "0", order count], sizes and counts like the docs' example's ("415", "13")."""
    return [price, str(rng.randint(1, 500)), "0", str(rng.randint(1, 13))]


def okx_snapshot() -> bytes:
    """A BTC-USDT `books` snapshot of 400 levels a side in OKX's exact format, generated
    (deterministic seed): no real 400-level push is in the reference material. It starts
    from the docs' example's best bid and ask (8476.97 / 8476.98) and steps 1-50 cents a
    level, as the example's levels do; it carries its checksum and the seqId of a 2024+
    server."""
    rng = random.Random(400)
    bids, asks = [], []
    bid, ask = 847697, 847698  # cents
    for _ in range(OKX_LEVELS):
        bids.append(_okx_level(rng, _okx_price(bid)))
        asks.append(_okx_level(rng, _okx_price(ask)))
        bid -= rng.randint(1, 50)
        ask += rng.randint(1, 50)
    return msgspec.json.encode({
        "arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot",
        "data": [{"asks": asks, "bids": bids, "ts": "1597026383085",
                  "checksum": okx_checksum(okx_levels(bids), okx_levels(asks)), "prevSeqId": -1, "seqId": 1000}]})


def okx_updates(count: int, ranks: range) -> list[bytes]:
    """`count` updates of 1-5 levels at `ranks` of either side of okx_snapshot()'s book: a
    size changed, a level deleted or a price added below it (in the first free cent), and
    the checksum OKX would send. Adds balance deletes: 340-480 levels a side over 2,500 updates."""
    push = msgspec.json.decode(okx_snapshot(), type=OkxBookPush, strict=False)
    [data] = push.data
    truth = OrderBook("BTC-USDT", DEPTH, checksum=OKX)
    truth.replace(okx_levels(data.bids), okx_levels(data.asks))
    rng = random.Random(400)
    frames, seq_id = [], data.seqId
    for _ in range(count):
        changes: dict[str, list[list[str]]] = {"bids": [], "asks": []}
        for _ in range(rng.randint(1, 5)):
            side = rng.choice(("bids", "asks"))
            levels = truth.top(2 * OKX_LEVELS)[0 if side == "bids" else 1]
            rank = min(rng.choice(ranks), len(levels) - 1)
            price, _ = levels[rank]
            action = rng.choice(("size", "delete", "add"))
            if action == "add":  # a new price below this level: in the first gap of more than a cent
                worse = 1 if side == "asks" else -1
                cents = [int(Decimal(level_price) * 100) for level_price, _ in levels[rank:]]
                cents.append(cents[-1] + 100 * worse)  # below the last level a cent is always free
                at = next(at for at in range(len(cents) - 1) if abs(cents[at + 1] - cents[at]) > 1)
                price = _okx_price(cents[at] + worse * rng.randint(1, abs(cents[at + 1] - cents[at]) - 1))
            changes[side].append([price, "0", "0", "0"] if action == "delete" else _okx_level(rng, price))
        truth.apply(changes["bids"], changes["asks"])
        seq_id += 1
        frames.append(msgspec.json.encode({
            "arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
            "data": [{**changes, "ts": str(1597026383085 + seq_id), "checksum": okx_checksum(*truth.top(25)),
                      "prevSeqId": seq_id - 1, "seqId": seq_id}]}))
    return frames


def okx_pass() -> Callable[[bytes], bytes | None]:
    decoder = msgspec.json.Decoder(OkxBookPush, strict=False)  # strict=False: `ts` is a string of digits
    encoder = msgspec.json.Encoder()
    books = {"BTC-USDT": OrderBook("BTC-USDT", DEPTH, checksum=OKX)}
    snapshot = decoder.decode(okx_snapshot()).data[0]
    books["BTC-USDT"].replace(okx_levels(snapshot.bids), okx_levels(snapshot.asks))
    books["BTC-USDT"].update_id = snapshot.seqId

    def on_frame(frame: bytes) -> bytes | None:
        push = decoder.decode(frame)
        book = books[push.arg.instId]
        for data in push.data:
            if data.prevSeqId != book.update_id:
                raise book.lose("gap", f"prevSeqId {data.prevSeqId} after seqId {book.update_id}")
            book.apply(data.bids, data.asks)
            book.update_id = data.seqId
            book.check(data.checksum)
            top = book.changed_top()
            if top is not None:
                return encoder.encode(Book("okx", "BTC-USDT", push.arg.instId, *top, DEPTH, data.seqId, data.ts,
                                           RECEIVED_NS, "ws"))
        return None  # conflated
    return on_frame


class EncodingSink(StdoutSink):
    """A sink that stamps and encodes each book record as KafkaSink does, and keeps only
    the last: the work of publish_book without a broker."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self.last = b""

    def publish_book(self, book: Book) -> None:
        self._book_seq += 1
        book.run = self.run
        book.seq = self._book_seq
        self.last = self._encoder.encode(book)
        self.stats.book_records += 1


def runtime_pass(venue: Venue, symbol: str, first_frame: bytes | None = None) -> Callable[[bytes], bytes | None]:
    """A measure's work through the worker's path: the venue's parse_book_ws and
    BookChannel, for the book of `symbol` (first_frame: its snapshot, not measured)."""
    exchange = ExchangeConfig(ws_url=venue.ws_base, rest_url=venue.rest_base, symbols=[symbol], channels=["book"],
                              book_depth=DEPTH)
    stats = Stats()
    sink = EncodingSink(stats)
    worker = Worker(venue, exchange, Runtime(), sink, stats, logging.getLogger("bench.book"))
    worker.book_markets([venue.market(*symbol.split("-", 1))])
    books = worker.books
    assert books is not None
    if first_frame is not None:
        books.on_frame(first_frame, RECEIVED_NS, exchange.ws_url)

    def on_frame(frame: bytes) -> bytes | None:
        published = stats.book_records
        books.on_frame(frame, RECEIVED_NS, exchange.ws_url)
        if stats.book_resyncs or stats.dead_letters or stats.book_skipped:  # a lost book measures nothing worth knowing
            raise RuntimeError(f"book lost: {stats.book_resyncs}, dead letters: {stats.dead_letters}, "
                               f"skipped: {stats.book_skipped}")
        return sink.last if stats.book_records != published else None
    return on_frame


def okx_runtime_pass() -> Callable[[bytes], bytes | None]:
    """okx_pass's work through the worker's path: Okx.parse_book_ws and BookChannel."""
    return runtime_pass(Okx("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com"), "BTC-USDT", okx_snapshot())


def depth20_runtime_pass() -> Callable[[bytes], bytes | None]:
    """depth20_pass's work through the worker's path: Binance.parse_book_ws and BookChannel
    (the partial-depth channel at a depth of 10)."""
    return runtime_pass(Binance("wss://stream.binance.com:9443/stream", "https://data-api.binance.vision"),
                        "BTC-USDT")


# --- the measures -----------------------------------------------------------------------

MEASURES: dict[str, tuple[Callable[[int], list[bytes]], Pass]] = {
    "depth20": (depth20_frames, depth20_pass),
    "depth20-new": (lambda count: depth20_frames(count, every_text_new=True), depth20_pass),
    "depth20-runtime": (depth20_frames, depth20_runtime_pass),
    "okx-deep": (lambda count: okx_updates(count, range(25, 395)), okx_pass),
    "okx-in-25": (lambda count: okx_updates(count, range(10, 25)), okx_pass),
    "okx-deep-runtime": (lambda count: okx_updates(count, range(25, 395)), okx_runtime_pass),
    "okx-in-25-runtime": (lambda count: okx_updates(count, range(10, 25)), okx_runtime_pass),
}


def cpu_time_lines(names: list[str], passes: int = 7) -> list[str]:
    lines = ["| measure | µs per message (thread CPU time), median | min–max | published |", "|---|---|---|---|"]
    for name in names:
        frames_of, new_pass = MEASURES[name]
        frames = frames_of(WARM_UP_FRAMES + FRAMES)
        warm, measured = frames[:WARM_UP_FRAMES], frames[WARM_UP_FRAMES:]

        def warmed_pass() -> Callable[[bytes], object]:
            handle = new_pass()
            for frame in warm:
                handle(frame)
            return handle
        timings = per_message_us(warmed_pass, measured, passes, clock=time.thread_time)
        published = sum(map(bool, map(warmed_pass(), measured)))
        lines.append(f"| {name} | {median_and_range(timings)} | {published / len(measured):.0%} |")
        print(lines[-1], flush=True)
    return lines


def replay(name: str, frames_file: Path) -> None:
    """Warm up, then handle the rest of the frames between two marker calls: callgrind
    zeroes its counters at the first (zlib.adler32) and writes them out at the second
    (binascii.crc_hqx), neither of which the measured path calls."""
    frames = frames_file.read_bytes().splitlines()
    handle = MEASURES[name][1]()
    for frame in frames[:WARM_UP_FRAMES]:
        handle(frame)
    zlib.adler32(b"")
    for frame in frames[WARM_UP_FRAMES:]:
        handle(frame)
    binascii.crc_hqx(b"", 0)


def instruction_lines(names: list[str], keep_in: Path | None = None) -> list[str]:
    """Instructions per message, counted by callgrind over FRAMES messages after the warm-up;
    keep_in: a directory to copy each measure's callgrind out file to (for callgrind_annotate)."""
    lines = ["| measure | instructions per message |", "|---|---|"]
    with tempfile.TemporaryDirectory(prefix="bench-book-") as scratch:
        for name in names:
            frames_of = MEASURES[name][0]
            frames_file, counts = Path(scratch) / f"{name}.jsonl", Path(scratch) / f"{name}.callgrind"
            frames_file.write_bytes(b"\n".join(frames_of(WARM_UP_FRAMES + FRAMES)))
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}", "--zero-before=adler32",
                            "--dump-before=binascii_crc_hqx*", sys.executable, "-m", "bench.book",
                            "--replay", name, "--frames", str(frames_file)],
                           check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            dumped = Path(f"{counts}.1").read_text()  # the dump between the markers
            if keep_in is not None:
                keep_in.mkdir(parents=True, exist_ok=True)
                (keep_in / f"{name}.callgrind").write_text(dumped)
            [total] = [int(line.split()[1]) for line in dumped.splitlines() if line.startswith("summary:")]
            lines.append(f"| {name} | {total / FRAMES:,.0f} |")
            print(lines[-1], flush=True)
    return lines


def book_scenario(arguments: argparse.Namespace, scratch: Path) -> list[str]:
    """python -m bench --scenario book: the µs table."""
    return [f"## Order book per message: µs of thread CPU time ({FRAMES:,} messages after {WARM_UP_FRAMES} of "
            "warm-up, 7 passes; python -m bench.book --instructions counts instructions)", "",
            *cpu_time_lines(list(MEASURES))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.book", description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--measure", action="append", choices=list(MEASURES), help="only these (repeatable)")
    parser.add_argument("--keep-callgrind", type=Path, metavar="DIRECTORY",
                        help="with --instructions: keep each measure's callgrind out file here")
    parser.add_argument("--replay", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.replay:
        replay(arguments.replay, arguments.frames)
    elif arguments.instructions:
        instruction_lines(arguments.measure or list(MEASURES), arguments.keep_callgrind)
    else:
        cpu_time_lines(arguments.measure or list(MEASURES))


if __name__ == "__main__":
    main()
