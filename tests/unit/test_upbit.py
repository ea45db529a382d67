"""Upbit parsing on verbatim payloads (tests/fixtures/upbit, see SOURCES.md there)."""

import pytest

from shared.record import ExchangeError, FrameError
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
