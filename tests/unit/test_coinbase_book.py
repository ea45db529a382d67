"""Coinbase's book channel, the Exchange feed's level2_batch, and its REST book, on verbatim
payloads (tests/fixtures/coinbase/book_*, see SOURCES.md there): parse, then apply to an
OrderBook."""

import json

import msgspec
import pytest

from shared.book import BookLost, OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage
from tests.conftest import fixture_bytes
from simulator.coinbase import l2_snapshot, l2_update
from workers.coinbase import Coinbase, epoch_ms


SNAPSHOT = "book_exchange_ws_level2_snapshot_yfibtc_real_2021.json"


@pytest.fixture
def venue() -> Coinbase:
    return Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com")


def snapshot_book(venue: Coinbase, depth: int = 5) -> OrderBook:
    [snapshot] = venue.parse_book_ws(fixture_bytes("coinbase", SNAPSHOT), 1)
    book = OrderBook(snapshot.raw, depth)
    book.replace(snapshot.bids, snapshot.asks)
    return book


def test_real_snapshot_is_the_whole_book(venue: Coinbase) -> None:
    [message] = venue.parse_book_ws(fixture_bytes("coinbase", SNAPSHOT), 1)
    assert (message.raw, message.snapshot, message.update_id, message.first_id) == ("YFI-BTC", True, None, None)
    assert message.exchange_ts is None  # 2021 snapshots have no time
    assert (len(message.bids), len(message.asks)) == (207, 458)
    assert message.bids[0] == ("0.82613", "0.020374") and message.asks[0] == ("0.82727", "0.002782")
    book = snapshot_book(venue)
    book.check()
    assert book.changed_top() == (
        [("0.82613", "0.020374"), ("0.82585", "0.017054"), ("0.82584", "0.020175"), ("0.82580", "0.017600"),
         ("0.82547", "0.029582")],
        [("0.82727", "0.002782"), ("0.82739", "0.030000"), ("0.82740", "0.029475"), ("0.82754", "0.030000"),
         ("0.82755", "0.029970")])


def test_real_updates_delete_levels_of_the_snapshot(venue: Coinbase) -> None:
    """The two real updates delete (size "0.000000") an ask in the top 5 and a bid below it."""
    [first] = venue.parse_book_ws(fixture_bytes("coinbase", "book_exchange_ws_l2update_1_yfibtc_real_2021.json"), 1)
    [second] = venue.parse_book_ws(fixture_bytes("coinbase", "book_exchange_ws_l2update_2_yfibtc_real_2021.json"), 1)
    assert first == BookMessage("YFI-BTC", False, [], [("0.82754", "0.000000")], exchange_ts=1618677817132)
    assert second == BookMessage("YFI-BTC", False, [("0.81813", "0.000000")], [], exchange_ts=1618677817159)
    book = snapshot_book(venue)
    book.changed_top()
    book.apply(first.bids, first.asks)
    book.check()
    bids, asks = book.changed_top()
    assert [price for price, _ in asks] == ["0.82727", "0.82739", "0.82740", "0.82755", "0.82757"]
    book.apply(second.bids, second.asks)
    book.check()
    assert book.changed_top() is None  # 0.81813 is below the top 5: conflated


def test_a_crossing_update_loses_the_book(venue: Coinbase) -> None:
    """The one integrity check level2_batch allows (it has no sequence): an update of our own
    that puts a bid at the best ask."""
    update = fixture_bytes("coinbase", "book_exchange_ws_l2update_2_yfibtc_real_2021.json").replace(
        b'["buy","0.81813","0.000000"]', b'["buy","0.82727","0.5"]')
    [message] = venue.parse_book_ws(update, 1)
    book = snapshot_book(venue)
    book.apply(message.bids, message.asks)
    with pytest.raises(BookLost, match=r"crossed.*best bid 0.82727, best ask 0.82727"):
        book.check()
    assert book.state == "lost"


def test_acks_heartbeats_and_new_types_carry_no_book(venue: Coinbase) -> None:
    assert venue.parse_book_ws(fixture_bytes("coinbase", "book_exchange_ws_subscriptions_ack_real_2021.json"), 1) == []
    assert venue.parse_book_ws(fixture_bytes("coinbase", "ws_exchange_heartbeat_doc.json"), 1) == []
    assert venue.parse_book_ws(b'{"type":"status","products":[]}', 1) == []  # a type this does not know


def test_errors_raise(venue: Coinbase) -> None:
    with pytest.raises(ExchangeError, match="Failed to subscribe: level2 requires authentication"):
        venue.parse_book_ws(
            b'{"type":"error","message":"Failed to subscribe","reason":"level2 requires authentication"}', 1)


def test_subscribe_requests_follow_the_real_one(venue: Coinbase) -> None:
    real = json.loads(fixture_bytes("coinbase", "book_exchange_ws_level2_subscribe_request_real_2021.json"))
    markets = [venue.market(*product_id.split("-")) for product_id in real["product_ids"]]
    [subscribe] = venue.book_subscribe_messages(markets, 10)
    assert json.loads(subscribe) == real | {"channels": ["level2_batch", "heartbeat"]}
    unsubscribe, again = venue.book_resubscribe_messages(markets[:1], 10)
    assert json.loads(unsubscribe) == {"type": "unsubscribe", "product_ids": ["SKL-USD"], "channels": ["level2_batch"]}
    assert json.loads(again) == {"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2_batch"]}


@pytest.mark.parametrize(("old", "new", "error", "match"), [
    (b'"buy"', b'"bid"', FrameError, "side 'bid'"),
    (b'"time":"2021-04-17T16:43:37.159235Z"', b'"time":"2021-04-17 16:43:37"', FrameError, "UTC time"),
    (b',"time":"2021-04-17T16:43:37.159235Z"', b"", msgspec.ValidationError, "missing required field `time`"),
    # A JSON number where Coinbase sends a string is never read through a float.
    (b'"0.81813"', b"0.81813", msgspec.ValidationError, "Expected `str`, got `float`"),
    (b'"0.000000"', b'""', msgspec.ValidationError, "length >= 1"),
])
def test_broken_updates_are_rejected(venue: Coinbase, old: bytes, new: bytes, error: type[Exception],
                                     match: str) -> None:
    frame = fixture_bytes("coinbase", "book_exchange_ws_l2update_2_yfibtc_real_2021.json")
    assert old in frame
    with pytest.raises(error, match=match):
        venue.parse_book_ws(frame.replace(old, new), 1)


def test_rest_book_in_the_documented_shape(venue: Coinbase) -> None:
    """No REST book sample exists: a body in the documented shape, values of our own."""
    [url] = venue.book_rest_urls([venue.market("BTC", "USD")], 10)
    assert url == "https://api.exchange.coinbase.com/products/BTC-USD/book?level=2"
    assert venue.is_book_rest(url) and not venue.is_book_rest(url.replace("/book", "/ticker"))
    body = (b'{"bids":[["91234.56","0.01200000",3],["91234.5","1.5",1]],"asks":[["91235.00","0.4",2]],'
            b'"sequence":110582734901,"auction_mode":false,"auction":null,"time":"2026-12-05T07:00:00.123456Z"}')
    assert venue.parse_rest_book(url, body, 1) == [BookMessage(
        "BTC-USD", True, [("91234.56", "0.01200000"), ("91234.5", "1.5")], [("91235.00", "0.4")],
        update_id=110582734901, exchange_ts=epoch_ms("2026-12-05T07:00:00.123456Z"))]
    with pytest.raises(FrameError, match="not /products/{id}/book"):
        venue.parse_rest_book("https://api.exchange.coinbase.com/products/BTC-USD/ticker", body, 1)


def test_the_simulator_writes_the_real_frames() -> None:
    """simulator.coinbase's builders with the real frames' values give those frames."""
    def levels(pairs: list[list[str]]) -> list[tuple[str, str]]:
        return [(price, size) for price, size in pairs]

    real = fixture_bytes("coinbase", "book_exchange_ws_level2_snapshot_yfibtc_real_2021.json").decode()
    snapshot = json.loads(real)
    assert l2_snapshot("YFI-BTC", levels(snapshot["bids"]), levels(snapshot["asks"])) == real
    real = fixture_bytes("coinbase", "book_exchange_ws_l2update_1_yfibtc_real_2021.json").decode()
    built = l2_update("YFI-BTC", [], [("0.82754", "0.000000")], 1618677817132)
    assert built == real.replace(".132926Z", ".132000Z")  # the simulator's time stops at the ms
