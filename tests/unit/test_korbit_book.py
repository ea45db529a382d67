"""Korbit's `orderbook` frames and REST books, parsed and kept, on verbatim payloads
(tests/fixtures/korbit/book_*, see SOURCES.md there); and the simulator's, shaped alike."""

import json
from decimal import Decimal

import msgspec
import pytest

from shared.book import OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage
from simulator.books import BookUpdate
from simulator.core import universe
from simulator.korbit import KorbitSim
from tests.conftest import fixture_bytes, json_shape
from workers.korbit import BOOK_LEVELS, Korbit

REST = "https://api.korbit.co.kr"
SNAPSHOT = "book_ws_orderbook_snapshot_probe_2026_trimmed.json"
NEXT = "book_ws_orderbook_next_probe_2026_trimmed.json"


@pytest.fixture
def venue() -> Korbit:
    korbit = Korbit("wss://ws-api.korbit.co.kr/v2/public", REST)
    korbit.learn([korbit.market("BTC", "KRW"), korbit.market("ETH", "KRW"), korbit.market("KLAY", "KRW")])
    return korbit


def parsed(venue: Korbit, frame: bytes) -> BookMessage:
    [message] = venue.parse_book_ws(frame, 1)
    return message


def test_snapshot_frame_every_field(venue: Korbit) -> None:
    assert parsed(venue, fixture_bytes("korbit", SNAPSHOT)) == BookMessage(
        "btc_krw", True,
        [("116455000", "0.00499"), ("116453000", "0.01919775"), ("116451000", "0.00059")],
        [("116506000", "0.27522"), ("116538000", "0.00665633"), ("116542000", "0.03897506")],
        exchange_ts=1790134242563,  # data.timestamp, the book's time; the frame's is the send time
    )


def test_the_next_frame_without_snapshot_key_replaces_the_book(venue: Korbit) -> None:
    snapshot = parsed(venue, fixture_bytes("korbit", SNAPSHOT))
    after = parsed(venue, fixture_bytes("korbit", NEXT))
    assert after.snapshot
    book = OrderBook("btc_krw", BOOK_LEVELS, window=BOOK_LEVELS)
    book.replace(list(snapshot.bids), list(snapshot.asks))  # type: ignore[arg-type]
    assert book.changed_top() is not None
    book.replace(list(after.bids), list(after.asks))  # type: ignore[arg-type]
    assert book.changed_top() == (
        [("116455000", "0.00499"), ("116453000", "0.01919775"), ("116451000", "0.00059")],
        [("116506000", "0.27522"), ("116507000", "0.0321"), ("116538000", "0.00665633")])
    assert after.exchange_ts == 1790134243067


def test_stopped_pair_is_one_empty_book(venue: Korbit) -> None:
    message = parsed(venue, fixture_bytes("korbit", "book_ws_orderbook_stopped_pair_probe_2026.json"))
    assert message == BookMessage("klay_krw", True, [], [], exchange_ts=1789456789897)
    book = OrderBook("klay_krw", 10, window=10)
    book.replace([], [])
    assert book.changed_top() == ([], [])  # published once: the book is known, and empty


def test_grouped_levels_keep_price_and_size(venue: Korbit) -> None:
    message = parsed(venue, fixture_bytes("korbit", "book_ws_orderbook_grouped_level_probe_2026_trimmed.json"))
    assert message.bids == [("3700000", "43.33530415"), ("3600000", "17.76253887")]
    assert message.asks == [("3800000", "179.83267892"), ("3900000", "33.36541913")]


def test_acks_and_errors_on_a_book_socket(venue: Korbit) -> None:
    assert venue.parse_book_ws(fixture_bytes("korbit", "ws_ack_success_probe.json"), 1) == []
    with pytest.raises(ExchangeError, match=r"INVALID_SYMBOL: The symbol does not exist \(nope_krw\)"):
        venue.parse_book_ws(fixture_bytes("korbit", "ws_error_invalid_symbol_probe.json"), 1)
    with pytest.raises((FrameError, msgspec.ValidationError)):
        venue.parse_book_ws(fixture_bytes("korbit", "ws_ticker_1.json"), 1)


def test_a_size_sent_as_a_json_number_is_refused(venue: Korbit) -> None:
    frame = fixture_bytes("korbit", NEXT).replace(b'"qty":"0.27522"', b'"qty":0.27522')
    with pytest.raises(msgspec.ValidationError):
        venue.parse_book_ws(frame, 1)


def test_depths_and_subscribe(venue: Korbit) -> None:
    assert (min(venue.book_depths), max(venue.book_depths)) == (1, 30)
    [request] = venue.book_subscribe_messages([venue.market("BTC", "KRW"), venue.market("ETH", "KRW")], 10)
    # The real probe's keys, one request object a pair.
    [probe] = json.loads(fixture_bytes("korbit", "book_ws_subscribe_orderbook_probe_2026.json"))
    objects = json.loads(request)
    assert [set(item) for item in objects] == [set(probe)] * 2
    assert [(item["type"], item["symbols"], item["requestId"]) for item in objects] == [
        ("orderbook", ["btc_krw"], 1), ("orderbook", ["eth_krw"], 2)]


def test_rest_book_one_call_a_pair(venue: Korbit) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("ETH", "KRW")]
    assert venue.book_rest_urls(markets, 10) == [f"{REST}/v2/orderbook?symbol=btc_krw",
                                                 f"{REST}/v2/orderbook?symbol=eth_krw"]
    assert venue.is_book_rest(f"{REST}/v2/orderbook?symbol=btc_krw")


def test_rest_book_names_its_pair_only_in_the_url(venue: Korbit) -> None:
    # No verbatim /v2/orderbook response was found: the documented shape, values of our own.
    body = (b'{"success":true,"data":{"timestamp":1790134300000,'
            b'"bids":[{"price":"116455000","qty":"0.005"},{"price":"116450000","qty":"1.25"}],'
            b'"asks":[{"price":"116506000","qty":"0.3"}]}}')
    assert venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=btc_krw", body, 1) == [BookMessage(
        "btc_krw", True, [("116455000", "0.005"), ("116450000", "1.25")], [("116506000", "0.3")],
        exchange_ts=1790134300000)]


def test_rest_error(venue: Korbit) -> None:
    with pytest.raises(ExchangeError, match="400: INVALID_CURRENCY_PAIR"):
        venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=nope_krw",
                              fixture_bytes("korbit", "rest_error_invalid_pair_probe.json"), 1)


def values(levels: object) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]  # type: ignore[attr-defined]


def test_simulated_frames_are_shaped_like_the_real_ones(venue: Korbit) -> None:
    sim = KorbitSim(universe("KRW", 2), rate_per_s=0)
    book = sim.book_feed.book("btc_krw")  # type: ignore[union-attr]
    update = BookUpdate(book, book.update_id, book.update_id, [], book.changed_ms, snapshot=True)
    true_bids, true_asks = book.top(BOOK_LEVELS)
    for frame, sample in ((sim.book_snapshot_frame(None, "btc_krw", update), SNAPSHOT),  # type: ignore[arg-type]
                          (sim.book_update_frame(None, "btc_krw", update), NEXT)):  # type: ignore[arg-type]
        assert json_shape(frame) == json_shape(fixture_bytes("korbit", sample))
        message = parsed(venue, frame.encode())
        assert (values(message.bids), values(message.asks)) == (values(true_bids), values(true_asks))
        assert len(message.bids) == BOOK_LEVELS and message.exchange_ts == book.changed_ms
    status, body = sim.rest("/v2/orderbook", {"symbol": ["btc_krw"], "limit": ["5"]})
    [rest] = venue.parse_rest_book(f"{REST}/v2/orderbook?symbol=btc_krw", body.encode(), 1)
    assert (values(rest.bids), values(rest.asks)) == (values(true_bids), values(true_asks))
    assert sim.rest("/v2/orderbook", {"symbol": ["nope_krw"]})[0] == 400
