"""The stack's ceiling: websockets, msgspec and librdkafka with none of coinstream's own work.

  python -m bench.ceiling --exchange binance --config PATH

One process reads the simulator's socket as the worker does (MessageConnection, no
compression, the configured runtime.read_pause_s and frames_per_read), decodes each
frame into a Struct of the ticker's eight fields, prices kept as sent, encodes a
record of them with a reused msgspec encoder, and produces it with the worker's
librdkafka settings and a delivery callback; when librdkafka's queue is full it
waits for acks. Missing on purpose: the number checks, the symbol map, the full
record, run and seq, the spool, the counters. It is the least work this stack does
for a ticker, measured by the bench beside the worker on the same feed and machine
(bench.e2e.ceiling): the worker's rate over this one says how close coinstream is to
its stack. It is a measuring tool, not a collector: no reconnect, no REST, no dead
letters.
"""

import argparse
import asyncio
import functools
import importlib
import sys
from collections.abc import Callable

import msgspec
import uvloop
from confluent_kafka import KafkaError, Message, Producer
from websockets.asyncio.client import connect

from bench.tiers import RECEIVED_NS, VENUE_CLASSES
from shared import config as configuration
from shared.worker import MessageConnection

# How often the delivered count is printed, for bench.e2e to read.
REPORT_INTERVAL_S = 1.0
# How long to wait for deliveries when librdkafka's queue is full.
QUEUE_FULL_WAIT_S = 0.001


class BinanceTicker(msgspec.Struct):
    s: str
    c: str
    b: str
    a: str
    B: str
    A: str
    v: str
    E: int


class BinanceFrame(msgspec.Struct):
    data: BinanceTicker | None = None  # None: the subscribe ack


class OkxTicker(msgspec.Struct):
    instId: str
    last: str
    bidPx: str
    askPx: str
    bidSz: str
    askSz: str
    vol24h: str
    ts: str


class OkxFrame(msgspec.Struct):
    data: list[OkxTicker] = []  # empty: the subscribe event


class UpbitTicker(msgspec.Struct):
    # Upbit's numbers are JSON numbers: Raw keeps their digits without building a float.
    code: str = ""  # "": the status frame
    trade_price: msgspec.Raw = msgspec.Raw(b"null")
    opening_price: msgspec.Raw = msgspec.Raw(b"null")
    high_price: msgspec.Raw = msgspec.Raw(b"null")
    low_price: msgspec.Raw = msgspec.Raw(b"null")
    acc_trade_volume_24h: msgspec.Raw = msgspec.Raw(b"null")
    acc_trade_price_24h: msgspec.Raw = msgspec.Raw(b"null")
    timestamp: int = 0


class Record(msgspec.Struct):
    symbol: str
    numbers: tuple[str | msgspec.Raw, ...]  # the ticker's six numbers, as sent
    exchange_ts: int | str
    received_ns: int


def binance_records(decode: "msgspec.json.Decoder[BinanceFrame]", frame: bytes, now: int) -> list[Record]:
    ticker = decode.decode(frame).data
    if ticker is None:
        return []
    return [Record(ticker.s, (ticker.c, ticker.b, ticker.a, ticker.B, ticker.A, ticker.v), ticker.E, now)]


def okx_records(decode: "msgspec.json.Decoder[OkxFrame]", frame: bytes, now: int) -> list[Record]:
    return [Record(ticker.instId, (ticker.last, ticker.bidPx, ticker.askPx, ticker.bidSz, ticker.askSz,
                                   ticker.vol24h), ticker.ts, now)
            for ticker in decode.decode(frame).data]


def upbit_records(decode: "msgspec.json.Decoder[UpbitTicker]", frame: bytes, now: int) -> list[Record]:
    ticker = decode.decode(frame)
    if not ticker.code:
        return []
    return [Record(ticker.code, (ticker.trade_price, ticker.opening_price, ticker.high_price, ticker.low_price,
                                 ticker.acc_trade_volume_24h, ticker.acc_trade_price_24h), ticker.timestamp, now)]


PIPELINES = {
    "binance": (BinanceFrame, binance_records),
    "okx": (OkxFrame, okx_records),
    "upbit": (UpbitTicker, upbit_records),
}


def bare_pass(exchange: str) -> Callable[[], Callable[[bytes], list[bytes]]]:
    """The bare stack's decode and encode of a frame, in-process: the other side of
    tests/unit/test_bench_guard.py's ratio (bench.tiers.per_message_us times it)."""
    struct, records = PIPELINES[exchange]
    encode = msgspec.json.Encoder().encode

    def new_pass() -> Callable[[bytes], list[bytes]]:
        decoder = msgspec.json.Decoder(struct)
        return lambda frame: [encode(record) for record in records(decoder, frame, RECEIVED_NS)]
    return new_pass


class BareStack:
    """The bare stack's per-frame work and delivery count, for a producer it is handed:
    what bench.ceiling runs on the socket and bench.profile counts instructions of."""

    def __init__(self, exchange: str, producer_config: dict[str, object], topic: str) -> None:
        self.delivered = 0
        self.producer = Producer({**producer_config, "on_delivery": self.on_delivery})
        self.topic = topic
        struct, self._records = PIPELINES[exchange]
        self._decoder = msgspec.json.Decoder(struct)
        self._encode = msgspec.json.Encoder().encode

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1

    def on_message(self, frame: bytes, received_ns: int) -> None:
        encode, produce, topic = self._encode, self.producer.produce, self.topic
        for record in self._records(self._decoder, frame, received_ns):
            value, key = encode(record), record.symbol.encode()
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    # librdkafka's queue is full: the broker is the bottleneck. Wait for
                    # acks to make room, the bare stack's backpressure (the worker spools).
                    self.producer.poll(QUEUE_FULL_WAIT_S)

    def on_read(self, frames: list[bytes], received_ns: int) -> None:
        """A read's data messages, as MessageConnection hands them over, then the delivery
        reports ready meanwhile."""
        on_message = self.on_message
        for frame in frames:
            on_message(frame, received_ns)
        self.producer.poll(0)


async def run(exchange: str, config_path: str) -> None:
    config = configuration.load(config_path)
    section = config.exchange(exchange)
    # The venue only for its URL and subscribe messages, before the first frame.
    venue_class = getattr(importlib.import_module(f"workers.{exchange}"), VENUE_CLASSES[exchange])
    venue = venue_class(section.ws_url, section.rest_url)
    markets = [venue.market(*symbol.split("-", 1)) for symbol in section.symbols or []]
    topic = config.ticker_topic(exchange)
    runtime = config.runtime_for(exchange)
    bare = BareStack(exchange, config.kafka.producer, topic)
    # Metadata first, as the worker's startup check does: a run once measured 0 records
    # when its first seconds went on a fresh broker's topic lookups.
    bare.producer.list_topics(topic, timeout=10)
    async with connect(venue.ws_url(markets), compression=None, max_size=2**24,
                       create_connection=functools.partial(  # type: ignore[arg-type]
                           MessageConnection, bare.on_read, lambda: None,
                           runtime.read_pause_s, runtime.frames_per_read)) as socket:
        for message in venue.subscribe_messages(markets):
            await socket.send(message)
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            bare.producer.poll(0)
            print(f"ceiling delivered={bare.delivered}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", required=True, choices=sorted(PIPELINES))
    parser.add_argument("--config", required=True, help="an override file, as the worker reads")
    arguments = parser.parse_args()
    try:
        uvloop.run(run(arguments.exchange, arguments.config))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
