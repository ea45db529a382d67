"""The simulator's Coinbase Advanced Trade endpoint, over a real socket, read by the
worker's own parser: one channel a request, snapshots (in no order) before the ack,
heartbeats, every frame numbered per connection from 0, and the book faults as breaks in
that numbering; the books the frames build are the simulator's true books."""

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect

from shared.book import OrderBook
from shared.record import ExchangeError
from shared.venue import NumberedBookFrame
from simulator.coinbase import ADVANCED_TRADE_PATH, CoinbaseSim
from simulator.core import universe
from workers.coinbase import Coinbase

PRODUCTS = ["BTC-USD", "ETH-USD"]
UPDATES_PER_S = 200


def _run(test: Callable[[CoinbaseSim, ClientConnection, Coinbase], Awaitable[None]]) -> None:
    async def main() -> None:
        sim = CoinbaseSim(universe("USD", 3), rate_per_s=UPDATES_PER_S)
        await sim.start()
        url = f"ws://127.0.0.1:{sim.port}{ADVANCED_TRADE_PATH}"
        venue = Coinbase(f"ws://127.0.0.1:{sim.port}/", f"http://127.0.0.1:{sim.port}", url)
        try:
            async with connect(venue.book_ws_url([], 10), max_size=None) as socket:
                markets = [venue.market(*product_id.split("-")) for product_id in PRODUCTS]
                for message in venue.book_subscribe_messages(markets, 10):
                    await socket.send(message)
                await test(sim, socket, venue)
        finally:
            await sim.stop()
    asyncio.run(asyncio.wait_for(main(), 30))


async def _frames(socket: ClientConnection, venue: Coinbase, count: int) -> list[NumberedBookFrame]:
    return [venue.parse_book_ws((await socket.recv()).encode(), 1) for _ in range(count)]


def test_every_frame_is_numbered_from_0_snapshots_first_heartbeats_too() -> None:
    async def check(sim: CoinbaseSim, socket: ClientConnection, venue: Coinbase) -> None:
        raw = [json.loads(await socket.recv()) for _ in range(4)]
        # Each product's snapshot, then the level2 ack, then the heartbeats ack.
        assert [(frame["channel"], frame["sequence_num"]) for frame in raw] == [
            ("l2_data", 0), ("l2_data", 1), ("subscriptions", 2), ("subscriptions", 3)]
        assert raw[3]["events"] == [{"subscriptions": {"level2": PRODUCTS, "heartbeats": ["heartbeats"]}}]
        snapshot = raw[0]["events"][0]
        prices = [level["price_level"] for level in snapshot["updates"] if level["side"] == "bid"]
        assert prices != sorted(prices, reverse=True)  # in no order, as the real ones
        frames = await _frames(socket, venue, 2 * UPDATES_PER_S)  # two seconds of frames: heartbeats among them
        assert [frame.number for frame in frames] == list(range(4, 4 + len(frames)))
        channels = {json.loads(await socket.recv())["channel"] for _ in range(UPDATES_PER_S)}
        assert channels == {"l2_data", "heartbeats"}
    _run(check)


def test_the_frames_build_the_true_books() -> None:
    async def check(sim: CoinbaseSim, socket: ClientConnection, venue: Coinbase) -> None:
        books = {product_id: OrderBook(product_id, 10) for product_id in PRODUCTS}
        for _ in range(UPDATES_PER_S):
            for message in venue.parse_book_ws((await socket.recv()).encode(), 1).messages:
                book = books[message.raw]
                if message.snapshot:
                    book.replace(message.bids, message.asks)
                else:
                    book.apply(message.bids, message.asks)
                book.check()
        sim.book_feed.control("book_rate", {"per_s": ["0"]})
        try:
            while True:  # what was sent before the freeze
                frame = await asyncio.wait_for(socket.recv(), 0.5)
                for message in venue.parse_book_ws(frame.encode(), 1).messages:
                    books[message.raw].apply(message.bids, message.asks)
        except TimeoutError:
            pass
        for product_id, book in books.items():
            assert book.top(10) == sim.book_feed.book(product_id).top(10)
    _run(check)


def _missing(numbers: list[int]) -> bool:
    return set(range(numbers[0], max(numbers))) - set(numbers) != set()


def _repeated(numbers: list[int]) -> bool:
    return len(set(numbers)) < len(numbers)


def _out_of_order(numbers: list[int]) -> bool:
    return numbers != sorted(numbers)


@pytest.mark.parametrize(("fault", "shows"), [
    ("book_gap", [_missing]),  # a number never sent
    ("book_repeat", [_repeated]),  # a number sent twice
    ("book_reorder", [_out_of_order]),  # a number sent after a higher one
])
def test_a_book_fault_breaks_the_connection_numbering(fault: str, shows: list[Callable[[list[int]], bool]]) -> None:
    async def check(sim: CoinbaseSim, socket: ClientConnection, venue: Coinbase) -> None:
        before = await _frames(socket, venue, 10)
        sim.book_feed.control("fault", {"kind": [fault]})
        numbers = [frame.number for frame in before + await _frames(socket, venue, 50)]
        assert numbers[:10] == list(range(10))
        assert [show(numbers) for show in (_missing, _repeated, _out_of_order)] == [
            show in shows for show in (_missing, _repeated, _out_of_order)], numbers
    _run(check)


def test_an_unknown_channel_is_the_real_error() -> None:
    async def check(sim: CoinbaseSim, socket: ClientConnection, venue: Coinbase) -> None:
        await socket.send(json.dumps({"type": "subscribe", "product_ids": PRODUCTS, "channel": "level3"}))
        with pytest.raises(ExchangeError, match="^authentication failure$"):
            while True:  # the snapshots and acks of the subscribe, then the error
                venue.parse_book_ws((await socket.recv()).encode(), 1)
    _run(check)
