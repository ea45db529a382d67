"""A quiet market's book compared with REST (BookChannel.on_refresh_body), through
--replay's own path: a refresh's REST body is captured as kind "refresh" and replayed
there. A REST book equal to the one kept by value (printed otherwise) changes nothing; one
that differs shows the stream lost the market unannounced: a whole-book exchange (Upbit)
publishes it, an exchange of changes (Bybit) loses the book (gap), whose stream's next
change is then not applied."""

import json
import time
from pathlib import Path

import pytest

from shared.rest import RestUnavailable
from shared.worker import Connection
from tests.conftest import book_worker, fixture_bytes
from tests.unit.test_book_replay import replay
from workers.bybit import Bybit
from workers.okx import Okx
from workers.upbit import Upbit

UPBIT_WS, UPBIT_REST = "wss://api.upbit.com/websocket/v1", "https://api.upbit.com"
BYBIT_WS, BYBIT_REST = "wss://stream.bybit.com/v5/public/spot", "https://api.bybit.com"


def _upbit_rest(units: list[dict[str, object]]) -> bytes:
    """Upbit's REST orderbook answer (an array of the frame's objects, keyed by market)."""
    return json.dumps([{"market": "KRW-BTC", "timestamp": 1790134742106, "orderbook_units": units}]).encode()


def test_a_quiet_whole_book_market_publishes_its_rest_book_only_when_it_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = fixture_bytes("upbit", "book_ws_orderbook_snapshot_probe_2026_trimmed.json")
    [rest_url] = Upbit(UPBIT_WS, UPBIT_REST).book_rest_urls([Upbit(UPBIT_WS, UPBIT_REST).market("BTC", "KRW")], 2)
    # The frame's units as REST prints them: plain numbers where the socket wrote 1.16539E8.
    same = [{"ask_price": 116539000, "bid_price": 116538000, "ask_size": 0.02054761, "bid_size": 0.08120946},
            {"ask_price": 116542000, "bid_price": 116537000, "ask_size": 0.00077720, "bid_size": 0.01129382}]
    moved = [dict(same[0], bid_size=0.5), same[1]]
    records, stats = replay(tmp_path, capsys, Upbit, UPBIT_WS, UPBIT_REST, ["BTC-KRW"], 2, [
        ("book", UPBIT_WS, frame),
        ("refresh", rest_url, _upbit_rest(same)),
        ("refresh", rest_url, _upbit_rest(moved)),
    ])
    assert [record["source"] for record in records] == ["ws", "rest"]
    assert records[1]["bids"] == [["116538000", "0.5"], ["116537000", "0.01129382"]]
    assert records[1]["seq"] == 2
    assert (stats.refreshed, stats.book_rest_records, stats.book_resyncs) == (1, 1, {})


def _bybit_rest(bids: list[list[str]], asks: list[list[str]]) -> bytes:
    rest = json.loads(fixture_bytes("bybit", "book_rest_orderbook_spot_doc.json"))
    rest["result"].update(s="ETHUSDT", b=bids, a=asks)
    return json.dumps(rest).encode()


def test_a_quiet_book_kept_from_changes_is_lost_when_its_rest_book_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    venue = Bybit(BYBIT_WS, BYBIT_REST)
    [rest_url] = venue.book_rest_urls([venue.market("ETH", "USDT")], 1)
    # The snapshot's top 1 (2191.5 x 3.25 / 2191.6 x 2.0), printed with other trailing zeros.
    same = _bybit_rest([["2191.50", "3.250"], ["2100", "9"]], [["2191.6", "2"]])
    moved = _bybit_rest([["2191.5", "3.5"]], [["2191.6", "2.0"]])
    records, stats = replay(tmp_path, capsys, Bybit, BYBIT_WS, BYBIT_REST, ["ETH-USDT"], 1, [
        ("book", BYBIT_WS, fixture_bytes("bybit", "book_ws_snapshot_trimmed.json")),
        ("refresh", rest_url, same),
        ("refresh", rest_url, moved),
        ("book", BYBIT_WS, fixture_bytes("bybit", "book_ws_delta.json")),  # nothing to follow now
    ])
    assert [record["source"] for record in records] == ["ws"]
    assert stats.book_resyncs == {"gap": 1}
    assert (stats.refreshed, stats.book_rest_records, stats.book_skipped) == (0, 0, 1)


def test_a_refresh_round_makes_at_most_its_calls_the_longest_quiet_first_and_stops_when_the_socket_is_silent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kraken's REST takes a call a second, shared with the tickers' fallback: a round of
    25 quiet books asks for 10, those unheard longest, and the next round the next 10.
    A book asked is not quiet again for rest_refresh_s, answered or not."""
    venue = Okx("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com")
    bases = [f"C{index:02d}" for index in range(25)]
    worker, books, markets = book_worker(venue, [f"{base}-USDT" for base in bases])
    connection = Connection(worker, markets, 0, books)
    asked: list[str] = []

    async def unavailable(url: str, attempts: int = 4) -> tuple[bytes, int, str]:
        asked.append(url)
        raise RestUnavailable("the test's REST is down")

    monkeypatch.setattr(worker, "rest_get", unavailable)
    for quiet_since_ns, market in enumerate(reversed(markets), start=1):  # the last market unheard longest
        state = books.books[market.raw]
        state.book.replace([("1", "1")], [("2", "1")])
        state.heard_ns = quiet_since_ns

    def one_round() -> list[str]:
        asked.clear()
        worker.loop.run_until_complete(books.refresh_quiet(connection))
        return list(asked)
    try:
        rounds = [one_round() for _ in range(4)]
        connection.last_heard = time.monotonic() - worker.runtime.rest_fallback_after_s
        for state in books.books.values():
            state.checked_ns = 0
        silent = one_round()  # the fallback's turn
    finally:
        worker.loop.close()
        worker.sink.close(1)
    longest_first = [url for market in reversed(markets) for url in venue.book_rest_urls([market], 1)]
    assert rounds == [longest_first[:10], longest_first[10:20], longest_first[20:], []]
    assert silent == [] and worker.stats.refreshes == 3


def test_a_whole_book_exchange_asked_again_is_asked_for_every_market_of_the_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Upbit's request replaces the socket's whole subscription: the socket's markets,
    subscribed again after a refresh found a book stale, are asked for again all at once
    when one of them is still not live, never that one alone."""
    venue = Upbit(UPBIT_WS, UPBIT_REST)
    worker, books, markets = book_worker(venue, ["BTC-KRW", "ETH-KRW", "XRP-KRW"])
    connection = Connection(worker, markets, 0, books)
    sent: list[list[str]] = []
    monkeypatch.setattr(connection, "send_soon", sent.append)
    states = [books.books[market.raw] for market in markets]
    for state in states[1:]:
        state.book.replace([("1", "1")], [("2", "1")])  # the first one's snapshot never came
    try:
        books._resubscribe_if_lost(connection, states)
    finally:
        worker.loop.close()
        worker.sink.close(1)
    [request] = sent
    [subscribe] = request
    assert json.loads(subscribe)[1]["codes"] == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


def test_a_quiet_book_s_rest_body_with_a_level_that_is_no_number_is_dead_lettered_and_the_book_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A refresh's REST book that cannot be compared is dead-lettered, counted, and
    nothing else: the book stays live and its stream's next change applies."""
    venue = Bybit(BYBIT_WS, BYBIT_REST)
    [rest_url] = venue.book_rest_urls([venue.market("ETH", "USDT")], 1)
    published, stats = replay(tmp_path, capsys, Bybit, BYBIT_WS, BYBIT_REST, ["ETH-USDT"], 1, [
        ("book", BYBIT_WS, fixture_bytes("bybit", "book_ws_snapshot_trimmed.json")),
        ("refresh", rest_url, _bybit_rest([["2191.5", "3.25x"]], [["2191.6", "2.0"]])),
        ("book", BYBIT_WS, fixture_bytes("bybit", "book_ws_delta.json")),  # still followed
    ])
    books = [record for record in published if "bids" in record]
    assert [record["source"] for record in books] == ["ws", "ws"]
    assert (stats.dead_letters, stats.book_resyncs, stats.refreshed, stats.book_skipped) == (1, {}, 0, 0)
