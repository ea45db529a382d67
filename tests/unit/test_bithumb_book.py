"""Bithumb's `orderbook` frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/bithumb/book_*, see SOURCES.md there)."""

from decimal import Decimal

import msgspec
import pytest

from shared.book import BookFrame, OrderBook
from shared.numbers import NumberError
from shared.record import ExchangeError
from simulator.bithumb import BithumbSim
from simulator.core import universe
from tests.conftest import fixture_bytes, json_shape
from workers.bithumb import BOOK_LEVELS, BookUnit, Bithumb, book_epoch_ms, book_levels

REST = "https://api.bithumb.com"


@pytest.fixture
def venue() -> Bithumb:
    bithumb = Bithumb("wss://ws-api.bithumb.com/websocket/v1", REST)
    bithumb.learn([bithumb.market("BTC", "KRW"), bithumb.market("ETH", "KRW")])
    return bithumb


def kept(frame: BookFrame, depth: int = BOOK_LEVELS) -> OrderBook:
    book = OrderBook(frame.raw_symbol, depth, window=depth)
    book.replace(frame.bids, frame.asks)
    return book


def test_snapshot_frame_every_field(venue: Bithumb) -> None:
    frame = venue.parse_book_frame(fixture_bytes("bithumb", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    assert frame == BookFrame(
        "KRW-ETH",
        [("3714000", "3.012"), ("3713000", "15.399"), ("3712000", "135.5129")],
        [("3715000", "8.4592"), ("3716000", "3.3766"), ("3717000", "4.1755")],
        None,
        1790133505546,  # the frame's 1790133505546514 µs
    )


def test_the_next_frame_replaces_the_book(venue: Bithumb) -> None:
    snapshot = venue.parse_book_frame(fixture_bytes("bithumb", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    realtime = venue.parse_book_frame(fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json"))
    book = kept(snapshot, depth=2)
    assert book.changed_top() == ([("3714000", "3.012"), ("3713000", "15.399")],
                                  [("3715000", "8.4592"), ("3716000", "3.3766")])
    book.replace(realtime.bids, realtime.asks)
    assert book.changed_top() == ([("3714000", "4.106"), ("3713000", "15.599")],
                                  [("3715000", "8.4592"), ("3716000", "3.3766")])
    assert realtime.exchange_ts - snapshot.exchange_ts == 81  # 80,536 µs apart, each time cut to whole ms


def test_the_same_frame_again_is_conflated(venue: Bithumb) -> None:
    # Over half the real frames repeat the one before (216 of 398 on KRW-BTC).
    frame = venue.parse_book_frame(fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json"))
    book = kept(frame)
    assert book.changed_top() is not None
    book.replace(frame.bids, frame.asks)
    assert book.changed_top() is None


def test_a_dust_size_printed_zero_is_no_level(venue: Bithumb) -> None:
    frame = venue.parse_book_frame(
        fixture_bytes("bithumb", "book_ws_orderbook_snapshot_zero_size_probe_2026_trimmed.json"))
    assert frame.asks[2] == ("116215000", "0")
    bids, asks = kept(frame).changed_top()  # type: ignore[misc]
    assert asks == [("116208000", "0.3313"), ("116209000", "0.0001")]
    assert bids == [("116204000", "0.0037"), ("116203000", "0.0025"), ("116201000", "0.0004")]


def test_padding_units_with_price_zero_are_dropped() -> None:
    class Fragment(msgspec.Struct):
        orderbook_units: list[BookUnit]

    units = msgspec.json.decode(fixture_bytes("bithumb", "book_ws_orderbook_zero_padding_fragment_probe_2026.json"),
                                type=Fragment).orderbook_units
    bids, asks = book_levels(units)
    assert asks == [("120000000", "15.721")]
    assert bids == [("113000000", "5.5544"), ("112000000", "6.1459"), ("111000000", "2.9321")]


def test_simple_format_frame(venue: Bithumb) -> None:
    frame = venue.parse_book_frame(fixture_bytes("bithumb", "book_ws_orderbook_simple_probe_2026_trimmed.json"))
    assert frame == BookFrame(
        "KRW-BTC",
        [("116267000", "0.0084"), ("116248000", "0.0213"), ("116239000", "0.0024")],
        [("116279000", "0.0892"), ("116280000", "0.0087"), ("116290000", "0.0025")],
        None,
        None,  # the source cut the frame's time away
    )


def test_microsecond_timestamps_become_milliseconds(venue: Bithumb) -> None:
    frame = venue.parse_book_frame(
        fixture_bytes("bithumb", "book_ws_orderbook_snapshot_unattributed_2026_trimmed.json"))
    assert frame.exchange_ts == 1790275855119  # 1790275855119979 µs
    assert book_epoch_ms(1790275855119) == 1790275855119  # a time in ms is left as it is


def test_numbers_keep_their_text_and_exponents_are_written_plain(venue: Bithumb) -> None:
    # Values of our own in the frame's shape: a size longer than a double holds, an exponent.
    frame = fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json").replace(
        b'"bid_size":4.106', b'"bid_size":4.10600000000000000001').replace(
        b'"ask_price":3716000', b'"ask_price":3.716E6')
    parsed = venue.parse_book_frame(frame)
    assert parsed.bids[0] == ("3714000", "4.10600000000000000001")
    assert parsed.asks[1] == ("3716000", "3.3766")


@pytest.mark.parametrize(("old", "new", "error"), [
    (b'"bid_size":4.106', b'"bid_size":null', NumberError),
    (b'"bid_size":4.106', b'"bid_size":"4.106x"', NumberError),
    (b'"orderbook_units":[', b'"orderbook_units":["x",', msgspec.ValidationError),
])
def test_a_wrong_unit_fails_the_frame(venue: Bithumb, old: bytes, new: bytes, error: type[Exception]) -> None:
    frame = fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json").replace(old, new)
    with pytest.raises(error):
        venue.parse_book_frame(frame)


def test_a_ticker_frame_is_no_book(venue: Bithumb) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_frame(fixture_bytes("bithumb", "ws_ticker_1.json"))


def test_rest_book_urls_batch_markets(venue: Bithumb) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("ETH", "KRW")]
    assert venue.rest_book_urls(markets, 10) == [f"{REST}/v1/orderbook?markets=KRW-BTC,KRW-ETH"]


def test_rest_book(venue: Bithumb) -> None:
    # No verbatim /v1/orderbook response was found: the documented shape (Upbit's, with
    # `market`), values of our own; `timestamp` in ms.
    body = (b'[{"market":"KRW-BTC","timestamp":1790133600000,"total_ask_size":1.5,"total_bid_size":2.25,'
            b'"orderbook_units":[{"ask_price":116210000,"bid_price":116200000,"ask_size":1.5,"bid_size":2},'
            b'{"ask_price":116220000,"bid_price":116190000,"ask_size":0,"bid_size":0.25}]}]')
    received_ns = 1790133600100 * 1_000_000
    [frame] = venue.parse_rest_book(f"{REST}/v1/orderbook?markets=KRW-BTC", body, received_ns)
    assert frame == BookFrame("KRW-BTC", [("116200000", "2"), ("116190000", "0.25")],
                              [("116210000", "1.5"), ("116220000", "0")], None, 1790133600000)
    # A time in KST, as the REST ticker's epochs have been seen, is set back 9 h.
    kst = body.replace(b"1790133600000", str(1790133600000 + 9 * 3_600_000).encode())
    assert venue.parse_rest_book("", kst, received_ns)[0].exchange_ts == 1790133600000


def test_rest_error_under_http_200(venue: Bithumb) -> None:
    with pytest.raises(ExchangeError, match="404: Code not found"):
        venue.parse_rest_book("", fixture_bytes("bithumb", "rest_error_code_not_found.json"), 1)


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Bithumb) -> None:
    sim = BithumbSim(universe("KRW", 2), rate_per_s=0)
    bids = [(Decimal("3714000"), Decimal("4.106")), (Decimal("3713000"), Decimal("0.0001")),
            (Decimal("3712000"), Decimal("2"))]
    asks = [(Decimal("3715000"), Decimal("8.4592")), (Decimal("3716000"), Decimal("0"))]
    frame = sim.book_frame("KRW-ETH", bids, asks, 1790133505627050, "REALTIME")
    assert json_shape(frame) == json_shape(
        fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json"))
    assert '{"ask_price":0,"bid_price":3712000,"ask_size":0,"bid_size":2}' in frame  # the padding
    assert venue.parse_book_frame(frame.encode()) == BookFrame(
        "KRW-ETH", [("3714000", "4.106"), ("3713000", "0.0001"), ("3712000", "2")],
        [("3715000", "8.4592"), ("3716000", "0")], None, 1790133505627)
    body = sim.rest_book_body([("KRW-ETH", bids, asks)], 1790133505627)
    assert venue.parse_rest_book("", body.encode(), 1790133505700 * 1_000_000) == [
        BookFrame("KRW-ETH", [("3714000", "4.106"), ("3713000", "0.0001"), ("3712000", "2")],
                  [("3715000", "8.4592"), ("3716000", "0")], None, 1790133505627)]
