"""Tiers 1-3: what one frame costs in-process, against the naive pipeline, on the same frames.

  tier 1  decode + normalize: venue.parse_ws on simulator-shaped frames, and the record
          contract's check of the values (shared.record.check_values), as Worker.on_frame
  tier 2  tier 1 + serialization with a msgspec encoder
  tier 3  the worker's own path to the broker: Worker.on_frame with a real KafkaSink
          (parse, stamp, encode, produce()), each call timed, paced and flat out

The naive pipeline is the original project's: json.loads into dicts, every number
through Decimal, json.dumps, and one produce per message waiting for its ack.
"""

import asyncio
import gc
import importlib
import json
from contextlib import suppress
import logging
import statistics
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from confluent_kafka import Producer

from shared import config as configuration
from shared.record import check_values
from shared.sink import KafkaSink
from shared.stats import Stats
from shared.venue import Venue
from shared.worker import Worker
from simulator.__main__ import mode
from simulator.core import universe
from tests.harness import override_file

# exchange -> its Venue class in workers/<exchange>.py
VENUE_CLASSES = {
    "binance": "Binance", "bithumb": "Bithumb", "bybit": "Bybit", "coinbase": "Coinbase",
    "coinone": "Coinone", "gateio": "Gateio", "korbit": "Korbit", "kraken": "Kraken",
    "okx": "Okx", "upbit": "Upbit",
}
EXCHANGES = tuple(sorted(VENUE_CLASSES))
MARKETS = 50
URL = "ws://127.0.0.1/bench"
# When the frames of sample_frames arrive: just after their event times, as live.
RECEIVED_NS = 1_700_000_100_000_000_000
# Tier 3 feeds this many frames, at the measured rate, before it measures (1 s at 10,000 msg/s).
WARM_UP_FRAMES = 10_000


def sample_frames(exchange: str, count: int = 2000) -> list[bytes]:
    """`count` ticker frames over MARKETS markets, prices moving, event time rising."""
    sim_class = mode(exchange)
    sim = sim_class(universe(sim_class.default_quote, MARKETS), rate_per_s=0, edge_shapes=False)
    form = sim.frame_form(sim.ws_paths[0])  # as on the endpoint the worker's config names
    ids = list(sim.quotes)
    frames = []
    for number in range(count):
        market_id = ids[number % len(ids)]
        quote = sim.quotes[market_id]
        quote.step(sim.rng)
        frames.append(sim.in_form(form, market_id, sim.ticker_frame(market_id, quote, 1_700_000_000_000 + number))
                      .encode())
    return frames


def fresh_venue(exchange: str) -> Venue:
    """A venue that knows the simulator's markets and has seen no frame yet.

    Fresh for every timed pass: Coinone drops a ticker id it has already published.
    """
    venue_class: type[Venue] = getattr(importlib.import_module(f"workers.{exchange}"), VENUE_CLASSES[exchange])
    venue = venue_class(URL, "http://127.0.0.1")
    venue.learn([venue.market(base, quote) for base, quote in universe(mode(exchange).default_quote, MARKETS)])
    return venue


# --- the naive pipeline -------------------------------------------------------------

_TICKER_KEYS = ("data", "result")


def naive_records(frame: bytes) -> list[dict[str, Any]]:
    """Decode into dicts, find the ticker objects, pass every number through Decimal."""
    message = json.loads(frame, parse_float=Decimal)
    body = message
    while isinstance(body, dict) and (key := next((k for k in _TICKER_KEYS if k in body), None)):
        body = body[key]
    records = []
    for item in body if isinstance(body, list) else [body]:
        record: dict[str, Any] = {}
        for key, value in item.items():
            if isinstance(value, Decimal) or (isinstance(value, str) and value[:1] in "-0123456789"):
                # Digits first but not a number (an id like "1000SATS-KRW"): kept as sent.
                with suppress(InvalidOperation):
                    value = format(Decimal(value), "f")
            record[key] = value
        records.append(record)
    return records


def naive_serialized(frame: bytes) -> list[bytes]:
    return [json.dumps(record).encode() for record in naive_records(frame)]


# --- timing -------------------------------------------------------------------------

Pass = Callable[[], Callable[[bytes], object]]


def per_message_us(new_pass: Pass, frames: list[bytes], repeat: int = 5,
                   clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """µs per frame of each of `repeat` passes; new_pass() sets one up, untimed.

    The garbage collector is off while timing, as in timeit: otherwise a big heap left
    by whatever ran before (a test suite) is walked on our clock, and worker processes
    keep a small heap. clock=time.thread_time counts only the CPU time of this thread,
    which a busy machine disturbs far less than the wall clock.
    """
    timings = []
    for _ in range(repeat):
        handle = new_pass()
        gc.collect()
        gc.disable()
        try:
            started = clock()
            for frame in frames:
                handle(frame)
            timings.append((clock() - started) / len(frames) * 1e6)
        finally:
            gc.enable()
    return timings


def tier1(exchange: str) -> Pass:
    def new_pass() -> Callable[[bytes], object]:
        parse_ws = fresh_venue(exchange).parse_ws
        return lambda frame: check_values(parse_ws(frame, RECEIVED_NS))
    return new_pass


def tier2(exchange: str) -> Pass:
    encode = msgspec.json.Encoder().encode

    def new_pass() -> Callable[[bytes], object]:
        parse_ws = fresh_venue(exchange).parse_ws

        def handle(frame: bytes) -> list[bytes]:
            tickers = parse_ws(frame, RECEIVED_NS)
            check_values(tickers)
            return [encode(ticker) for ticker in tickers]
        return handle
    return new_pass


def decode_tiers(exchange: str, frames: list[bytes], repeat: int = 5) -> dict[str, list[float]]:
    """µs per frame, per stage, every stage on the same frames in the same run."""
    return {
        "tier 1: decode + normalize": per_message_us(tier1(exchange), frames, repeat),
        "naive 1: json + dict + Decimal": per_message_us(lambda: naive_records, frames, repeat),
        "tier 2: + serialize": per_message_us(tier2(exchange), frames, repeat),
        "naive 2: + json.dumps": per_message_us(lambda: naive_serialized, frames, repeat),
    }


# --- tier 3: to the broker ----------------------------------------------------------

class ProduceResult(msgspec.Struct):
    rate: str  # "10000" msg/s paced, or "max"
    frames_per_s: float  # on_frame calls a second over the run, pacing included
    p50_us: float  # one on_frame call: frame receipt -> produce() returned
    p99_us: float
    # The first frame of each paced burst, after the thread slept: where the p99 comes from.
    first_p50_us: float | None
    first_p99_us: float | None
    delivery_p50_ms: float | None  # produce() -> delivery report (histogram bucket bound)
    delivery_p99_ms: float | None


def _kafka_worker(exchange: str, bootstrap: str, workdir: Path) -> tuple[Worker, KafkaSink, Stats]:
    """The worker as shared.cli builds it, minus the sockets: real config, real sink."""
    sections = {exchange: {"ws_url": URL, "rest_url": "http://127.0.0.1"}}
    config = configuration.load(override_file(workdir, bootstrap, sections))
    log = logging.getLogger(f"bench.{exchange}")
    stats = Stats()
    sink = KafkaSink(config.kafka.producer, config.ticker_topic(exchange), config.topics.dead_letter,
                     config.kafka.spool, exchange, stats, log)
    sink.check_ready(timeout_s=10)
    worker = Worker(fresh_venue(exchange), config.exchange(exchange), config.runtime_for(exchange),
                    sink, stats, log)
    return worker, sink, stats


async def _feed(worker: Worker, frames: list[bytes], rate: float | None) -> tuple[list[int], list[int], float]:
    """Hand every frame to on_frame, paced in 1 ms bursts (as a socket delivers them) or flat out.

    Returns each call's ns, the index in that list of each burst's first call, and the seconds taken.
    """
    on_frame = worker.on_frame
    clock = time.perf_counter_ns
    time_ns = time.time_ns
    durations: list[int] = []
    burst_starts: list[int] = []
    started = time.perf_counter()
    next_frame = 0
    while next_frame < len(frames):
        due = len(frames) if rate is None else min(len(frames), int((time.perf_counter() - started) * rate) + 1)
        if due > next_frame:
            burst_starts.append(len(durations))
        for frame in frames[next_frame:due]:
            before = clock()
            on_frame(frame, time_ns(), URL)
            durations.append(clock() - before)
        next_frame = max(next_frame, due)
        # Delivery reports after each burst, as MessageConnection serves them after each read.
        worker.sink.serve_deliveries()
        await asyncio.sleep(0.001 if rate is not None else 0)
    return durations, burst_starts, time.perf_counter() - started


async def _until_delivered(sink: KafkaSink, stats: Stats) -> None:
    """Wait for every record's delivery report, served each millisecond as a worker's
    reads would serve them: the sink's 100 ms backstop loop alone would add up to
    100 ms to the last burst's latencies."""
    while stats.delivered < stats.records:
        sink.serve_deliveries()
        await asyncio.sleep(0.001)


def _percentiles_us(durations_ns: list[int]) -> tuple[float, float]:
    """p50 and p99 in µs."""
    ordered = sorted(durations_ns)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.99)] / 1000


async def _produce_run(exchange: str, frames: list[bytes], rate: float | None, bootstrap: str,
                       workdir: Path) -> ProduceResult:
    worker, sink, stats = _kafka_worker(exchange, bootstrap, workdir)
    serving = asyncio.create_task(sink.serve())
    try:
        # Warm up on a second of the same feed: the producer id, the fresh topic's first
        # batches (measured: up to 100 ms a delivery in the first ~0.7 s of a new producer).
        await _feed(worker, frames[:WARM_UP_FRAMES], rate)
        await _until_delivered(sink, stats)
        stats.latency_counts = [0] * len(stats.latency_counts)
        durations, burst_starts, elapsed = await _feed(worker, frames, rate)
        await _until_delivered(sink, stats)  # every record acknowledged, as a consumer would see
    finally:
        serving.cancel()
        sink.close(10)
    first: tuple[float | None, float | None] = (
        _percentiles_us([durations[index] for index in burst_starts]) if rate is not None else (None, None))
    return ProduceResult(
        "max" if rate is None else f"{rate:.0f}", len(frames) / elapsed,
        *_percentiles_us(durations), *first,
        stats.latency_percentile_ms(0.5), stats.latency_percentile_ms(0.99),
    )


def produce_tier(exchange: str, frames: list[bytes], rate: float | None, bootstrap: str,
                 workdir: Path) -> ProduceResult:
    return uvloop.run(_produce_run(exchange, frames, rate, bootstrap, workdir))


def naive_produce_us(frames: list[bytes], bootstrap: str, workdir: Path) -> float:
    """µs per frame: naive records, one produce each, waiting for its ack before the next."""
    config = configuration.load(override_file(workdir, bootstrap, {}))
    producer = Producer({**config.kafka.producer})
    topic = config.topics.ticker
    producer.produce(topic, b"warm-up")
    producer.flush(10)
    started = time.perf_counter()
    for frame in frames:
        for value in naive_serialized(frame):
            producer.produce(topic, value)
            producer.flush(10)
    return (time.perf_counter() - started) / len(frames) * 1e6


def median_and_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} | {min(values):.2f}–{max(values):.2f}"
