"""Coinone's ORDERBOOK frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/coinone/book_*, see SOURCES.md there); and the simulator's, shaped alike.

The source cut the socket frames' level arrays with a literal "…" element. A frame with it
is no frame Coinone sends, and fails; the tests that read the levels take it out first.
"""

import json
from decimal import Decimal

import msgspec
import pytest

from shared.book import OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage
from simulator.books import BookUpdate
from simulator.coinone import CoinoneSim
from simulator.core import universe
from tests.conftest import fixture_bytes, json_shape
from workers.coinone import BOOK_LEVELS, Coinone

REST = "https://api.coinone.co.kr"
CUT = '"…"'.encode()
FIRST = "book_ws_orderbook_first_probe_2026_trimmed.json"
NEXT = "book_ws_orderbook_next_probe_2026_trimmed.json"


def without_cut(frame: bytes) -> bytes:
    return frame.replace(b"," + CUT, b"").replace(CUT + b",", b"")


@pytest.fixture
def venue() -> Coinone:
    coinone = Coinone("wss://stream.coinone.co.kr", REST)
    coinone.learn([coinone.market("BTC", "KRW")])
    return coinone


def parsed(venue: Coinone, frame: bytes) -> BookMessage:
    [message] = venue.parse_book_ws(frame, 1)
    return message


def test_the_source_cut_is_not_a_level(venue: Coinone) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_ws(fixture_bytes("coinone", FIRST), 1)


def test_first_frame_asks_worst_first_become_best_first(venue: Coinone) -> None:
    assert parsed(venue, without_cut(fixture_bytes("coinone", FIRST))) == BookMessage(
        "KRW/BTC", True,
        [("116450000", "0.0118"), ("116440000", "0.04695328"), ("116250000", "0.01325806")],
        [("116460000", "0.0232"), ("116470000", "0.00171821"), ("116640000", "0.000657"),
         ("116650000", "0.01198956")],
        update_id=1790134177435001,
        # The id's time: the frame's `timestamp` (1790134167554) is 10 s older than its book.
        exchange_ts=1790134177435,
    )


def test_kept_book_and_the_next_frame(venue: Coinone) -> None:
    first = parsed(venue, without_cut(fixture_bytes("coinone", FIRST)))
    after = parsed(venue, without_cut(fixture_bytes("coinone", NEXT)))
    book = OrderBook(first.raw, 2, window=2)
    book.replace(list(first.bids), list(first.asks))  # type: ignore[arg-type]
    assert book.changed_top() == ([("116450000", "0.0118"), ("116440000", "0.04695328")],
                                  [("116460000", "0.0232"), ("116470000", "0.00171821")])
    assert (after.update_id, after.exchange_ts) == (1790134177753001, 1790134177753)
    assert after.update_id > first.update_id  # type: ignore[operator]
    book.replace(list(after.bids), list(after.asks))  # type: ignore[arg-type]
    assert book.changed_top() is None  # the same top 2 (what the source kept of it)


def test_asks_in_any_order_are_kept_best_first(venue: Coinone) -> None:
    # The socket's asks come worst first; should one come otherwise, the book still sorts them.
    frame = without_cut(fixture_bytes("coinone", FIRST)).replace(
        b'{"price":"116650000","qty":"0.01198956"},', b"").replace(
        b'{"price":"116460000","qty":"0.0232"}]', b'{"price":"116460000","qty":"0.0232"},'
                                                  b'{"price":"116650000","qty":"0.01198956"}]')
    message = parsed(venue, frame)
    book = OrderBook(message.raw, BOOK_LEVELS, window=BOOK_LEVELS)
    book.replace(list(message.bids), list(message.asks))  # type: ignore[arg-type]
    assert [price for price, _ in book.top(4)[1]] == ["116460000", "116470000", "116640000", "116650000"]


def test_short_format_frame(venue: Coinone) -> None:
    assert parsed(venue, without_cut(fixture_bytes("coinone", "ws_orderbook_short_trimmed.json"))) \
        == BookMessage("KRW/BTC", True, [("116450000", "0.0118")],
                       [("116460000", "0.0232"), ("116650000", "0.01198956")],
                       update_id=1790134177753001, exchange_ts=1790134177753)


@pytest.mark.parametrize("name", ["ws_connected.json", "ws_subscribed_ack.json", "ws_pong.json"])
def test_greeting_acks_and_pongs_carry_no_book(venue: Coinone, name: str) -> None:
    assert venue.parse_book_ws(fixture_bytes("coinone", name), 1) == []


def test_errors_and_other_channels_on_a_book_socket(venue: Coinone) -> None:
    with pytest.raises(ExchangeError, match="error 160012: Invalid Topic"):
        venue.parse_book_ws(fixture_bytes("coinone", "ws_error_invalid_topic.json"), 1)
    with pytest.raises(msgspec.ValidationError):  # a ticker's data: dead-lettered
        venue.parse_book_ws(fixture_bytes("coinone", "ws_ticker_1.json"), 1)
    other = without_cut(fixture_bytes("coinone", NEXT)).replace(b'"ORDERBOOK"', b'"TRADE"')
    with pytest.raises(FrameError, match="TRADE"):
        venue.parse_book_ws(other, 1)


def test_depths_and_subscribe(venue: Coinone) -> None:
    assert (min(venue.book_depths), max(venue.book_depths)) == (1, 16)
    assert venue.book_snapshot_ids_grow
    [request] = venue.book_subscribe_messages([venue.market("BTC", "KRW")], 10)
    assert json.loads(request) == json.loads(fixture_bytes("coinone", "book_ws_subscribe_orderbook_probe_2026.json"))


@pytest.mark.parametrize(("depth", "size"), [(1, 5), (5, 5), (10, 10), (12, 15), (16, 16)])
def test_rest_book_url_asks_for_the_smallest_size_that_holds_the_depth(venue: Coinone, depth: int,
                                                                        size: int) -> None:
    [url] = venue.book_rest_urls([venue.market("BTC", "KRW")], depth)
    assert url == f"{REST}/public/v2/orderbook/KRW/BTC?size={size}"
    assert venue.is_book_rest(url)
    assert not venue.is_book_rest(f"{REST}/public/v2/ticker_new/KRW")


def test_rest_book(venue: Coinone) -> None:
    # The same id space as the socket's.
    assert venue.parse_rest_book(f"{REST}/public/v2/orderbook/KRW/BTC?size=16",
                                 fixture_bytes("coinone", "book_rest_orderbook_ccxt_comment_2023.json"), 1) == [
        BookMessage("KRW/BTC", True, [("50048000", "0.01080229")], [("50058000", "0.00272592")],
                    update_id=1701071108673001, exchange_ts=1701071108673)]


def test_rest_error_under_http_200(venue: Coinone) -> None:
    with pytest.raises(ExchangeError, match="error 108: Unknown CryptoCurrency"):
        venue.parse_rest_book("", fixture_bytes("coinone", "rest_error_unknown_currency.json"), 1)


def values(levels: object) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]  # type: ignore[attr-defined]


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Coinone) -> None:
    sim = CoinoneSim(universe("KRW", 2), rate_per_s=0)
    book = sim.book_feed.book("KRW/BTC")  # type: ignore[union-attr]
    assert book.update_id // 1000 >= book.changed_ms - 1000  # ms + a 3-digit counter
    update = BookUpdate(book, book.update_id, book.update_id, [], book.changed_ms, snapshot=True)
    frame = sim.book_snapshot_frame(None, "KRW/BTC", update)  # type: ignore[arg-type]
    assert json_shape(frame) == json_shape(without_cut(fixture_bytes("coinone", NEXT)))
    asks_sent = json.loads(frame)["data"]["asks"]
    assert Decimal(asks_sent[0]["price"]) > Decimal(asks_sent[-1]["price"])  # worst first
    message = parsed(venue, frame.encode())
    true_bids, true_asks = book.top(BOOK_LEVELS)
    assert (values(message.bids), values(message.asks)) == (values(true_bids), values(true_asks))
    assert message.update_id == book.update_id
    status, body = sim.rest("/public/v2/orderbook/KRW/BTC", {"size": ["10"]})
    assert json_shape(json.dumps(body)) == json_shape(
        fixture_bytes("coinone", "book_rest_orderbook_ccxt_comment_2023.json"))
    [rest] = venue.parse_rest_book("", json.dumps(body).encode(), 1)
    assert (values(rest.bids), values(rest.asks)) == (values(true_bids[:10]), values(true_asks[:10]))
    assert rest.update_id == book.update_id
    assert sim.rest("/public/v2/orderbook/KRW/BTC", {"size": ["20"]})[1]["error_code"] == "107"
