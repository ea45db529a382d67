"""Upbit parsing on verbatim payloads (tests/fixtures/upbit, see SOURCES.md there)."""

import pytest

from shared.book import OrderBook
from shared.record import ExchangeError, FrameError
from shared.venue import BookMessage
from tests.conftest import fixture_bytes
from workers.upbit import Upbit


@pytest.fixture
def venue() -> Upbit:
    upbit = Upbit("wss://api.upbit.com/websocket/v1", "https://api.upbit.com")
    upbit.learn([upbit.market("BTC", "KRW"), upbit.market("ETH", "KRW")])
    return upbit


def test_default_ticker_keeps_raw_scale(venue: Upbit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("upbit", "ws_ticker_1.json"), 9)
    assert (ticker.symbol, ticker.raw_symbol) == ("BTC-KRW", "KRW-BTC")
    assert ticker.last == "158201000.00000000"
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == (
        "158219000.00000000", "159278000.00000000", "157588000.00000000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("2083.82485091", "331187169240.21526")
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (None, None, None, None)
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1758875205276, 9, "ws")


def test_doc_example_with_plain_integers(venue: Upbit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("upbit", "ws_ticker_doc_default.json"), 1)
    assert ticker.last.isdigit() and ticker.open_24h == "31883000"


def test_exponent_forms_become_plain_decimals(venue: Upbit) -> None:
    frame = fixture_bytes("upbit", "ws_ticker_1.json")
    frame = frame.replace(b'"trade_price":158201000.00000000', b'"trade_price":1.16539E8')
    frame = frame.replace(b'"opening_price":158219000.00000000', b'"opening_price":0E-8')
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.last, ticker.open_24h) == ("116539000", "0.00000000")


@pytest.mark.parametrize("name", ["ws_error_no_ticket.json", "ws_error_invalid_param.json",
                                  "ws_error_wrong_format.json"])
def test_error_frames(venue: Upbit, name: str) -> None:
    with pytest.raises(ExchangeError):
        venue.parse_ws(fixture_bytes("upbit", name), 1)


def test_status_frame_is_keepalive(venue: Upbit) -> None:
    assert venue.parse_ws(fixture_bytes("upbit", "ws_status_up.json"), 1) == []


def test_orderbook_frame_is_not_a_ticker(venue: Upbit) -> None:
    with pytest.raises(FrameError):
        venue.parse_ws(fixture_bytes("upbit", "ws_orderbook_snapshot_trimmed.json"), 1)


def test_null_trade_price_is_rejected(venue: Upbit) -> None:
    frame = fixture_bytes("upbit", "ws_ticker_1.json").replace(b'"trade_price":158201000.00000000',
                                                               b'"trade_price":null')
    with pytest.raises(ValueError):
        venue.parse_ws(frame, 1)


def test_rest_ticker(venue: Upbit) -> None:
    tickers = venue.parse_rest("https://api.upbit.com/v1/ticker?markets=KRW-BTC,KRW-ETH",
                               fixture_bytes("upbit", "rest_ticker.json"), 3, [])
    assert [(t.symbol, t.last, t.source) for t in tickers] == [
        ("BTC-KRW", "162876000.00000000", "rest"), ("ETH-KRW", "5252000.00000000", "rest")]
    assert tickers[0].quote_volume_24h == "167740032580.71786000"
    assert tickers[0].exchange_ts == 1753894995113


def test_market_list_teaches_symbols_by_quote(venue: Upbit) -> None:
    body = b'[{"market":"KRW-BTC"},{"market":"BTC-ETH"},{"market":"KRW-XRP"},{"market":"USDT-BTC"}]'
    assert venue.parse_rest("https://api.upbit.com/v1/market/all", body, 1, ["KRW"]) == []
    assert venue.symbol_of("KRW-XRP") == "XRP-KRW"
    with pytest.raises(FrameError):
        venue.symbol_of("BTC-ETH")


def test_subscribe_is_one_complete_request(venue: Upbit) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "KRW"), venue.market("ETH", "KRW")])
    assert '{"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"]}' in message
    assert message.startswith('[{"ticket": ') and message.endswith('{"format": "DEFAULT"}]')


# Every format the request's format object chooses: DEFAULT (above), SIMPLE keys, and the
# *_LIST forms, whose frame is a JSON array (users replay captures made by other tools).

def test_simple_list_doc_example(venue: Upbit) -> None:
    """Verbatim, and abbreviated by the doc itself: no atv24h, atp24h nor tms."""
    [ticker] = venue.parse_ws(fixture_bytes("upbit", "ws_ticker_simple_list_doc.json"), 4)
    assert (ticker.symbol, ticker.raw_symbol, ticker.last) == ("BTC-KRW", "KRW-BTC", "148956000.0")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("148500000.0", "149064000.0", "148050000.0")
    assert (ticker.volume_24h, ticker.quote_volume_24h, ticker.exchange_ts) == (None, None, None)
    assert (ticker.received_ns, ticker.source) == (4, "ws")


def test_simple_object_as_its_list_element(venue: Upbit) -> None:
    element = fixture_bytes("upbit", "ws_ticker_simple_list_doc.json").strip()[1:-1]
    [ticker] = venue.parse_ws(element, 1)
    assert (ticker.symbol, ticker.last) == ("BTC-KRW", "148956000.0")


def test_json_list_of_default_tickers(venue: Upbit) -> None:
    """JSON_LIST: DEFAULT tickers in an array (no verbatim sample: the real DEFAULT frames in one)."""
    frame = b"[" + fixture_bytes("upbit", "ws_ticker_1.json").strip() + b"," + fixture_bytes(
        "upbit", "ws_ticker_doc_default.json").strip() + b"]"
    first, second = venue.parse_ws(frame, 1)
    assert (first.last, first.volume_24h, first.exchange_ts) == ("158201000.00000000", "2083.82485091", 1758875205276)
    assert second.symbol == "BTC-KRW" and second.open_24h == "31883000"


# --- order book (the `orderbook` type) ---------------------------------------------------


def _book(venue: Upbit, name: str) -> BookMessage:
    [message] = venue.parse_book_ws(fixture_bytes("upbit", name), 5)
    return message


def test_book_snapshot_keeps_the_wire_digits_and_writes_exponents_plain(venue: Upbit) -> None:
    message = _book(venue, "book_ws_orderbook_snapshot_probe_2026_trimmed.json")
    assert (message.raw, message.snapshot, message.update_id, message.first_id) == ("KRW-BTC", True, None, None)
    # 1.16539E8 on the wire; the size's trailing zero (0.00077720) stays.
    assert message.bids == [("116538000", "0.08120946"), ("116537000", "0.01129382")]
    assert message.asks == [("116539000", "0.02054761"), ("116542000", "0.00077720")]
    assert message.exchange_ts == 1790134742106


def test_book_frames_replace_the_book_and_only_a_changed_top_publishes(venue: Upbit) -> None:
    book = OrderBook("KRW-BTC", 2, window=2)
    for name, changed in (("book_ws_orderbook_snapshot_probe_2026_trimmed.json", True),
                          ("book_ws_orderbook_realtime_probe_2026_trimmed.json", True)):
        message = _book(venue, name)
        book.replace(list(message.bids), list(message.asks))  # type: ignore[arg-type]
        book.check()
        assert (book.changed_top() is not None) == changed
    # The REALTIME frame changed the best bid's size only.
    assert book.top(1) == ([("116538000", "0.06612366")], [("116539000", "0.02054761")])


def test_book_simple_frames_of_15_units(venue: Upbit) -> None:
    first = _book(venue, "book_ws_orderbook_simple_1_krwwaves_real_2021.json")
    second = _book(venue, "book_ws_orderbook_simple_2_krwwaves_real_2021.json")
    assert first.raw == "KRW-WAVES" and len(first.bids) == len(first.asks) == 15
    assert first.bids[0] == ("20190.0", "10.0") and first.asks[-1] == ("20400.0", "13.28131849")
    book = OrderBook("KRW-WAVES", 10, window=10)
    book.replace(list(first.bids), list(first.asks))  # type: ignore[arg-type]
    assert book.changed_top() is not None
    # The next frame moves the 12th ask only: below the top 10, no record.
    assert first.asks[11] != second.asks[11] and first.asks[:11] == second.asks[:11]
    book.replace(list(second.bids), list(second.asks))  # type: ignore[arg-type]
    assert book.changed_top() is None


def test_book_zero_price_units_are_no_levels(venue: Upbit) -> None:
    frame = (b'{"type":"orderbook","code":"KRW-BTC","timestamp":1790134742106,"orderbook_units":['
             b'{"ask_price":1.16539E8,"bid_price":1.16538E8,"ask_size":0.5,"bid_size":0.25},'
             b'{"ask_price":1.1654E8,"bid_price":0,"ask_size":0.125,"bid_size":0}],"stream_type":"REALTIME"}')
    [message] = venue.parse_book_ws(frame, 5)
    assert message.bids == [("116538000", "0.25")]
    assert message.asks == [("116539000", "0.5"), ("116540000", "0.125")]


def test_book_status_and_errors(venue: Upbit) -> None:
    assert venue.parse_book_ws(fixture_bytes("upbit", "ws_status_up.json"), 5) == []
    with pytest.raises(ExchangeError, match="INVALID_PARAM"):
        venue.parse_book_ws(fixture_bytes("upbit", "ws_error_invalid_param.json"), 5)
    with pytest.raises(FrameError):
        venue.parse_book_ws(fixture_bytes("upbit", "ws_ticker_1.json"), 5)


def test_book_rest_urls_and_body(venue: Upbit) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("ETH", "KRW")]
    assert venue.book_rest_urls(markets, 10) == [
        "https://api.upbit.com/v1/orderbook?markets=KRW-BTC,KRW-ETH&count=30"]
    body = (b'[{"market":"KRW-BTC","timestamp":1790134742106,"total_ask_size":1.5,"total_bid_size":2.0,'
            b'"orderbook_units":[{"ask_price":106747000,"bid_price":106746000,"ask_size":0.04788000,'
            b'"bid_size":2.0}],"level":0}]')
    [message] = venue.parse_rest_book("https://api.upbit.com/v1/orderbook?markets=KRW-BTC&count=30", body, 5)
    assert (message.raw, message.bids, message.asks) == (
        "KRW-BTC", [("106746000", "2.0")], [("106747000", "0.04788000")])
    assert venue.is_book_rest("https://api.upbit.com/v1/orderbook?markets=KRW-BTC")
    assert not venue.is_book_rest("https://api.upbit.com/v1/ticker?markets=KRW-BTC")
