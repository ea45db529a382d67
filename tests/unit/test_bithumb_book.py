"""Bithumb's `orderbook` frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/bithumb/book_*, see SOURCES.md there); and the simulator's, shaped alike."""

import json
from decimal import Decimal

import msgspec
import pytest

from shared.book import OrderBook
from shared.numbers import NumberError
from shared.record import ExchangeError
from shared.venue import BookMessage
from simulator.bithumb import BithumbSim
from simulator.books import BookUpdate
from simulator.core import universe
from tests.conftest import fixture_bytes, json_shape
from workers.bithumb import BOOK_LEVELS, Bithumb, book_epoch_ms

REST = "https://api.bithumb.com"


@pytest.fixture
def venue() -> Bithumb:
    bithumb = Bithumb("wss://ws-api.bithumb.com/websocket/v1", REST)
    bithumb.learn([bithumb.market("BTC", "KRW"), bithumb.market("ETH", "KRW")])
    return bithumb


def parsed(venue: Bithumb, name_or_frame: str | bytes) -> BookMessage:
    frame = fixture_bytes("bithumb", name_or_frame) if isinstance(name_or_frame, str) else name_or_frame
    [message] = venue.parse_book_ws(frame, 1)
    return message


def kept(message: BookMessage, depth: int = BOOK_LEVELS) -> OrderBook:
    book = OrderBook(message.raw, depth, window=depth)
    book.replace(list(message.bids), list(message.asks))  # type: ignore[arg-type]
    return book


def test_snapshot_frame_every_field(venue: Bithumb) -> None:
    assert parsed(venue, "book_ws_orderbook_snapshot_probe_2026_trimmed.json") == BookMessage(
        "KRW-ETH", True,
        [("3714000", "3.012"), ("3713000", "15.399"), ("3712000", "135.5129")],
        [("3715000", "8.4592"), ("3716000", "3.3766"), ("3717000", "4.1755")],
        exchange_ts=1790133505546,  # the frame's 1790133505546514 µs
    )


def test_the_next_frame_replaces_the_book(venue: Bithumb) -> None:
    snapshot = parsed(venue, "book_ws_orderbook_snapshot_probe_2026_trimmed.json")
    realtime = parsed(venue, "book_ws_orderbook_realtime_probe_2026_trimmed.json")
    assert realtime.snapshot  # every frame is the whole book
    book = kept(snapshot, depth=2)
    assert book.changed_top() == ([("3714000", "3.012"), ("3713000", "15.399")],
                                  [("3715000", "8.4592"), ("3716000", "3.3766")])
    book.replace(list(realtime.bids), list(realtime.asks))  # type: ignore[arg-type]
    assert book.changed_top() == ([("3714000", "4.106"), ("3713000", "15.599")],
                                  [("3715000", "8.4592"), ("3716000", "3.3766")])
    assert realtime.exchange_ts - snapshot.exchange_ts == 81  # type: ignore[operator]  # 80,536 µs, cut to ms


def test_the_same_frame_again_is_conflated(venue: Bithumb) -> None:
    # Over half the real frames repeat the one before (216 of 398 on KRW-BTC).
    message = parsed(venue, "book_ws_orderbook_realtime_probe_2026_trimmed.json")
    book = kept(message)
    assert book.changed_top() is not None
    book.replace(list(message.bids), list(message.asks))  # type: ignore[arg-type]
    assert book.changed_top() is None


def test_a_dust_size_printed_zero_is_no_level(venue: Bithumb) -> None:
    message = parsed(venue, "book_ws_orderbook_snapshot_zero_size_probe_2026_trimmed.json")
    assert message.asks[2] == ("116215000", "0")
    bids, asks = kept(message).changed_top()  # type: ignore[misc]
    assert asks == [("116208000", "0.3313"), ("116209000", "0.0001")]
    assert bids == [("116204000", "0.0037"), ("116203000", "0.0025"), ("116201000", "0.0004")]


def test_padding_units_with_price_zero_are_no_levels(venue: Bithumb) -> None:
    # The real fragment's units, set into the snapshot frame in place of its own.
    units = json.loads(fixture_bytes("bithumb", "book_ws_orderbook_zero_padding_fragment_probe_2026.json"))
    frame = json.loads(fixture_bytes("bithumb", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    frame["orderbook_units"] = units["orderbook_units"]
    message = parsed(venue, json.dumps(frame).encode())
    assert message.asks == [("120000000", "15.721")]
    assert message.bids == [("113000000", "5.5544"), ("112000000", "6.1459"), ("111000000", "2.9321")]


def test_simple_format_frame(venue: Bithumb) -> None:
    assert parsed(venue, "book_ws_orderbook_simple_probe_2026_trimmed.json") == BookMessage(
        "KRW-BTC", True,
        [("116267000", "0.0084"), ("116248000", "0.0213"), ("116239000", "0.0024")],
        [("116279000", "0.0892"), ("116280000", "0.0087"), ("116290000", "0.0025")],
        exchange_ts=None,  # the source cut the frame's time away
    )


def test_microsecond_timestamps_become_milliseconds(venue: Bithumb) -> None:
    message = parsed(venue, "book_ws_orderbook_snapshot_unattributed_2026_trimmed.json")
    assert message.exchange_ts == 1790275855119  # 1790275855119979 µs
    assert book_epoch_ms(1790275855119) == 1790275855119  # a time in ms is left as it is


def test_numbers_keep_their_text_and_exponents_are_written_plain(venue: Bithumb) -> None:
    # Values of our own in the frame's shape: a size longer than a double holds, an exponent.
    frame = fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json").replace(
        b'"bid_size":4.106', b'"bid_size":4.10600000000000000001').replace(
        b'"ask_price":3716000', b'"ask_price":3.716E6')
    message = parsed(venue, frame)
    assert message.bids[0] == ("3714000", "4.10600000000000000001")
    assert message.asks[1] == ("3716000", "3.3766")


@pytest.mark.parametrize(("old", "new", "error"), [
    (b'"bid_size":4.106', b'"bid_size":null', NumberError),
    (b'"bid_size":4.106', b'"bid_size":"4.106x"', NumberError),
    (b'"orderbook_units":[', b'"orderbook_units":["x",', msgspec.ValidationError),
])
def test_a_wrong_unit_fails_the_frame(venue: Bithumb, old: bytes, new: bytes, error: type[Exception]) -> None:
    frame = fixture_bytes("bithumb", "book_ws_orderbook_realtime_probe_2026_trimmed.json").replace(old, new)
    with pytest.raises(error):
        venue.parse_book_ws(frame, 1)


def test_status_heartbeat_and_errors_on_a_book_socket(venue: Bithumb) -> None:
    assert venue.parse_book_ws(fixture_bytes("bithumb", "ws_status_up.json"), 1) == []
    with pytest.raises(ExchangeError, match="WRONG_FORMAT"):
        venue.parse_book_ws(fixture_bytes("bithumb", "ws_error_wrong_format.json"), 1)


def test_depths_and_subscribe(venue: Bithumb) -> None:
    assert (min(venue.book_depths), max(venue.book_depths)) == (1, 15)
    [request] = venue.book_subscribe_messages([venue.market("BTC", "KRW"), venue.market("ETH", "KRW")], 10)
    ticket, book, form = json.loads(request)
    # The real probe's request shape: one request for every code of the socket.
    probe = json.loads(fixture_bytes("bithumb", "ws_subscribe_multi_type_probe.json"))
    assert set(ticket) == set(probe[0]) and form == probe[-1]
    assert book == {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]}


def test_rest_book_urls_batch_markets(venue: Bithumb) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("ETH", "KRW")]
    assert venue.book_rest_urls(markets, 10) == [f"{REST}/v1/orderbook?markets=KRW-BTC,KRW-ETH"]
    assert venue.is_book_rest(f"{REST}/v1/orderbook?markets=KRW-BTC")


def test_rest_book(venue: Bithumb) -> None:
    # No verbatim /v1/orderbook response was found: the documented shape (Upbit's, with
    # `market`), values of our own; `timestamp` in ms.
    body = (b'[{"market":"KRW-BTC","timestamp":1790133600000,"total_ask_size":1.5,"total_bid_size":2.25,'
            b'"orderbook_units":[{"ask_price":116210000,"bid_price":116200000,"ask_size":1.5,"bid_size":2},'
            b'{"ask_price":116220000,"bid_price":116190000,"ask_size":0,"bid_size":0.25}]}]')
    received_ns = 1790133600100 * 1_000_000
    url = f"{REST}/v1/orderbook?markets=KRW-BTC"
    assert venue.parse_rest_book(url, body, received_ns) == [BookMessage(
        "KRW-BTC", True, [("116200000", "2"), ("116190000", "0.25")], [("116210000", "1.5"), ("116220000", "0")],
        exchange_ts=1790133600000)]
    # A time in KST, as the REST ticker's epochs have been seen, is set back 9 h.
    kst = body.replace(b"1790133600000", str(1790133600000 + 9 * 3_600_000).encode())
    assert venue.parse_rest_book(url, kst, received_ns)[0].exchange_ts == 1790133600000


def test_rest_error_under_http_200(venue: Bithumb) -> None:
    with pytest.raises(ExchangeError, match="404: Code not found"):
        venue.parse_rest_book("", fixture_bytes("bithumb", "rest_error_code_not_found.json"), 1)


def values(levels: object) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]  # type: ignore[attr-defined]


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Bithumb) -> None:
    sim = BithumbSim(universe("KRW", 2), rate_per_s=0)
    book = sim.book_feed.book("KRW-ETH")  # type: ignore[union-attr]
    update = BookUpdate(book, book.update_id, book.update_id, [], book.changed_ms, snapshot=True)
    frame = sim.book_snapshot_frame(None, "KRW-ETH", update)  # type: ignore[arg-type]
    assert json_shape(frame) == json_shape(
        fixture_bytes("bithumb", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"))
    message = parsed(venue, frame.encode())
    true_bids, true_asks = book.top(BOOK_LEVELS)
    assert (values(message.bids), values(message.asks)) == (values(true_bids), values(true_asks))
    assert message.exchange_ts == book.changed_ms  # sent in µs
    status, body = sim.rest("/v1/orderbook", {"markets": ["KRW-ETH,KRW-BTC"]})
    assert status == 200
    [eth, _] = venue.parse_rest_book("", body.encode(), book.changed_ms * 1_000_000)
    assert (values(eth.bids), values(eth.asks)) == (values(true_bids), values(true_asks))
    assert sim.rest("/v1/orderbook", {"markets": ["KRW-NOPE"]}) == (
        200, {"error": {"name": 404, "message": "Code not found"}})
