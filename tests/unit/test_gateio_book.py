"""Gate's book channel, spot.obu, and its REST book, on verbatim payloads
(tests/fixtures/gateio/book_*, see SOURCES.md there): parse, then apply to an OrderBook."""

import json
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from shared.book import OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage
from tests.conftest import fixture_bytes
from simulator.gateio import obu_push
from workers.gateio import Gateio, obu_level, pair_of_stream


@pytest.fixture
def venue() -> Gateio:
    gateio = Gateio("wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws")
    gateio.learn([gateio.market("BTC", "USDT"), gateio.market("HAI", "ETH")])
    return gateio


def test_full_push_is_the_whole_book_at_u(venue: Gateio) -> None:
    [message] = venue.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_full_doc.json"), 1)
    assert message == BookMessage(
        "BTC_USDT", True, [("104027.1", "509392"), ("104027", "477932")],
        [("104027.2", "44617"), ("104027.4", "39322")], update_id=73777715168, exchange_ts=1747054612673)


def test_change_push_carries_its_first_and_last_ids(venue: Gateio) -> None:
    [message] = venue.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_update_doc.json"), 1)
    assert message == BookMessage(
        "BTC_USDT", False, [("104024.5", "10343"), ("104014.5", "509392")],
        [("104027.2", "0"), ("104027.4", "0")], update_id=73777715212, first_id=73777715169,
        exchange_ts=1747054612695)


def test_the_docs_update_follows_the_docs_snapshot() -> None:
    """The docs' two pushes are contiguous (U = u + 1): applied, the asks are gone and two
    bids are added below the best."""
    gateio = Gateio("wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws")
    [full] = gateio.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_full_doc.json"), 1)
    [change] = gateio.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_update_doc.json"), 1)
    assert change.first_id == full.update_id + 1
    book = OrderBook(full.raw, depth=10, window=obu_level(10))
    book.replace(full.bids, full.asks)
    book.apply(change.bids, change.asks)
    assert book.changed_top() == (
        [("104027.1", "509392"), ("104027", "477932"), ("104024.5", "10343"), ("104014.5", "509392")], [])


def test_acks_and_the_subscribe_request_shape(venue: Gateio) -> None:
    assert venue.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_subscribe_ack_doc.json"), 1) == []
    [request] = venue.book_subscribe_messages([venue.market("BTC", "USDT")], 10)
    documented = json.loads(fixture_bytes("gateio", "book_ws_obu_subscribe_request_doc.json"))
    sent = json.loads(request)
    assert {key: sent[key] for key in documented} | {"time": documented["time"]} == documented
    assert sent["id"] == 1


def test_one_request_a_stream_at_the_level_that_holds_the_depth(venue: Gateio) -> None:
    markets = [venue.market("BTC", "USDT"), venue.market("HAI", "ETH")]
    payloads = [json.loads(request)["payload"] for request in venue.book_subscribe_messages(markets, 51)]
    assert payloads == [["ob.BTC_USDT.400"], ["ob.HAI_ETH.400"]]
    resubscribe = [json.loads(request) for request in venue.book_resubscribe_messages(markets[:1], 10)]
    assert [(request["event"], request["payload"]) for request in resubscribe] == [
        ("unsubscribe", ["ob.BTC_USDT.50"]), ("subscribe", ["ob.BTC_USDT.50"])]
    assert venue.book_window(10) == 50 and venue.book_window(51) == 400
    assert [obu_level(depth) for depth in (1, 10, 50, 51, 400)] == [50, 50, 50, 400, 400]
    with pytest.raises(ValueError, match="book_depth 401: Gate's spot.obu serves at most 400 levels"):
        obu_level(401)


def test_a_second_subscribe_of_a_stream_is_an_error(venue: Gateio) -> None:
    with pytest.raises(ExchangeError, match="spot.obu subscribe: error 2: Alert sub ob.BTC_USDT.400"):
        venue.parse_book_ws(fixture_bytes("gateio", "book_ws_obu_duplicate_subscribe_error_doc.json"), 1)


@pytest.mark.parametrize(("old", "new", "error", "match"), [
    (b'"U": 73777715169,', b"", FrameError, "change push of 'ob.BTC_USDT.50' without U"),
    (b'"u": 73777715212,', b"", FrameError, "without u"),
    (b'"ob.BTC_USDT.50"', b'"BTC_USDT"', FrameError, "no ob.<pair>.<level>"),
    # A JSON number where Gate sends a string is never read through a float.
    (b'["104024.5", "10343"]', b'[104024.5, "10343"]', msgspec.ValidationError, "Expected `str`, got `float`"),
    (b'"channel": "spot.obu"', b'"channel": "spot.ob"', FrameError, "neither a spot.obu push"),
])
def test_broken_pushes_are_rejected(venue: Gateio, old: bytes, new: bytes, error: type[Exception],
                                    match: str) -> None:
    frame = fixture_bytes("gateio", "book_ws_obu_update_doc.json")
    assert old in frame
    with pytest.raises(error, match=match):
        venue.parse_book_ws(frame.replace(old, new), 1)


def test_stream_names() -> None:
    assert pair_of_stream("ob.BTC_USDT.50") == "BTC_USDT"
    assert pair_of_stream("ob.BTC3L_USDT.400") == "BTC3L_USDT"


def test_a_rest_book_is_as_deep_as_the_streams_window_up_to_100_levels(venue: Gateio) -> None:
    """A fallback book of a quiet market is kept at the stream's own id, and a stalled
    socket's next changes apply to it: at the top N alone, a deleted level left the
    record short of the true top N."""
    limits = {depth: parse_qs(urlsplit(venue.book_rest_urls([venue.market("BTC", "USDT")], depth)[0]).query)["limit"]
              for depth in (10, 50, 51, 100, 400)}
    assert limits == {10: ["50"], 50: ["50"], 51: ["100"], 100: ["100"], 400: ["400"]}


def test_real_rest_book_is_the_whole_book_at_its_id(venue: Gateio) -> None:
    [url] = venue.book_rest_urls([venue.market("HAI", "ETH")], 100)
    assert url == "https://api.gateio.ws/api/v4/spot/order_book?currency_pair=HAI_ETH&limit=100&with_id=true"
    assert venue.is_book_rest(url)
    real = fixture_bytes("gateio", "book_rest_order_book_with_id_hai_eth_real_2021.json")
    [message] = venue.parse_rest_book(url, real, 1)
    assert (message.raw, message.snapshot, message.first_id, message.update_id) == ("HAI_ETH", True, None, 2691446)
    assert message.exchange_ts is None  # the 2021 answer has neither `update` nor `current`
    assert message.bids[:2] == [("0.00010322", "5360.209"), ("0.00010276", "20.80412499")]
    assert message.asks[:2] == [("0.00010396", "5876.967"), ("0.0001052", "16944.291")]
    book = OrderBook("HAI_ETH", depth=5)
    book.replace(message.bids, message.asks)
    bids, asks = book.changed_top()
    assert bids[-1] == ("0.00010007", "2133.418") and asks[-1] == ("0.00010677", "3586.613")
    book.check()  # not crossed


def test_documented_rest_book_takes_the_book_time(venue: Gateio) -> None:
    message = BookMessage("BTC_USDT", True, [("1.17", "201.863"), ("1.16", "725.464")],
                          [("1.52", "1.151"), ("1.53", "1.218")], update_id=123456, exchange_ts=1623898993121)
    [url] = venue.book_rest_urls([venue.market("BTC", "USDT")], 2)
    assert venue.parse_rest_book(url, fixture_bytes("gateio", "book_rest_order_book_doc.json"), 1) == [message]
    with pytest.raises(FrameError, match="names no one currency_pair"):
        venue.parse_rest_book(url.replace("currency_pair", "pair"),
                              fixture_bytes("gateio", "book_rest_order_book_doc.json"), 1)



def test_the_simulator_writes_the_docs_pushes_key_for_key() -> None:
    """simulator.gateio.obu_push with the docs' values gives the docs' frames, compacted."""
    def documented(name: str) -> str:
        return json.dumps(json.loads(fixture_bytes("gateio", name)), separators=(",", ":"))

    def levels(pairs: list[list[str]]) -> list[tuple[str, str]]:
        return [(price, size) for price, size in pairs]

    for name in ("book_ws_obu_full_doc.json", "book_ws_obu_update_doc.json"):
        frame = json.loads(fixture_bytes("gateio", name))
        result = frame["result"]
        assert obu_push(result["s"], result.get("U"), result["u"], levels(result["b"]), levels(result["a"]),
                        result["t"], frame["time_ms"]) == documented(name)
