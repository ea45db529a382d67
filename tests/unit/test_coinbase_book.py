"""Coinbase's book channel, the Advanced Trade feed's level2, and the Exchange REST book,
on verbatim payloads (tests/fixtures/coinbase/book_*, see SOURCES.md there): parse, then
apply to an OrderBook."""

import asyncio
import json

import msgspec
import pytest

from shared import config as configuration
from shared.book import BookLost, OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage, NumberedBookFrame
from shared.worker import Connection
from simulator.coinbase import advanced_frame, l2_event
from tests.conftest import book_worker, fixture_bytes
from workers.coinbase import Coinbase, epoch_ms

SNAPSHOT = "book_advanced_ws_l2_data_snapshot_real_2026_trimmed_perp.json"
UPDATE = "book_advanced_ws_l2_data_update_nautilus_synthetic.json"
ACK = "book_advanced_ws_subscriptions_ack_level2_real_2026.json"
HEARTBEATS = "book_advanced_ws_heartbeats_real_2026.json"
ADVANCED_TRADE = "wss://advanced-trade-ws.coinbase.com"
SENT = "2026-12-05T07:00:00.123456Z"


@pytest.fixture
def venue() -> Coinbase:
    return Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com", ADVANCED_TRADE)


def test_the_shipped_config_opens_the_book_sockets_on_advanced_trade() -> None:
    shipped = configuration.load(None).exchange("coinbase")
    venue = Coinbase(shipped.ws_url, shipped.rest_url, shipped.book_ws_url)
    assert venue.book_ws_url([venue.market("BTC", "USD")], 10) == ADVANCED_TRADE
    assert venue.ws_url([]) == "wss://ws-feed.exchange.coinbase.com"  # the ticker stays on the Exchange feed
    # Without book_ws_url, book sockets open the ticker's endpoint (every other exchange).
    assert Coinbase(shipped.ws_url, shipped.rest_url).book_ws_url([], 10) == shipped.ws_url


def test_real_snapshot_numbered_0_is_the_whole_book_unsorted(venue: Coinbase) -> None:
    """The real snapshot came before its subscriptions ack, numbered 0; its levels are in
    no order (offer, bid, bid, offer): the book sorts them."""
    frame = venue.parse_book_ws(fixture_bytes("coinbase", SNAPSHOT), 1)
    sent_ms = epoch_ms("2026-09-07T01:57:58.894355Z")
    assert frame == NumberedBookFrame(0, [BookMessage(
        "BTC-PERP-INTX", True, [("79943.9", "3.0105"), ("79943.8", "0.5")], [("79944.1", "1.2"), ("79944", "0.048")],
        update_id=0, exchange_ts=sent_ms)])
    [message] = frame.messages
    book = OrderBook(message.raw, 5)
    book.replace(message.bids, message.asks)
    book.check()
    assert book.changed_top() == ([("79943.9", "3.0105"), ("79943.8", "0.5")],
                                  [("79944", "0.048"), ("79944.1", "1.2")])


def test_an_update_sets_and_deletes_levels(venue: Coinbase) -> None:
    """The synthetic update (nautilus' fixture): a bid set, an ask deleted by quantity 0."""
    frame = venue.parse_book_ws(fixture_bytes("coinbase", UPDATE), 1)
    assert frame == NumberedBookFrame(1, [BookMessage(
        "BTC-USD", False, [("68900.00", "2.00000000")], [("68901.00", "0.00000000")], update_id=1,
        exchange_ts=epoch_ms("2026-04-07T14:30:01.456789Z"))])
    book = OrderBook("BTC-USD", 5)
    book.replace([("68899.00", "1")], [("68901.00", "3"), ("68902.00", "4")])
    book.apply(frame.messages[0].bids, frame.messages[0].asks)
    book.check()
    assert book.changed_top() == ([("68900.00", "2.00000000"), ("68899.00", "1")], [("68902.00", "4")])


def test_a_crossing_update_loses_the_book(venue: Coinbase) -> None:
    update = fixture_bytes("coinbase", UPDATE).replace(b'"68900.00"', b'"79944"')
    [message] = venue.parse_book_ws(update, 1).messages
    [snapshot] = venue.parse_book_ws(fixture_bytes("coinbase", SNAPSHOT), 1).messages
    book = OrderBook("BTC-PERP-INTX", 5)
    book.replace(snapshot.bids, snapshot.asks)
    book.apply(message.bids, message.asks)
    with pytest.raises(BookLost, match=r"crossed.*best bid 79944, best ask 79944"):
        book.check()


def test_acks_and_heartbeats_are_numbered_and_carry_no_book(venue: Coinbase) -> None:
    """They count in the connection's numbering: the channel must see their numbers."""
    assert venue.parse_book_ws(fixture_bytes("coinbase", ACK), 1) == NumberedBookFrame(1, [])
    assert venue.parse_book_ws(fixture_bytes("coinbase", HEARTBEATS), 1) == NumberedBookFrame(3, [])


def test_the_error_frame_raises(venue: Coinbase) -> None:
    with pytest.raises(ExchangeError, match="^authentication failure$"):
        venue.parse_book_ws(fixture_bytes("coinbase", "book_advanced_ws_error_unknown_channel_real_2026.json"), 1)


def test_subscribe_one_channel_a_message(venue: Coinbase) -> None:
    markets = [venue.market("BTC", "USD"), venue.market("ETH", "USD")]
    level2, heartbeats = venue.book_subscribe_messages(markets, 10)
    assert json.loads(level2) == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"}
    assert json.loads(heartbeats) == {"type": "subscribe", "channel": "heartbeats"}
    unsubscribe, again = venue.book_resubscribe_messages(markets, 10)
    assert json.loads(unsubscribe) == {"type": "unsubscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                                       "channel": "level2"}
    assert json.loads(again) == json.loads(level2)


@pytest.mark.parametrize(("old", "new", "error", "match"), [
    (b'"side":"bid"', b'"side":"buy"', FrameError, "side 'buy'"),
    (b'"type":"snapshot"', b'"type":"l2update"', FrameError, "type 'l2update'"),
    (b'"timestamp":"2026-09-07T01:57:58.894355Z"', b'"timestamp":"2026-09-07 01:57:58"', FrameError, "UTC time"),
    (b'"sequence_num":0,', b"", msgspec.ValidationError, "missing required field `sequence_num`"),
    # A JSON number where Coinbase sends a string is never read through a float.
    (b'"3.0105"', b"3.0105", msgspec.ValidationError, "Expected `str`, got `float`"),
    (b'"0.5"', b'""', msgspec.ValidationError, "length >= 1"),
])
def test_broken_frames_are_rejected(venue: Coinbase, old: bytes, new: bytes, error: type[Exception],
                                    match: str) -> None:
    frame = fixture_bytes("coinbase", SNAPSHOT)
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
    real = fixture_bytes("coinbase", SNAPSHOT).decode()
    parsed = json.loads(real)
    [event] = parsed["events"]
    levels = [(level["side"], level["price_level"], level["new_quantity"]) for level in event["updates"]]
    assert advanced_frame("l2_data", parsed["timestamp"], 0, [
        l2_event("snapshot", "BTC-PERP-INTX", levels, parsed["timestamp"])]) == real
    for name in (ACK, HEARTBEATS):
        real = fixture_bytes("coinbase", name).decode()
        parsed = json.loads(real)
        assert advanced_frame(parsed["channel"], parsed["timestamp"], parsed["sequence_num"], parsed["events"]) == real


def test_a_break_resubscribes_every_market_of_its_socket_in_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live, a break in one socket's numbering loses the books built on it, and asks for
    every market of that socket again in one unsubscribe and one subscribe (8 messages a
    second per IP: not two a market), among them the market still awaiting its
    snapshot; the other socket is left alone."""
    venue = Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com", ADVANCED_TRADE)
    worker, books, markets = book_worker(venue, ["BTC-USD", "SOL-USD", "ETH-USD"])
    stats = worker.stats
    worker.book_connections = [Connection(worker, markets[:2], 0, books), Connection(worker, markets[2:], 1, books)]
    sent: dict[str, list[str]] = {}
    for connection in worker.book_connections:
        connection.session = f"{connection.name}/1"
        monkeypatch.setattr(connection, "send_soon", lambda messages, name=connection.name: sent.setdefault(
            name, []).extend(messages))
    try:  # the loop never runs: the retry a resubscribe schedules never comes
        def frame(session: str, number: int, kind: str, product_id: str) -> None:
            books.on_frame(advanced_frame("l2_data", SENT, number, [
                l2_event(kind, product_id, [("bid", "100", "1"), ("offer", "101", "1")], SENT)]).encode(), 1,
                ADVANCED_TRADE, session)

        frame("coinbase-book#0/1", 0, "snapshot", "BTC-USD")  # SOL-USD's snapshot is still to come
        frame("coinbase-book#1/1", 0, "snapshot", "ETH-USD")
        frame("coinbase-book#0/1", 2, "update", "BTC-USD")  # 1 is missing
    finally:
        worker.loop.close()
        worker.sink.close(1)
    assert sent == {"coinbase-book#0": venue.book_resubscribe_messages(markets[:2], 1)}
    assert [json.loads(message)["product_ids"] for message in sent["coinbase-book#0"]] == [["BTC-USD", "SOL-USD"]] * 2
    assert stats.book_resyncs == {"gap": 1}
    assert (books.books["BTC-USD"].book.state, books.books["ETH-USD"].book.state) == ("lost", "live")


def test_a_socket_that_repeats_old_numbers_is_resubscribed_at_most_once_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket that repeats an old number after every frame was resubscribed at every
    repeat (in the simulator, ~60 requests in 2 s with the snapshots, ~230 before them),
    far beyond Coinbase's 8 messages a second. Now a repeat that finds no book to lose asks
    for nothing while the last request's snapshots are awaited, and a book rebuilt and lost
    again is asked for book_resubscribe_gap_s after the last request, in one request."""
    venue = Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com", ADVANCED_TRADE)
    worker, books, markets = book_worker(venue, ["BTC-USD", "ETH-USD"])
    stats = worker.stats
    connection = Connection(worker, markets, 0, books)
    worker.book_connections = [connection]
    connection.session = "coinbase-book#0/1"
    requests: list[list[str]] = []
    monkeypatch.setattr(connection, "send_soon", requests.append)
    try:  # the loop runs only for the paced resubscribe below
        number = -1

        def frame(kind: str, product_id: str, repeat: bool = False) -> None:
            nonlocal number
            number += not repeat
            books.on_frame(advanced_frame("l2_data", SENT, number if not repeat else 1, [
                l2_event(kind, product_id, [("bid", "100", "1"), ("offer", "101", "1")], SENT)]).encode(), 1,
                ADVANCED_TRADE, connection.session)

        frame("snapshot", "BTC-USD")
        frame("snapshot", "ETH-USD")
        for _ in range(100):  # awaiting the snapshots: nothing to lose
            frame("update", "BTC-USD")
            frame("update", "BTC-USD", repeat=True)
        assert len(requests) == 1 and stats.book_resyncs == {"gap": 2}
        for _ in range(100):  # each snapshot lost again at the next repeat
            frame("snapshot", "BTC-USD")
            frame("update", "BTC-USD", repeat=True)
        assert len(requests) == 1 and stats.book_resyncs == {"gap": 102}
        worker.loop.run_until_complete(asyncio.sleep(venue.book_resubscribe_gap_s + 0.1))
        assert len(requests) == 2
        assert [json.loads(message)["product_ids"] for message in requests[1]] == [["BTC-USD", "ETH-USD"]] * 2
    finally:
        worker.loop.close()
        worker.sink.close(1)
