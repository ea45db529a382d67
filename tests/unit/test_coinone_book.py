"""Coinone's ORDERBOOK frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/coinone/book_*, see SOURCES.md there).

The source cut the socket frames' level arrays with a literal "…" element. A frame with it
is no frame Coinone sends, and fails; the tests that read the levels take it out first.
"""

from decimal import Decimal

import msgspec
import pytest

from shared.book import BookFrame, OrderBook
from shared.record import ExchangeError
from simulator.core import universe
from simulator.coinone import CoinoneSim
from tests.conftest import fixture_bytes, json_shape
from workers.coinone import BOOK_LEVELS, Coinone

REST = "https://api.coinone.co.kr"
CUT = '"…"'.encode()


def without_cut(frame: bytes) -> bytes:
    return frame.replace(b"," + CUT, b"").replace(CUT + b",", b"")


@pytest.fixture
def venue() -> Coinone:
    coinone = Coinone("wss://stream.coinone.co.kr", REST)
    coinone.learn([coinone.market("BTC", "KRW")])
    return coinone


def test_the_source_cut_is_not_a_level(venue: Coinone) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_frame(fixture_bytes("coinone", "book_ws_orderbook_first_probe_2026_trimmed.json"))


def test_first_frame_asks_worst_first_become_best_first(venue: Coinone) -> None:
    frame = venue.parse_book_frame(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_first_probe_2026_trimmed.json")))
    assert frame == BookFrame(
        "KRW/BTC",
        [("116450000", "0.0118"), ("116440000", "0.04695328"), ("116250000", "0.01325806")],
        [("116460000", "0.0232"), ("116470000", "0.00171821"), ("116640000", "0.000657"),
         ("116650000", "0.01198956")],
        1790134177435001,
        # The id's time: the frame's `timestamp` (1790134167554) is 10 s older than its book.
        1790134177435,
    )


def test_kept_book_and_the_next_frame(venue: Coinone) -> None:
    first = venue.parse_book_frame(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_first_probe_2026_trimmed.json")))
    after = venue.parse_book_frame(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_next_probe_2026_trimmed.json")))
    book = OrderBook(first.raw_symbol, 2, window=2)
    book.replace(first.bids, first.asks)
    assert book.changed_top() == ([("116450000", "0.0118"), ("116440000", "0.04695328")],
                                  [("116460000", "0.0232"), ("116470000", "0.00171821")])
    assert (after.update_id, after.exchange_ts) == (1790134177753001, 1790134177753)
    assert after.update_id > first.update_id  # type: ignore[operator]
    book.replace(after.bids, after.asks)
    assert book.changed_top() is None  # the same top 2 (what the source kept of it)


def test_asks_in_any_order_are_kept_best_first(venue: Coinone) -> None:
    # The socket's asks come worst first; should one come otherwise, the book still sorts them.
    frame = venue.parse_book_frame(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_first_probe_2026_trimmed.json")).replace(
        b'{"price":"116650000","qty":"0.01198956"},', b"").replace(
        b'{"price":"116460000","qty":"0.0232"}]', b'{"price":"116460000","qty":"0.0232"},'
                                                  b'{"price":"116650000","qty":"0.01198956"}]'))
    book = OrderBook(frame.raw_symbol, BOOK_LEVELS, window=BOOK_LEVELS)
    book.replace(frame.bids, frame.asks)
    assert [price for price, _ in book.top(4)[1]] == ["116460000", "116470000", "116640000", "116650000"]


def test_short_format_frame(venue: Coinone) -> None:
    frame = venue.parse_book_frame(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_short_probe_2026_trimmed.json")))
    assert frame == BookFrame("KRW/BTC", [("116450000", "0.0118")],
                              [("116460000", "0.0232"), ("116650000", "0.01198956")],
                              1790134177753001, 1790134177753)


def test_a_ticker_frame_is_no_book(venue: Coinone) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_frame(fixture_bytes("coinone", "ws_ticker_1.json"))


@pytest.mark.parametrize(("depth", "size"), [(1, 5), (5, 5), (10, 10), (12, 15), (16, 16)])
def test_rest_book_url_asks_for_the_smallest_size_that_holds_the_depth(venue: Coinone, depth: int,
                                                                        size: int) -> None:
    assert venue.rest_book_urls([venue.market("BTC", "KRW")], depth) == [
        f"{REST}/public/v2/orderbook/KRW/BTC?size={size}"]


def test_rest_book(venue: Coinone) -> None:
    [frame] = venue.parse_rest_book(f"{REST}/public/v2/orderbook/KRW/BTC?size=16",
                                    fixture_bytes("coinone", "book_rest_orderbook_ccxt_comment_2023.json"), 1)
    # The same id space as the socket's.
    assert frame == BookFrame("KRW/BTC", [("50048000", "0.01080229")], [("50058000", "0.00272592")],
                              1701071108673001, 1701071108673)


def test_rest_error_under_http_200(venue: Coinone) -> None:
    with pytest.raises(ExchangeError, match="error 108: Unknown CryptoCurrency"):
        venue.parse_rest_book("", fixture_bytes("coinone", "rest_error_unknown_currency.json"), 1)


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Coinone) -> None:
    sim = CoinoneSim(universe("KRW", 2), rate_per_s=0)
    bids = [(Decimal("116450000"), Decimal("0.0118")), (Decimal("116440000"), Decimal("0.04695328"))]
    asks = [(Decimal("116460000"), Decimal("0.0232")), (Decimal("116470000"), Decimal("0.00171821")),
            (Decimal("116640000"), Decimal("0.000657"))]
    frame = sim.book_frame("KRW/BTC", bids, asks, 1790134177753001, 1790134177753)
    assert json_shape(frame) == json_shape(without_cut(
        fixture_bytes("coinone", "book_ws_orderbook_next_probe_2026_trimmed.json")))
    assert '"asks":[{"price":"116640000"' in frame  # worst first
    expected = BookFrame("KRW/BTC", [("116450000", "0.0118"), ("116440000", "0.04695328")],
                         [("116460000", "0.0232"), ("116470000", "0.00171821"), ("116640000", "0.000657")],
                         1790134177753001, 1790134177753)
    assert venue.parse_book_frame(frame.encode()) == expected
    body = sim.rest_book_body("KRW/BTC", bids, asks, 1790134177753001, 1790134177800)
    assert json_shape(body) == json_shape(fixture_bytes("coinone", "book_rest_orderbook_ccxt_comment_2023.json"))
    assert venue.parse_rest_book("", body.encode(), 1) == [expected]
