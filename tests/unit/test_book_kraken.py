"""Kraken's v2 `book` channel on verbatim payloads (tests/fixtures/kraken, see SOURCES.md
there): parse, then keep the book by Kraken's rules with shared.book, checksum included.

The checksum is reproduced on the docs' v2 snapshot here, through the worker's decoder;
the real v1 book-1000 frames are reproduced in test_book_checksums.py. The real v2 update
in the samples comes without the book before it, so its checksum can only be read, not
reproduced.
"""

import json
import zlib
from datetime import datetime, timezone

import pytest

from shared.book import Level, OrderBook
from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.kraken import BOOK_DEPTHS, Kraken


@pytest.fixture
def venue() -> Kraken:
    return Kraken("wss://ws.kraken.com/v2", "https://api.kraken.com")


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp() * 1000)


def docs_checksum(bids: list[Level], asks: list[Level]) -> int:
    """Kraken's rule as the v2 checksum guide states it, written out plainly: for each of the
    top 10 asks, then the top 10 bids, the price and then the qty with '.' removed and the
    leading zeros stripped; CRC32 of the concatenation, unsigned."""
    text = ""
    for price, qty in asks[:10] + bids[:10]:
        text += price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
    return zlib.crc32(text.encode())


def doc_snapshot_book(venue: Kraken, depth: int = 10) -> OrderBook:
    [snapshot] = venue.parse_book_ws(fixture_bytes("kraken", "ws_v2_book_snapshot_doc.json"), 0)
    book = OrderBook(snapshot.raw, depth=depth, window=venue.book_window(depth), checksum=venue.book_checksum)
    book.replace(list(snapshot.bids), list(snapshot.asks))
    book.check(snapshot.checksum)
    return book


def test_docs_snapshot_parsed_keeps_the_wire_digits_and_its_checksum_matches(venue: Kraken) -> None:
    [snapshot] = venue.parse_book_ws(fixture_bytes("kraken", "ws_v2_book_snapshot_doc.json"), 0)
    assert (snapshot.raw, snapshot.snapshot, snapshot.update_id, snapshot.first_id) == ("BTC/USD", True, None, None)
    assert snapshot.checksum == 3310070434  # unsigned, above 2**31
    assert snapshot.exchange_ts == ms("2023-10-06T17:35:55.440") == 1696613755440
    assert snapshot.bids[0] == ("45283.5", "0.10000000")  # the JSON number's text, trailing zeros kept
    assert snapshot.asks[0] == ("45285.2", "0.00100000")
    assert len(snapshot.bids) == len(snapshot.asks) == 10
    book = doc_snapshot_book(venue)
    assert docs_checksum(*book.top(10)) == 3310070434
    assert book.state == "live"


def test_real_update_parsed(venue: Kraken) -> None:
    [update] = venue.parse_book_ws(fixture_bytes("kraken", "book_ws_v2_update_btcusd.json"), 0)
    # No sequence: first_id None, the checksum is the only check.
    assert (update.raw, update.snapshot, update.update_id, update.first_id) == ("BTC/USD", False, None, None)
    assert list(update.bids) == []
    assert list(update.asks) == [("62807.0", "0.00000000"), ("62818.8", "0.65540712")]  # 0.00000000 deletes
    assert update.checksum == 4249465476
    assert update.exchange_ts == ms("2026-08-16T23:37:03.745") == 1786923423745


def test_an_update_of_our_own_keeps_the_checksum(venue: Kraken) -> None:
    book = doc_snapshot_book(venue)
    bids, asks = book.top(10)
    # An update in the documented shape, values of our own: a new best bid (the 10th bid
    # leaves the depth-10 book, and no message deletes it) and asks out of order, a delete
    # of the second and a new size of the first. Its checksum is the docs' rule, above.
    new_bids = [("45283.6", "0.25000000")] + bids[:9]
    new_asks = [("45285.2", "0.00200000")] + asks[2:]
    frame = json.dumps({"channel": "book", "type": "update", "data": [{
        "symbol": "BTC/USD", "bids": [{"price": "PRICE_1", "qty": "QTY_1"}],
        "asks": [{"price": "PRICE_2", "qty": "QTY_2"}, {"price": "PRICE_3", "qty": "QTY_3"}],
        "checksum": docs_checksum(new_bids, new_asks), "timestamp": "2023-10-06T17:35:56.000001Z"}]})
    for name, text in (("PRICE_1", "45283.6"), ("QTY_1", "0.25000000"), ("PRICE_2", "45286.4"),
                       ("QTY_2", "0.00000000"), ("PRICE_3", "45285.2"), ("QTY_3", "0.00200000")):
        frame = frame.replace(f'"{name}"', text)  # JSON numbers, as Kraken writes them
    [update] = venue.parse_book_ws(frame.encode(), 0)
    book.apply(update.bids, update.asks)
    book.check(update.checksum)
    assert book.top(10) == (new_bids, new_asks)
    assert book.changed_top() == (new_bids, new_asks)


def test_depth_27_is_refused_only_in_the_ack(venue: Kraken) -> None:
    with pytest.raises(ExchangeError, match="^subscribe: Subscription depth not supported$"):
        venue.parse_book_ws(fixture_bytes("kraken", "book_ws_v2_subscribe_error_depth27.json"), 0)


def test_the_depths_kraken_accepts_and_the_window_kept(venue: Kraken) -> None:
    # Any other book_depth is refused at the worker's start (tests/integration/test_kraken.py).
    assert tuple(venue.book_depths) == BOOK_DEPTHS == (10, 25, 100, 500, 1000)
    assert [venue.book_window(depth) for depth in BOOK_DEPTHS] == list(BOOK_DEPTHS)


def test_book_subscribe_in_the_documented_shape(venue: Kraken) -> None:
    real = json.loads(fixture_bytes("kraken", "book_ws_v2_subscribe_request.json"))
    markets = [venue.market(f"C{index}", "USD") for index in range(51)]
    first, second = map(json.loads, venue.book_subscribe_messages(markets, 25))
    assert first["method"] == real["method"] == "subscribe"
    assert first["params"]["channel"] == real["params"]["channel"] == "book"
    assert (first["params"]["depth"], first["params"]["snapshot"]) == (25, True)
    assert len(first["params"]["symbol"]) == 50 and second["params"]["symbol"] == ["C50/USD"]
    unsubscribe, subscribe = map(json.loads, venue.book_resubscribe_messages(markets[:1], 25))
    assert unsubscribe == {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["C0/USD"], "depth": 25}}
    assert subscribe == {"method": "subscribe", "params": {"channel": "book", "symbol": ["C0/USD"], "depth": 25,
                                                           "snapshot": True}}


@pytest.mark.parametrize("name", ["ws_status.json", "ws_heartbeat.json", "ws_subscribe_ack.json"])
def test_status_heartbeat_and_acks_on_a_book_socket_carry_nothing(venue: Kraken, name: str) -> None:
    assert venue.parse_book_ws(fixture_bytes("kraken", name), 0) == []


def test_a_book_push_without_checksum_is_dead_lettered(venue: Kraken) -> None:
    frame = fixture_bytes("kraken", "book_ws_v2_update_btcusd.json").replace(b'"checksum":4249465476,', b"")
    with pytest.raises(FrameError, match="without checksum"):
        venue.parse_book_ws(frame, 0)


def test_rest_depth_is_a_snapshot_without_the_level_times(venue: Kraken) -> None:
    # The REST key XBTUSDT is known from AssetPairs (a row in the documented shape, our values).
    venue.parse_market_list(json.dumps({"error": [], "result": {"XBTUSDT": {
        "altname": "XBTUSDT", "wsname": "XBT/USDT", "base": "XXBT", "quote": "USDT", "status": "online"}}}).encode(),
        ["USDT"])
    [url] = venue.book_rest_urls([venue.market("BTC", "USDT")], 1000)
    assert url == "https://api.kraken.com/0/public/Depth?pair=XBTUSDT&count=500"  # count: 500 at most
    assert venue.is_book_rest(url)
    [book] = venue.parse_rest_book(url, fixture_bytes("kraken", "book_rest_depth_xbtusdt.json"), 0)
    assert (book.raw, book.snapshot, book.update_id, book.exchange_ts, book.checksum) == (
        "BTC/USDT", True, None, None, None)
    assert book.asks[0] == ("105944.30000", "0.136") and book.bids[-1] == ("105916.70000", "0.005")
    assert len(book.bids) == len(book.asks) == 5


def test_rest_depth_before_asset_pairs_is_read_by_the_altname_it_asked_for(venue: Kraken) -> None:
    venue.learn([venue.market("BTC", "USDT")])
    [url] = venue.book_rest_urls([venue.market("BTC", "USDT")], 10)
    assert url.endswith("?pair=XBTUSDT&count=10")
    [book] = venue.parse_rest_book(url, fixture_bytes("kraken", "book_rest_depth_xbtusdt.json"), 0)
    assert book.raw == "BTC/USDT"


def test_rest_depth_of_a_pair_never_asked_for_is_dead_lettered(venue: Kraken) -> None:
    with pytest.raises(FrameError, match="XBTUSDT"):
        venue.parse_rest_book("https://api.kraken.com/0/public/Depth?pair=SOLUSD&count=10",
                              fixture_bytes("kraken", "book_rest_depth_xbtusdt.json"), 0)
