"""Bybit's book channel (orderbook.N) on verbatim payloads (tests/fixtures/bybit/book_*, see
SOURCES.md there): parse, then keep the book by Bybit's rules with shared.book."""

import json

import pytest

from shared.book import OrderBook
from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.bybit import Bybit

BOOK_URL = "https://api.bybit.com/v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=10"


@pytest.fixture
def venue() -> Bybit:
    return Bybit("wss://stream.bybit.com/v5/public/spot", "https://api.bybit.com")


def test_real_snapshot_then_the_next_delta(venue: Bybit) -> None:
    [snapshot] = venue.parse_book_ws(fixture_bytes("bybit", "book_ws_snapshot_trimmed.json"), 0)
    assert (snapshot.raw, snapshot.snapshot, snapshot.update_id, snapshot.exchange_ts) == (
        "ETHUSDT", True, 219167606, 1789875210000)
    assert snapshot.checksum is None  # Bybit sends none
    assert list(snapshot.bids) == [("2191.5", "3.25"), ("2191.4", "1.0"), ("2191.0", "0.5")]
    assert list(snapshot.asks) == [("2191.6", "2.0"), ("2191.7", "4.0")]

    [delta] = venue.parse_book_ws(fixture_bytes("bybit", "book_ws_delta.json"), 0)
    assert (delta.raw, delta.snapshot, delta.update_id, delta.exchange_ts) == (
        "ETHUSDT", False, 219167607, 1789875210020)
    # Bybit's rule: each delta's u is the last one's + 1, the runtime's first_id rule.
    assert delta.first_id == delta.update_id == snapshot.update_id + 1

    book = OrderBook("ETHUSDT", depth=10, window=venue.book_window(10))
    book.replace(list(snapshot.bids), list(snapshot.asks))
    book.update_id = snapshot.update_id
    assert book.changed_top() == ([("2191.5", "3.25"), ("2191.4", "1.0"), ("2191.0", "0.5")],
                                  [("2191.6", "2.0"), ("2191.7", "4.0")])
    book.apply(delta.bids, delta.asks)
    book.update_id = delta.update_id
    book.check()
    # "0.0" deletes the best bid; 2191.2 is new, between two levels.
    assert book.changed_top() == ([("2191.4", "1.0"), ("2191.2", "9.0"), ("2191.0", "0.5")],
                                  [("2191.6", "2.0"), ("2191.7", "4.0")])


def test_doc_delta_pretty_printed_with_cts_after_data(venue: Bybit) -> None:
    [delta] = venue.parse_book_ws(fixture_bytes("bybit", "book_ws_delta_doc.json"), 0)
    assert (delta.raw, delta.snapshot, delta.first_id, delta.update_id, delta.exchange_ts) == (
        "BTCUSDT", False, 177400507, 177400507, 1687940967466)
    assert delta.bids[0] == ("30247.20", "30.028")  # the text as sent, trailing zero included
    assert ("30240.00", "0") in delta.bids and ("30248.70", "0") in delta.asks  # deletes
    assert len(delta.bids) == 5 and len(delta.asks) == 7


def test_rest_orderbook_is_a_snapshot_without_update_id(venue: Bybit) -> None:
    [url] = venue.book_rest_urls([venue.market("BTC", "USDT")], 10)
    assert url == "https://api.bybit.com/v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=10"
    assert venue.is_book_rest(url)
    [book] = venue.parse_rest_book(url, fixture_bytes("bybit", "book_rest_orderbook_spot_doc.json"), 0)
    # Its u (230704) numbers the 1000-level stream, not the subscribed one: not an update_id.
    assert (book.raw, book.snapshot, book.update_id, book.first_id, book.exchange_ts) == (
        "BTCUSDT", True, None, None, 1716863719031)
    assert (list(book.bids), list(book.asks)) == ([("65485.47", "47.081829")], [("65557.7", "16.606555")])


def test_rest_orderbook_error_is_the_exchanges(venue: Bybit) -> None:
    # The envelope of an error, in the documented shape, values of our own.
    body = b'{"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":1716863719382}'
    with pytest.raises(ExchangeError, match="10001: Not supported symbols"):
        venue.parse_rest_book(BOOK_URL, body, 0)


@pytest.mark.parametrize("depth, levels", [(1, 50), (10, 50), (50, 50), (51, 200), (200, 200), (201, 1000),
                                           (1000, 1000)])
def test_the_stream_that_holds_the_depth(venue: Bybit, depth: int, levels: int) -> None:
    assert venue.book_window(depth) == levels
    assert venue.book_topic(venue.market("BTC", "USDT"), depth) == f"orderbook.{levels}.BTCUSDT"


def test_more_than_1000_levels_is_refused(venue: Bybit) -> None:
    with pytest.raises(ValueError, match="at most 1000 levels, not 1001"):
        venue.book_window(1001)


def test_book_subscribe_and_unsubscribe_at_most_10_topics_a_request(venue: Bybit) -> None:
    markets = [venue.market(f"C{index}", "USDT") for index in range(12)]
    subscribe = [json.loads(message) for message in venue.book_subscribe_messages(markets, 10)]
    assert [request["op"] for request in subscribe] == ["subscribe", "subscribe"]
    assert [len(request["args"]) for request in subscribe] == [10, 2]
    assert subscribe[0]["args"][0] == "orderbook.50.C0USDT"
    assert list(venue.book_depths) == list(range(1, 1001))


def test_a_lost_book_is_unsubscribed_then_subscribed(venue: Bybit) -> None:
    # Subscribed again without the unsubscribe, a topic is refused and sends no snapshot.
    messages = [json.loads(message) for message in venue.book_resubscribe_messages([venue.market("ETH", "USDT")], 25)]
    assert messages == [{"op": "unsubscribe", "args": ["orderbook.50.ETHUSDT"]},
                        {"op": "subscribe", "args": ["orderbook.50.ETHUSDT"]}]


@pytest.mark.parametrize("name", ["ws_subscribe_ack.json", "ws_unsubscribe_ack.json", "ws_pong.json",
                                  "ws_subscribe_ack_spot_doc.json", "ws_pong_spot_doc.json"])
def test_acks_and_pongs_on_a_book_socket_carry_nothing(venue: Bybit, name: str) -> None:
    assert venue.parse_book_ws(fixture_bytes("bybit", name), 0) == []


def test_a_refused_subscribe_on_a_book_socket_is_the_exchanges_error(venue: Bybit) -> None:
    with pytest.raises(ExchangeError, match="args size"):
        venue.parse_book_ws(fixture_bytes("bybit", "ws_subscribe_error_args_size.json"), 0)


def test_a_book_push_of_another_type_is_dead_lettered(venue: Bybit) -> None:
    frame = fixture_bytes("bybit", "book_ws_delta.json").replace(b'"type":"delta"', b'"type":"partial"')
    with pytest.raises(FrameError, match="partial"):
        venue.parse_book_ws(frame, 0)
