"""A book the REST fallback took while its socket was silent (a stall), from a REST
snapshot without a sequence id (Bybit's, OKX's): when the socket speaks again, its next
change cannot be placed on that book. It was skipped, and so was every change after it:
the book stayed as REST had it, unpublished, until the exchange sent a snapshot unasked
(OKX never does). Now the book is lost (resync gap) and its market resubscribed."""

import json
import time

import pytest

from shared.worker import Connection
from tests.conftest import book_worker, fixture_bytes
from workers.bybit import Bybit

REST_URL = "https://api.bybit.com"


def test_a_change_after_a_rest_book_without_a_sequence_id_loses_the_book_and_resubscribes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    venue = Bybit("wss://stream.bybit.com/v5/public/spot", REST_URL)
    worker, books, markets = book_worker(venue, ["ETH-USDT"])
    connection = Connection(worker, markets, 0, books)
    worker.book_connections = [connection]
    requests: list[list[str]] = []
    monkeypatch.setattr(connection, "send_soon", requests.append)
    # The documented REST answer, for the market the stream's frames are of.
    rest = json.loads(fixture_bytes("bybit", "book_rest_orderbook_spot_doc.json"))
    rest["result"]["s"] = "ETHUSDT"
    [rest_url] = venue.book_rest_urls(markets, 1)
    try:  # the loop never runs: the retry a resubscribe schedules never comes
        books.on_frame(fixture_bytes("bybit", "book_ws_snapshot_trimmed.json"), time.time_ns(), venue.ws_base)
        books.on_rest_body(json.dumps(rest).encode(), time.time_ns(), rest_url)  # the socket silent
        books.on_frame(fixture_bytes("bybit", "book_ws_delta.json"), time.time_ns(), venue.ws_base)  # it speaks
    finally:
        worker.loop.close()
        worker.sink.close(1)
    stats = worker.stats
    assert (stats.book_ws_records, stats.book_rest_records) == (1, 1)
    assert stats.book_resyncs == {"gap": 1} and stats.book_skipped == 0
    assert books.books["ETHUSDT"].book.state == "lost"
    assert requests == [venue.book_resubscribe_messages(markets, 1)]
