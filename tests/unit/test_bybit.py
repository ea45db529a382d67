"""Bybit parsing on verbatim payloads (tests/fixtures/bybit, see SOURCES.md there)."""

import json

import msgspec
import pytest

from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.bybit import Bybit

TICKERS_URL = "https://api.bybit.com/v5/market/tickers?category=spot"


@pytest.fixture
def venue() -> Bybit:
    bybit = Bybit("wss://stream.bybit.com/v5/public/spot", "https://api.bybit.com")
    bybit.learn([bybit.market("BTC", "USDT"), bybit.market("ETH", "USDT")])
    return bybit


def test_live_spot_ticker_every_field(venue: Bybit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("bybit", "ws_ticker_1.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("bybit", "BTC-USDT", "BTCUSDT")
    assert ticker.last == "84547.99"
    # The spot ticker has no best bid/ask.
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (None, None, None, None)
    # prevPrice24h is the rolling open; Bybit trims trailing zeros ("80900").
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("80900", "86584.84", "80609.26")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("9416.834648", "792190557.2149933")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1740835319867, 7, "ws")


def test_doc_spot_ticker_pretty_printed(venue: Bybit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("bybit", "ws_ticker_spot_doc.json"), 3)
    assert (ticker.symbol, ticker.last, ticker.open_24h) == ("BTC-USDT", "21109.77", "20704.93")
    assert (ticker.high_24h, ticker.low_24h) == ("21426.99", "20575")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("6780.866843", "141946527.22907118")
    assert (ticker.bid, ticker.ask, ticker.exchange_ts) == (None, None, 1673853746003)


def test_data_as_an_array_as_the_docs_table_says(venue: Bybit) -> None:
    frame = json.loads(fixture_bytes("bybit", "ws_ticker_1.json"))
    frame["data"] = [frame["data"], {**frame["data"], "symbol": "ETHUSDT", "lastPrice": "2200.5"}]
    tickers = venue.parse_ws(json.dumps(frame).encode(), 1)
    assert [(t.symbol, t.last, t.exchange_ts) for t in tickers] == [
        ("BTC-USDT", "84547.99", 1740835319867), ("ETH-USDT", "2200.5", 1740835319867)]


@pytest.mark.parametrize("name", ["ws_subscribe_ack.json", "ws_subscribe_ack_spot_doc.json",
                                  "ws_unsubscribe_ack.json"])
def test_acks_are_not_tickers(venue: Bybit, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("bybit", name), 1) == []


@pytest.mark.parametrize("frame", [
    fixture_bytes("bybit", "ws_pong.json"),
    fixture_bytes("bybit", "ws_pong_spot_doc.json"),
    # The shape other markets and private streams use, and the legacy one ccxt handles.
    b'{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}',
    b'{"pong":1675418560633}',
])
def test_every_pong_shape_is_a_keepalive_answer(venue: Bybit, frame: bytes) -> None:
    assert venue.parse_ws(frame, 1) == []


def test_args_size_error_is_an_exchange_error(venue: Bybit) -> None:
    with pytest.raises(ExchangeError, match="subscribe: args size >10"):
        venue.parse_ws(fixture_bytes("bybit", "ws_subscribe_error_args_size.json"), 1)


def test_our_own_ping_echoed_back_is_not_understood(venue: Bybit) -> None:
    with pytest.raises(FrameError):
        venue.parse_ws(fixture_bytes("bybit", "ws_ping.json"), 1)


def test_app_ping_is_the_live_ping(venue: Bybit) -> None:
    assert venue.app_ping().encode() == fixture_bytes("bybit", "ws_ping.json")
    assert json.loads(fixture_bytes("bybit", "ws_ping_doc.json"))["op"] == json.loads(venue.app_ping())["op"]
    assert venue.protocol_ping_interval_s == venue.app_ping_interval_s == 20.0


def test_unknown_symbol_is_a_frame_error(venue: Bybit) -> None:
    frame = fixture_bytes("bybit", "ws_ticker_1.json").replace(b'"BTCUSDT"', b'"NOPEUSDT"')
    with pytest.raises(FrameError, match="unknown symbol"):
        venue.parse_ws(frame, 1)


def test_delta_with_missing_fields_is_rejected_not_half_read(venue: Bybit) -> None:
    frame = b'{"topic":"tickers.BTCUSDT","ts":1740835319867,"type":"delta","cs":1,' \
            b'"data":{"symbol":"BTCUSDT","lastPrice":"84548"}}'
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("old, new", [(b'"lastPrice":"84547.99"', b'"lastPrice":84547.99'),
                                      (b'"lastPrice":"84547.99"', b'"lastPrice":""'),
                                      (b'"ts":1740835319867,', b'')])
def test_broken_tickers_raise(venue: Bybit, old: bytes, new: bytes) -> None:
    frame = fixture_bytes("bybit", "ws_ticker_1.json")
    assert old in frame
    with pytest.raises((FrameError, msgspec.ValidationError)):
        venue.parse_ws(frame.replace(old, new), 1)


def test_empty_optional_number_is_null(venue: Bybit) -> None:
    frame = fixture_bytes("bybit", "ws_ticker_1.json").replace(b'"highPrice24h":"86584.84"', b'"highPrice24h":""')
    [ticker] = venue.parse_ws(frame, 1)
    assert ticker.high_24h is None


def test_subscribe_is_chunked_to_ten_args(venue: Bybit) -> None:
    markets = [venue.market(f"C{index}", "USDT") for index in range(23)]
    messages = [json.loads(message) for message in venue.subscribe_messages(markets)]
    assert [len(message["args"]) for message in messages] == [10, 10, 3]
    assert messages[0]["args"][0] == "tickers.C0USDT" and messages[2]["args"][-1] == "tickers.C22USDT"
    # Same keys as the live request.
    assert all(message.keys() == json.loads(fixture_bytes("bybit", "ws_subscribe_request.json")).keys()
               for message in messages)


def test_rest_ticker_every_field_including_bid_ask(venue: Bybit) -> None:
    [ticker] = venue.parse_rest(TICKERS_URL, fixture_bytes("bybit", "rest_tickers_spot_doc.json"), 5, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.last) == ("BTC-USDT", "BTCUSDT", "20533.13")
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == ("20517.96", "20527.77", "2", "1.862172")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("20393.48", "21128.12", "20318.89")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("11801.27771", "243765620.65899866")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1673859087947, 5, "rest")


def test_rest_skips_markets_not_collected_and_markets_without_trades(venue: Bybit) -> None:
    body = json.loads(fixture_bytes("bybit", "rest_tickers_spot_doc.json"))
    [btc] = body["result"]["list"]
    body["result"]["list"] = [btc, {**btc, "symbol": "PEPEUSDT"},
                              {**btc, "symbol": "ETHUSDT", "lastPrice": "", "bid1Price": "", "ask1Price": ""}]
    tickers = venue.parse_rest(TICKERS_URL, json.dumps(body).encode(), 1, [])
    assert [ticker.symbol for ticker in tickers] == ["BTC-USDT"]


def test_rest_empty_book_gives_null_bid_ask(venue: Bybit) -> None:
    body = fixture_bytes("bybit", "rest_tickers_spot_doc.json").replace(b'"bid1Price": "20517.96"', b'"bid1Price": ""')
    [ticker] = venue.parse_rest(TICKERS_URL, body, 1, [])
    assert (ticker.bid, ticker.ask) == (None, "20527.77")


def test_rest_error_envelope_is_an_exchange_error(venue: Bybit) -> None:
    body = b'{"retCode":10001,"retMsg":"Not supported symbols","result":{},"retExtInfo":{},"time":1673859087947}'
    with pytest.raises(ExchangeError, match="10001: Not supported symbols"):
        venue.parse_rest(TICKERS_URL, body, 1, [])


def test_one_rest_call_for_every_market(venue: Bybit) -> None:
    markets = [venue.market(f"C{index}", "USDT") for index in range(700)]
    assert venue.rest_ticker_urls(markets) == [TICKERS_URL]


def test_market_list_teaches_symbols_by_quote() -> None:
    bybit = Bybit("wss://stream.bybit.com/v5/public/spot", "https://api.bybit.com")
    url = bybit.market_list_url()
    assert url == "https://api.bybit.com/v5/market/instruments-info?category=spot"
    assert bybit.parse_rest(url, fixture_bytes("bybit", "rest_instruments_spot_doc.json"), 1, ["USDT"]) == []
    assert bybit.symbol_of("BTCUSDT") == "BTC-USDT"
    assert bybit.parse_market_list(fixture_bytes("bybit", "rest_instruments_spot_doc.json"), ["USDC"]) == []


def test_market_list_uses_coins_not_string_splits_and_keeps_trading_only(venue: Bybit) -> None:
    body = json.loads(fixture_bytes("bybit", "rest_instruments_spot_doc.json"))
    [btc] = body["result"]["list"]
    body["result"]["list"] = [
        btc, {**btc, "symbol": "USDEUSDT", "baseCoin": "USDE", "quoteCoin": "USDT"},
        {**btc, "symbol": "BTCUSDE", "baseCoin": "BTC", "quoteCoin": "USDE"},
        {**btc, "symbol": "OLDUSDT", "baseCoin": "OLD", "status": "Closed"},
    ]
    markets = venue.parse_market_list(json.dumps(body).encode(), ["USDT"])
    assert [(market.raw, market.symbol) for market in markets] == [("BTCUSDT", "BTC-USDT"), ("USDEUSDT", "USDE-USDT")]
