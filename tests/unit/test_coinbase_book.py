"""Coinbase's book channel, Advanced Trade `level2`, and its REST product_book, on verbatim
payloads (tests/fixtures/coinbase/book_*, see SOURCES.md there): parse, then apply to an
OrderBook."""

import json
import re
from decimal import Decimal

import msgspec
import pytest

from shared.book import BookLost, BookMessage, OrderBook
from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from simulator.coinbase import advanced_frame, l2_event, level2_ack
from workers.coinbase import Coinbase, epoch_ms


@pytest.fixture
def venue() -> Coinbase:
    return Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com")


def test_real_snapshot_is_read_unsorted_and_kept_sorted(venue: Coinbase) -> None:
    sequence_num, [message] = venue.parse_book_ws(
        fixture_bytes("coinbase", "book_advanced_ws_l2_data_snapshot_real_2026_trimmed_perp.json"))
    assert sequence_num == 0  # the first frame of the connection, before the ack
    assert message == BookMessage("BTC-PERP-INTX", True, [("79943.9", "3.0105"), ("79943.8", "0.5")],
                                  [("79944.1", "1.2"), ("79944", "0.048")], None, 0, 1788746278894)
    book = OrderBook(message.market, depth=10)
    book.replace(message.bids, message.asks)
    book.check()
    assert book.changed_top() == ([("79943.9", "3.0105"), ("79943.8", "0.5")], [("79944", "0.048"), ("79944.1", "1.2")])


def test_acks_and_heartbeats_carry_the_connection_sequence_and_no_book(venue: Coinbase) -> None:
    assert venue.parse_book_ws(fixture_bytes("coinbase", "book_advanced_ws_subscriptions_ack_level2_real_2026.json")) \
        == (1, [])
    assert venue.parse_book_ws(fixture_bytes("coinbase", "book_advanced_ws_heartbeats_real_2026.json")) == (3, [])


def test_an_error_frame_raises(venue: Coinbase) -> None:
    with pytest.raises(ExchangeError, match="authentication failure"):
        venue.parse_book_ws(fixture_bytes("coinbase", "book_advanced_ws_error_unknown_channel_real_2026.json"))


def test_update_keeps_the_texts_and_applies_to_the_rest_book(venue: Coinbase) -> None:
    """The synthetic update (the only update frame in the reference material) on the REST
    book of the same product: the bid is added below the top 5, the ask the book does not
    hold deletes nothing."""
    snapshot = venue.parse_rest_book(fixture_bytes("coinbase", "book_advanced_rest_market_product_book_btcusd_nautilus.json"))
    sequence_num, [update] = venue.parse_book_ws(
        fixture_bytes("coinbase", "book_advanced_ws_l2_data_update_nautilus_synthetic.json"))
    assert sequence_num == 1
    assert update == BookMessage("BTC-USD", False, [("68900.00", "2.00000000")], [("68901.00", "0.00000000")],
                                 None, 1, epoch_ms("2026-04-07T14:30:01.456789Z"))
    book = OrderBook("BTC-USD", depth=10)
    book.replace(snapshot.bids, snapshot.asks)
    assert book.changed_top() is not None
    book.apply(update.bids, update.asks)
    book.check()
    bids, asks = book.changed_top()
    assert bids[-2:] == [("68921.61", "0.04352771"), ("68900.00", "2.00000000")]
    assert asks == snapshot.asks


def test_real_rest_book(venue: Coinbase) -> None:
    url = venue.rest_book_url(venue.market("BTC", "USD"), 10)
    assert url == "https://api.coinbase.com/api/v3/brokerage/market/product_book?product_id=BTC-USD&limit=10"
    message = venue.parse_rest_book(fixture_bytes("coinbase", "book_advanced_rest_market_product_book_btcusd_nautilus.json"))
    assert (message.market, message.snapshot, message.first_id, message.update_id) == ("BTC-USD", True, None, None)
    assert message.exchange_ts == epoch_ms("2026-04-07T00:28:59.662782Z")
    assert message.bids[0] == ("68923.66", "0.17189468") and message.asks[-1] == ("68928", "0.058")
    assert len(message.bids) == len(message.asks) == 5


def test_several_products_in_one_frame_and_a_crossed_update(venue: Coinbase) -> None:
    """A frame built in the documented shape with values of our own: two events, the second
    crossing its book."""
    frame = json.dumps({"channel": "l2_data", "client_id": "", "timestamp": "2026-12-05T07:00:00.123456789Z",
                        "sequence_num": 7, "events": [
                            {"type": "snapshot", "product_id": "ETH-USD", "updates": [
                                {"side": "bid", "event_time": "2026-12-05T07:00:00.1Z", "price_level": "3000.10",
                                 "new_quantity": "1.5"},
                                {"side": "offer", "event_time": "2026-12-05T07:00:00.1Z", "price_level": "3000.20",
                                 "new_quantity": "2"}]},
                            {"type": "update", "product_id": "BTC-USD", "updates": [
                                {"side": "bid", "event_time": "2026-12-05T07:00:00.1Z", "price_level": "68923.67",
                                 "new_quantity": "0.1"}]}]}).encode()
    sequence_num, [eth, btc] = venue.parse_book_ws(frame)
    assert sequence_num == 7 and eth.snapshot and not btc.snapshot
    assert eth.exchange_ts == btc.exchange_ts == 1796454000123
    book = OrderBook("BTC-USD", depth=10)
    snapshot = venue.parse_rest_book(fixture_bytes("coinbase", "book_advanced_rest_market_product_book_btcusd_nautilus.json"))
    book.replace(snapshot.bids, snapshot.asks)
    book.apply(btc.bids, btc.asks)
    with pytest.raises(BookLost, match="crossed"):
        book.check()


def test_subscribe_requests(venue: Coinbase) -> None:
    level2, heartbeats = venue.book_subscribe_messages([venue.market("BTC", "USD"), venue.market("ETH", "USD")])
    assert json.loads(level2) == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"}
    assert json.loads(heartbeats) == {"type": "subscribe", "channel": "heartbeats"}


@pytest.mark.parametrize(("old", "new", "error", "match"), [
    (b'"sequence_num":0,', b"", FrameError, "without sequence_num"),
    (b'"channel":"l2_data"', b'"channel":"level3"', FrameError, "channel 'level3', which is never subscribed"),
    (b'"type":"snapshot"', b'"type":"delta"', FrameError, "event of type 'delta'"),
    (b'"side":"offer"', b'"side":"ask"', FrameError, "side 'ask'"),
    (b'"timestamp":"2026-09-07T01:57:58.894355Z"', b'"timestamp":"2026-09-07 01:57:58"', FrameError, "UTC time"),
    # A JSON number where Coinbase sends a string is never read through a float.
    (b'"price_level":"79944.1"', b'"price_level":79944.1', msgspec.ValidationError, "Expected `str`, got `float`"),
    (b'"new_quantity":"1.2"', b'"new_quantity":""', msgspec.ValidationError, "length >= 1"),
])
def test_broken_frames_are_rejected(venue: Coinbase, old: bytes, new: bytes, error: type[Exception],
                                    match: str) -> None:
    frame = fixture_bytes("coinbase", "book_advanced_ws_l2_data_snapshot_real_2026_trimmed_perp.json")
    assert old in frame
    with pytest.raises(error, match=match):
        venue.parse_book_ws(frame.replace(old, new))


def _to_the_ms(frame: str) -> object:
    """A frame with each time cut to the millisecond (the simulator writes its own digits below it)."""
    return json.loads(re.sub(r'(T\d\d:\d\d:\d\d\.\d{3})\d*Z', r"\1Z", frame))


def test_the_simulator_writes_the_real_snapshot_and_ack() -> None:
    """simulator.coinbase's builders with the real frames' values give those frames, key for
    key and in the same order, to the millisecond."""
    real = fixture_bytes("coinbase", "book_advanced_ws_l2_data_snapshot_real_2026_trimmed_perp.json").decode()
    frame = json.loads(real)
    [event] = frame["events"]
    sent_ms = epoch_ms(frame["timestamp"])
    levels = [(level["side"], Decimal(level["price_level"]), Decimal(level["new_quantity"])) for level in event["updates"]]
    built = advanced_frame("l2_data", 0, sent_ms, [l2_event("snapshot", event["product_id"], levels, sent_ms)])
    assert list(json.loads(built)) == list(frame)
    assert _to_the_ms(built) == _to_the_ms(real)
    ack = fixture_bytes("coinbase", "book_advanced_ws_subscriptions_ack_level2_real_2026.json").decode()
    built = level2_ack(1, epoch_ms(json.loads(ack)["timestamp"]), ["BTC-PERP-INTX", "ETH-PERP-INTX"])
    assert _to_the_ms(built) == _to_the_ms(ack)
