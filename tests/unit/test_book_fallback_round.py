"""A round of REST fallback calls for a book socket's markets ends when the socket is
heard again. A REST book may hold fewer levels than the stream's (Gate's was the top N):
one asked after the socket was back, at the stream's own id, replaced the stream's whole
book, and the stream's next changes could apply to those levels alone (a deleted level
leaves a record short of the true top N). Before, only a call on its way when the socket
was heard was dropped; the round's later calls were made and published."""

import time

import pytest

from shared.worker import Connection
from tests.conftest import book_worker, fixture_bytes
from workers.gateio import Gateio


def test_the_socket_heard_during_a_rounds_first_call_ends_the_round(monkeypatch: pytest.MonkeyPatch) -> None:
    venue = Gateio("wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws")
    worker, books, markets = book_worker(venue, ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
    connection = Connection(worker, markets, 0, books)
    connection.last_heard = time.monotonic() - 10  # down: the fallback polls
    asked: list[str] = []

    async def rest_get(url: str, attempts: int = 4) -> tuple[bytes, int, str]:
        asked.append(url)
        if len(asked) == 1:
            connection.last_heard = time.monotonic()  # the socket answers while this call is on its way
        return fixture_bytes("gateio", "book_rest_order_book_doc.json"), time.time_ns(), url

    monkeypatch.setattr(worker, "rest_get", rest_get)
    try:
        published = worker.loop.run_until_complete(books.rest_poll(markets, "book fallback", fallback_of=connection))
    finally:
        worker.loop.close()
        worker.sink.close(1)
    assert (len(asked), published, worker.stats.book_skipped, worker.stats.book_records) == (1, 0, 1, 0)


def test_a_round_the_socket_stays_silent_through_publishes_every_market(monkeypatch: pytest.MonkeyPatch) -> None:
    venue = Gateio("wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws")
    worker, books, markets = book_worker(venue, ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
    connection = Connection(worker, markets, 0, books)
    connection.last_heard = time.monotonic() - 10

    async def rest_get(url: str, attempts: int = 4) -> tuple[bytes, int, str]:
        return fixture_bytes("gateio", "book_rest_order_book_doc.json"), time.time_ns(), url

    monkeypatch.setattr(worker, "rest_get", rest_get)
    try:
        published = worker.loop.run_until_complete(books.rest_poll(markets, "book fallback", fallback_of=connection))
    finally:
        worker.loop.close()
        worker.sink.close(1)
    assert (published, worker.stats.book_skipped) == (3, 0)
