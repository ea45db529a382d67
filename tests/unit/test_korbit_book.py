"""Korbit's `orderbook` frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/korbit/book_*, see SOURCES.md there)."""

from decimal import Decimal

import msgspec
import pytest

from shared.book import BookFrame, OrderBook
from shared.record import ExchangeError
from simulator.core import universe
from simulator.korbit import KorbitSim
from tests.conftest import fixture_bytes, json_shape
from workers.korbit import BOOK_LEVELS, Korbit

REST = "https://api.korbit.co.kr"


@pytest.fixture
def venue() -> Korbit:
    korbit = Korbit("wss://ws-api.korbit.co.kr/v2/public", REST)
    korbit.learn([korbit.market("BTC", "KRW"), korbit.market("ETH", "KRW"), korbit.market("KLAY", "KRW")])
    return korbit


def test_snapshot_frame_every_field(venue: Korbit) -> None:
    frame = venue.parse_book_frame(fixture_bytes("korbit", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    assert frame == BookFrame(
        "btc_krw",
        [("116455000", "0.00499"), ("116453000", "0.01919775"), ("116451000", "0.00059")],
        [("116506000", "0.27522"), ("116538000", "0.00665633"), ("116542000", "0.03897506")],
        None,
        1790134242563,  # data.timestamp, the book's time; the envelope's is the send time
    )


def test_the_next_frame_without_snapshot_key_replaces_the_book(venue: Korbit) -> None:
    snapshot = venue.parse_book_frame(fixture_bytes("korbit", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    after = venue.parse_book_frame(fixture_bytes("korbit", "book_ws_orderbook_next_probe_2026_trimmed.json"))
    book = OrderBook("btc_krw", BOOK_LEVELS, window=BOOK_LEVELS)
    book.replace(snapshot.bids, snapshot.asks)
    assert book.changed_top() is not None
    book.replace(after.bids, after.asks)
    assert book.changed_top() == (
        [("116455000", "0.00499"), ("116453000", "0.01919775"), ("116451000", "0.00059")],
        [("116506000", "0.27522"), ("116507000", "0.0321"), ("116538000", "0.00665633")])
    assert after.exchange_ts == 1790134243067


def test_stopped_pair_is_one_empty_book(venue: Korbit) -> None:
    frame = venue.parse_book_frame(fixture_bytes("korbit", "book_ws_orderbook_stopped_pair_probe_2026.json"))
    assert frame == BookFrame("klay_krw", [], [], None, 1789456789897)
    book = OrderBook("klay_krw", 10, window=10)
    book.replace(frame.bids, frame.asks)
    assert book.changed_top() == ([], [])  # published once: the book is known, and empty


def test_grouped_levels_keep_price_and_size(venue: Korbit) -> None:
    frame = venue.parse_book_frame(
        fixture_bytes("korbit", "book_ws_orderbook_grouped_level_probe_2026_trimmed.json"))
    assert frame.bids == [("3700000", "43.33530415"), ("3600000", "17.76253887")]
    assert frame.asks == [("3800000", "179.83267892"), ("3900000", "33.36541913")]


def test_a_ticker_frame_is_no_book(venue: Korbit) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_frame(fixture_bytes("korbit", "ws_ticker_1.json"))


def test_a_size_sent_as_a_json_number_is_refused(venue: Korbit) -> None:
    frame = fixture_bytes("korbit", "book_ws_orderbook_next_probe_2026_trimmed.json").replace(
        b'"qty":"0.27522"', b'"qty":0.27522')
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_frame(frame)


def test_rest_book_one_call_a_pair(venue: Korbit) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("ETH", "KRW")]
    assert venue.rest_book_urls(markets, 10) == [f"{REST}/v2/orderbook?symbol=btc_krw",
                                                 f"{REST}/v2/orderbook?symbol=eth_krw"]


def test_rest_book_names_its_pair_only_in_the_url(venue: Korbit) -> None:
    # No verbatim /v2/orderbook response was found: the documented shape, values of our own.
    body = (b'{"success":true,"data":{"timestamp":1790134300000,'
            b'"bids":[{"price":"116455000","qty":"0.005"},{"price":"116450000","qty":"1.25"}],'
            b'"asks":[{"price":"116506000","qty":"0.3"}]}}')
    [frame] = venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=btc_krw", body, 1)
    assert frame == BookFrame("btc_krw", [("116455000", "0.005"), ("116450000", "1.25")],
                              [("116506000", "0.3")], None, 1790134300000)


def test_rest_error(venue: Korbit) -> None:
    with pytest.raises(ExchangeError, match="400: INVALID_CURRENCY_PAIR"):
        venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=nope_krw",
                              fixture_bytes("korbit", "rest_error_invalid_pair_probe.json"), 1)


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Korbit) -> None:
    sim = KorbitSim(universe("KRW", 2), rate_per_s=0)
    bids = [(Decimal("116455000"), Decimal("0.00499")), (Decimal("116453000"), Decimal("0.01919775"))]
    asks = [(Decimal("116506000"), Decimal("0.27522"))]
    expected = BookFrame("btc_krw", [("116455000", "0.00499"), ("116453000", "0.01919775")],
                         [("116506000", "0.27522")], None, 1790134242563)
    for snapshot, sample in ((True, "book_ws_orderbook_snapshot_probe_2026_trimmed.json"),
                             (False, "book_ws_orderbook_next_probe_2026_trimmed.json")):
        frame = sim.book_frame("btc_krw", bids, asks, 1790134242563, 1790134242857, snapshot=snapshot)
        assert json_shape(frame) == json_shape(fixture_bytes("korbit", sample))
        assert venue.parse_book_frame(frame.encode()) == expected
    body = sim.rest_book_body(bids, asks, 1790134242563)
    assert venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=btc_krw", body.encode(), 1) == [expected]


def test_simulated_frames_hold_30_levels_a_side() -> None:
    sim = KorbitSim(universe("KRW", 2), rate_per_s=0)
    bids = [(Decimal(1000 - level), Decimal(1)) for level in range(40)]
    frame = msgspec.json.decode(sim.book_frame("btc_krw", bids, [], 1, 2, snapshot=False))
    assert len(frame["data"]["bids"]) == BOOK_LEVELS
