"""Kraken parsing on verbatim payloads (tests/fixtures/kraken, see SOURCES.md there)."""

import json
import re

import pytest

from shared.record import ExchangeError, FrameError, ServerRestart
from tests.conftest import fixture_bytes
from workers.kraken import Kraken

ASSET_PAIRS = json.dumps({"error": [], "result": {
    "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD", "status": "online"},
    "XXBTZUSD.d": {"altname": "XBTUSD.d", "base": "XXBT", "quote": "ZUSD"},
    "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "base": "XXDG", "quote": "ZUSD", "status": "online"},
    "SOLUSD": {"altname": "SOLUSD", "wsname": "SOL/USD", "base": "SOL", "quote": "ZUSD"},
    "LUNAUSD": {"altname": "LUNAUSD", "wsname": "LUNA/USD", "base": "LUNA", "quote": "ZUSD", "status": "delisted"},
    "XETHXXBT": {"altname": "ETHXBT", "wsname": "ETH/XBT", "base": "XETH", "quote": "XXBT", "status": "online"},
}}).encode()

# Frames in their documented shapes (kraken.md), values of our own: no reference sample holds them,
# and the reference REST ticker capture is kept aside for acceptance checks.
PONG = b'{"method":"pong","req_id":42,"time_in":"2026-09-24T03:54:18.054886Z","time_out":"2026-09-24T03:54:18.054920Z"}'
PING_ERROR = (b'{"error":"Unsupported field: \'params\' for the given msg type: ping","method":"ping","req_id":0,'
              b'"success":false,"time_in":"2026-09-24T03:54:18.054886Z","time_out":"2026-09-24T03:54:18.054920Z"}')
# What Cloudflare in front of Kraken sends, as plain text, before it drops the socket (kraken-async-rs's tests).
CLOUDFLARE_TEXT = b"CloudFlare WebSocket proxy restarting"
REST_ASSET_PAIR = json.dumps({"error": [], "result": {"XBTUSDT": {
    "altname": "XBTUSDT", "wsname": "XBT/USDT", "base": "XXBT", "quote": "USDT", "status": "online"}}}).encode()
# The REST ticker's columns: a/b [price, whole lot volume, lot volume], c [price, volume], v/p/t/l/h
# [today, last 24 h], o today's open.
REST_TICKER = json.dumps({"error": [], "result": {"XBTUSDT": {
    "a": ["97012.30000", "2", "2.000"], "b": ["97012.20000", "1", "0.500"], "c": ["97011.90000", "0.00120000"],
    "v": ["12.50000000", "240.12345678"], "p": ["96990.10000", "96870.55000"], "t": [120, 4100],
    "l": ["96500.00000", "95100.00000"], "h": ["97300.00000", "97555.50000"], "o": "96800.00000"}}}).encode()


@pytest.fixture
def venue() -> Kraken:
    kraken = Kraken("wss://ws.kraken.com/v2", "https://api.kraken.com")
    kraken.learn([kraken.market("USDT", "USD"), kraken.market("ALGO", "USD"), kraken.market("BTC", "USDT")])
    return kraken


def test_real_ticker_keeps_every_digit(venue: Kraken) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("kraken", "ws_ticker_1.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("kraken", "USDT-USD", "USDT/USD")
    assert (ticker.last, ticker.bid, ticker.ask) == ("0.99981", "0.99980", "0.99981")
    assert (ticker.bid_size, ticker.ask_size) == ("44620.68691883", "1087605.70466858")
    assert (ticker.high_24h, ticker.low_24h, ticker.volume_24h) == ("1.00000", "0.99959", "270638277.50461281")
    # v2 has no open price and no quote volume; vwap * volume would not be exact.
    assert (ticker.open_24h, ticker.quote_volume_24h) == (None, None)
    # 2026-09-24T03:54:18.054886Z, truncated to the millisecond.
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1790222058054, 7, "ws")


def test_doc_ticker_pretty_printed(venue: Kraken) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("kraken", "ws_ticker_2_doc.json"), 1)
    assert (ticker.symbol, ticker.last, ticker.bid, ticker.ask) == ("ALGO-USD", "0.10035", "0.10025", "0.10036")
    assert (ticker.bid_size, ticker.ask_size) == ("740.0", "1361.44813783")
    assert (ticker.high_24h, ticker.low_24h, ticker.volume_24h) == ("0.10285", "0.09979", "997038.98383185")
    assert ticker.exchange_ts == 1695632671742  # 2023-09-25T09:04:31.742648Z


def test_string_numbers_are_accepted_too(venue: Kraken) -> None:
    # The docs and Kraken's SDK say decimal strings; the wire sends numbers. Both work.
    frame = fixture_bytes("kraken", "ws_ticker_1.json")
    for key in (b"bid", b"last", b"volume", b"high"):
        start = frame.index(b'"' + key + b'":') + len(key) + 3
        end = frame.index(b",", start)
        frame = frame[:start] + b'"' + frame[start:end] + b'"' + frame[end:]
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.bid, ticker.last, ticker.volume_24h, ticker.high_24h) == (
        "0.99980", "0.99981", "270638277.50461281", "1.00000")


def test_exponent_form_becomes_plain(venue: Kraken) -> None:
    frame = fixture_bytes("kraken", "ws_ticker_1.json").replace(b'"volume":270638277.50461281', b'"volume":2.7E8')
    [ticker] = venue.parse_ws(frame, 1)
    assert ticker.volume_24h == "270000000"


def test_ticker_without_timestamp_has_no_exchange_ts(venue: Kraken) -> None:
    frame = fixture_bytes("kraken", "ws_ticker_1.json").replace(b',"timestamp":"2026-09-24T03:54:18.054886Z"', b"")
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.exchange_ts, ticker.last) == (None, "0.99981")


@pytest.mark.parametrize("name", ["ws_status.json", "ws_heartbeat.json", "ws_subscribe_ack.json"])
def test_status_heartbeat_and_ack_are_not_tickers(venue: Kraken, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("kraken", name), 1) == []


def test_pong_is_not_a_ticker(venue: Kraken) -> None:
    assert venue.parse_ws(PONG, 1) == []


@pytest.mark.parametrize("frame, says", [
    (fixture_bytes("kraken", "ws_subscribe_error.json"), "subscribe NOPE/USD: Currency pair not supported NOPE/USD"),
    (fixture_bytes("kraken", "ws_v2_pair_not_supported_xbt.json"),
     "subscribe XBT/EUR: Currency pair not supported XBT/EUR"),
    (PING_ERROR, "ping: Unsupported field: 'params'"),
])
def test_method_errors(venue: Kraken, frame: bytes, says: str) -> None:
    with pytest.raises(ExchangeError, match=re.escape(says)):
        venue.parse_ws(frame, 1)


def test_message_rate_error(venue: Kraken) -> None:
    # The spelling quoted from Kraken's rate-limit guide (kraken.md §1.6), capital E.
    with pytest.raises(ExchangeError, match="Exceeded msg rate"):
        venue.parse_ws(b'{"Error": "Exceeded msg rate"}', 1)


def test_cloudflare_restart_text_asks_for_a_reconnect(venue: Kraken) -> None:
    with pytest.raises(ServerRestart):
        venue.parse_ws(CLOUDFLARE_TEXT, 1)


def test_other_text_that_is_not_json_is_a_decode_error(venue: Kraken) -> None:
    with pytest.raises(ValueError) as caught:
        venue.parse_ws(b"\x00\x01garbage{not json", 1)
    assert not isinstance(caught.value, ExchangeError)


def test_v1_ticker_array_of_another_tools_capture(venue: Kraken) -> None:
    """WebSocket v1's positional ticker, which cryptofeed still records: strings, each
    24 h value at index 1, no timestamp; the pair named as v1 names it."""
    venue.learn([venue.market("WAVES", "EUR")])
    [ticker] = venue.parse_ws(fixture_bytes("kraken", "ws_v1_ticker_legacy.json"), 3)
    assert (ticker.symbol, ticker.raw_symbol) == ("WAVES-EUR", "WAVES/EUR")
    assert (ticker.last, ticker.bid, ticker.ask) == ("13.253900", "13.232900", "13.253900")
    assert (ticker.bid_size, ticker.ask_size) == ("185.18432037", "35.72892241")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("13.428300", "14.211200", "13.021800")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("72035.05488104", None)
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (None, 3, "ws")


def test_v1_names_xbt_as_btc(venue: Kraken) -> None:
    venue.learn([venue.market("BTC", "CHF")])
    # The verbatim v1 ticker, renamed to a pair v1 spells with XBT.
    frame = fixture_bytes("kraken", "ws_v1_ticker_legacy.json").replace(b'"WAVES/EUR"', b'"XBT/CHF"')
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.symbol, ticker.raw_symbol, ticker.last) == ("BTC-CHF", "XBT/CHF", "13.253900")


@pytest.mark.parametrize("frame", [
    fixture_bytes("kraken", "ws_v1_subscription_status_legacy.json"),
    # v1's documented heartbeat and systemStatus events (no verbatim capture in the reference material).
    b'{"event":"heartbeat"}',
    b'{"connectionID":8628615390848610000,"event":"systemStatus","status":"online","version":"1.0.0"}',
])
def test_v1_control_events_carry_nothing(venue: Kraken, frame: bytes) -> None:
    assert venue.parse_ws(frame, 1) == []


def test_v1_subscription_error_is_an_exchange_error(venue: Kraken) -> None:
    """v1's documented error shape (no verbatim capture of one was found)."""
    with pytest.raises(ExchangeError, match="Currency pair not supported"):
        venue.parse_ws(b'{"errorMessage":"Currency pair not supported NOPE/USD","event":"subscriptionStatus",'
                       b'"pair":"NOPE/USD","status":"error","subscription":{"name":"ticker"}}', 1)


def test_unknown_symbol_is_a_frame_error(venue: Kraken) -> None:
    frame = fixture_bytes("kraken", "ws_ticker_1.json").replace(b'"USDT/USD"', b'"NOPE/USD"')
    with pytest.raises(FrameError, match="unknown symbol 'NOPE/USD'"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("frame", [
    fixture_bytes("kraken", "ws_ticker_1.json").replace(b'"last":0.99981', b'"last":null'),
    b'{"channel":"ticker","type":"update","data":[]}',
    b'{"channel":"ticker","type":"update","data":[{"symbol":"USDT/USD","last":{"nested":true}}]}',
    b'{"unexpected":[1,2,3]}',
])
def test_broken_tickers_are_rejected(venue: Kraken, frame: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        venue.parse_ws(frame, 1)
    assert not isinstance(caught.value, ExchangeError)


def test_market_list_maps_v1_names_to_v2_and_records_rest_keys(venue: Kraken) -> None:
    markets = venue.parse_market_list(ASSET_PAIRS, ["USD"])
    # Dark pool (.d) and delisted pairs are left out; a missing status is accepted.
    assert [(m.raw, m.symbol) for m in markets] == [
        ("BTC/USD", "BTC-USD"), ("DOGE/USD", "DOGE-USD"), ("SOL/USD", "SOL-USD")]
    assert [(m.raw, m.symbol) for m in venue.parse_market_list(ASSET_PAIRS, ["BTC"])] == [("ETH/BTC", "ETH-BTC")]
    assert venue.rest_keys["BTC/USD"] == "XXBTZUSD" and venue.rest_symbols["XETHXXBT"] == "ETH/BTC"


def test_rest_urls_look_up_rest_keys_until_asset_pairs_named_them(venue: Kraken) -> None:
    markets = [venue.market("BTC", "USD"), venue.market("DOGE", "USD")]
    assert venue.rest_ticker_urls(markets) == [
        "https://api.kraken.com/0/public/AssetPairs?pair=XBTUSD,XDGUSD",
        "https://api.kraken.com/0/public/Ticker?pair=XBTUSD,XDGUSD",
    ]
    venue.parse_rest("https://api.kraken.com/0/public/AssetPairs?pair=XBTUSD,XDGUSD", ASSET_PAIRS, 1, [])
    assert venue.rest_ticker_urls(markets) == ["https://api.kraken.com/0/public/Ticker?pair=XXBTZUSD,XDGUSD"]


def test_rest_urls_respect_the_per_call_cap(venue: Kraken) -> None:
    markets = [venue.market(f"SIM{index:03d}", "USD") for index in range(120)]
    urls = venue.rest_ticker_urls(markets)
    assert [url.split("?")[0].rsplit("/", 1)[1] for url in urls] == ["AssetPairs"] * 3 + ["Ticker"] * 3
    assert [url.count(",") + 1 for url in urls[3:]] == [50, 50, 20]


def test_rest_ticker_after_asset_pairs(venue: Kraken) -> None:
    assert venue.parse_rest("https://api.kraken.com/0/public/AssetPairs?pair=XBTUSDT",
                            REST_ASSET_PAIR, 1, []) == []
    [ticker] = venue.parse_rest("https://api.kraken.com/0/public/Ticker?pair=XBTUSDT",
                                REST_TICKER, 5, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.source) == ("BTC-USDT", "BTC/USDT", "rest")
    assert (ticker.last, ticker.bid, ticker.ask) == ("97011.90000", "97012.20000", "97012.30000")
    assert (ticker.bid_size, ticker.ask_size) == ("0.500", "2.000")
    # The rolling 24 h column, not "today".
    assert (ticker.high_24h, ticker.low_24h, ticker.volume_24h) == ("97555.50000", "95100.00000", "240.12345678")
    # `o` is today's open (since 00:00 UTC), not a 24 h open; REST has no timestamp.
    assert (ticker.open_24h, ticker.quote_volume_24h, ticker.exchange_ts, ticker.received_ns) == (None, None, None, 5)


def test_rest_key_not_in_asset_pairs_is_a_frame_error(venue: Kraken) -> None:
    with pytest.raises(FrameError, match="XBTUSDT"):
        venue.parse_rest_ticker(REST_TICKER, 1)


@pytest.mark.parametrize("url", ["https://api.kraken.com/0/public/Ticker?pair=NOPEUSD",
                                 "https://api.kraken.com/0/public/AssetPairs?pair=NOPEUSD"])
def test_rest_error_envelope(venue: Kraken, url: str) -> None:
    with pytest.raises(ExchangeError, match="EQuery:Unknown asset pair"):
        venue.parse_rest(url, b'{"error":["EQuery:Unknown asset pair"]}', 1, [])


def test_subscribe_uses_v2_names_in_batches(venue: Kraken) -> None:
    sample = json.loads(fixture_bytes("kraken", "ws_subscribe.json"))
    markets = [venue.market("BTC", "USD")] + [venue.market(f"SIM{index:03d}", "USD") for index in range(59)]
    first, second = map(json.loads, venue.subscribe_messages(markets))
    assert first["method"] == sample["method"] and first["params"]["channel"] == sample["params"]["channel"]
    assert first["params"] == {"channel": "ticker", "symbol": [m.raw for m in markets[:50]],
                               "event_trigger": "trades", "snapshot": True}
    assert first["params"]["symbol"][0] == "BTC/USD"
    assert second["params"]["symbol"] == [m.raw for m in markets[50:]]


def test_app_ping_has_the_documented_shape(venue: Kraken) -> None:
    sample = json.loads(fixture_bytes("kraken", "ws_ping_request_doc.json"))
    ping = json.loads(venue.app_ping())
    assert ping.keys() == sample.keys() and ping["method"] == "ping" and isinstance(ping["req_id"], int)
