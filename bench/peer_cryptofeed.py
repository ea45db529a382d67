"""The peer of issue 20 §7, a bench-only extra: cryptofeed keeping Binance books from the
simulator and writing them to Kafka with its own backend (cryptofeed.backends.kafka,
aiokafka). Not a coinstream dependency: it runs in a virtualenv of its own,

    python3.11 -m venv .venv-cryptofeed && .venv-cryptofeed/bin/pip install cryptofeed aiokafka

and bench.e2e.peer_end_to_end starts it as

    .venv-cryptofeed/bin/python bench/peer_cryptofeed.py --ws ws://127.0.0.1:P --rest http://127.0.0.1:P \
        --bootstrap 127.0.0.1:K --topic T --symbols BTC-USDT,ETH-USDT --depth 10

What it does, per depthUpdate event: cryptofeed's own Binance book (the lastUpdateId rule,
a REST snapshot of the least valid limit above the depth, every level a Decimal), then
BookKafka with snapshots_only: the top `depth` of that book as one JSON record, every
message (cryptofeed has no conflation), sent with aiokafka and awaited, one at a time, as
its writer does. What is adapted to the simulator, and nothing on its path per message:
the endpoints (the simulator's, not Binance's); its symbol list (the simulator's
exchangeInfo has no PRICE_FILTER, where cryptofeed reads the tick size); the streams
also sent in a SUBSCRIBE message (the simulator serves books subscribed so, not in the
URL, as Binance serves both) and its ack dropped (a prefix test a message); a ws:// address accepted (cryptofeed insists on wss://, the
simulator serves plain ws:// on 127.0.0.1); one topic for every symbol (cryptofeed's default is a
topic per symbol, which the benchmark's broker would have to create first).
"""

import argparse
import asyncio
from typing import Any

from cryptofeed import FeedHandler
from cryptofeed.backends.kafka import BookKafka
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import Binance
from yapic import json

SIMULATED_TICK_SIZE = "0.00000001"  # any: cryptofeed stores it, its book does not use it


def simulated_binance(ws: str, rest: str) -> type[Binance]:
    """cryptofeed's Binance with the simulator's endpoints."""

    class SimulatedBinance(Binance):
        websocket_endpoints = [WebsocketEndpoint(ws)]
        rest_endpoints = [RestEndpoint(rest, routes=Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"))]

        @classmethod
        def _parse_symbol_data(cls, data: dict[str, Any]) -> Any:
            for symbol in data["symbols"]:
                symbol["filters"] = symbol["filters"] or [{"filterType": "PRICE_FILTER", "tickSize": SIMULATED_TICK_SIZE}]
            return super()._parse_symbol_data(data)

        async def subscribe(self, conn: Any) -> None:
            await super().subscribe(conn)
            streams = conn.address.split("streams=", 1)[1].split("/")
            await conn.write(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))

        async def message_handler(self, msg: str, conn: Any, timestamp: float) -> None:
            if msg.startswith('{"result"'):  # the SUBSCRIBE's ack, which cryptofeed never asks for
                return
            await super().message_handler(msg, conn, timestamp)

    return SimulatedBinance


def accept_plain_websockets() -> None:
    """WSAsyncConn refuses an address that is not wss://: give it one, then the real one."""
    checked_init = WSAsyncConn.__init__

    def init(self: WSAsyncConn, address: str, *args: Any, **kwargs: Any) -> None:
        checked_init(self, "wss://" + address.removeprefix("ws://"), *args, **kwargs)
        self.address = address

    WSAsyncConn.__init__ = init  # type: ignore[method-assign]


class OneTopic(BookKafka):
    def __init__(self, topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._topic = topic

    def topic(self, data: dict[str, Any]) -> str:
        return self._topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws", required=True)
    parser.add_argument("--rest", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. BTC-USDT,ETH-USDT")
    parser.add_argument("--depth", type=int, default=10)
    arguments = parser.parse_args()
    accept_plain_websockets()
    backend = OneTopic(arguments.topic, bootstrap_servers=arguments.bootstrap, acks="all",
                       enable_idempotence=True, snapshots_only=True, numeric_type=str)
    feed = simulated_binance(arguments.ws, arguments.rest)(
        symbols=arguments.symbols.split(","), channels=[L2_BOOK], max_depth=arguments.depth,
        callbacks={L2_BOOK: backend})
    handler = FeedHandler()  # installs uvloop's policy
    # cryptofeed asks for the current loop, which uvloop's policy no longer makes for it.
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler.add_feed(feed)
    handler.run()


if __name__ == "__main__":
    main()
