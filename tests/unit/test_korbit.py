"""Korbit parsing on verbatim payloads (tests/fixtures/korbit, see SOURCES.md there)."""

import json

import pytest

from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.korbit import Korbit


@pytest.fixture
def venue() -> Korbit:
    korbit = Korbit("wss://ws-api.korbit.co.kr/v2/public", "https://api.korbit.co.kr")
    korbit.learn([korbit.market("BTC", "KRW"), korbit.market("ETH", "KRW")])
    return korbit


def test_snapshot_ticker_every_field(venue: Korbit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("korbit", "ws_ticker_1.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("korbit", "BTC-KRW", "btc_krw")
    assert (ticker.last, ticker.bid, ticker.ask) == ("100650000", "100650000", "100651000")
    assert (ticker.bid_size, ticker.ask_size) == (None, None)
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("100500000", "100651000", "100492000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("0.89102242", "89632429.21566")
    # `timestamp` (send time), not the 2.3 h older lastTradedAt.
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1730365099072, 7, "ws")


def test_realtime_ticker_without_snapshot_key(venue: Korbit) -> None:
    frame = fixture_bytes("korbit", "ws_ticker_3_realtime.json")
    assert b'"snapshot"' not in frame
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.symbol, ticker.last, ticker.open_24h, ticker.low_24h) == (
        "BTC-KRW", "100650000", "100501000", "100501000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("0.81866504", "82360867.25161")
    assert ticker.exchange_ts == 1730365220489


@pytest.mark.parametrize("snapshot", [b'"snapshot":true,', b'"snapshot":false,', b'"snapshot":null,', b""])
def test_every_snapshot_spelling_parses_alike(venue: Korbit, snapshot: bytes) -> None:
    frame = fixture_bytes("korbit", "ws_ticker_1.json").replace(b'"snapshot":true,', snapshot)
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.last, ticker.exchange_ts) == ("100650000", 1730365099072)


def test_second_symbol_and_fraction_trimmed_volume(venue: Korbit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("korbit", "ws_ticker_2.json"), 1)
    assert (ticker.symbol, ticker.last, ticker.bid, ticker.ask) == ("ETH-KRW", "4357000", "4324000", "4357000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("0.1702132", "744416.83456")


def test_pretty_printed_doc_reference_with_other_key_order(venue: Korbit) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("korbit", "ws_ticker_doc_reference.json"), 1)
    assert (ticker.last, ticker.bid, ticker.ask, ticker.high_24h) == ("99027000", "99026000", "99027000", "111162000")
    assert (ticker.volume_24h, ticker.exchange_ts) == ("147.94385655", 1700000027754)


def test_exponent_text_becomes_plain(venue: Korbit) -> None:
    frame = fixture_bytes("korbit", "ws_ticker_1.json").replace(b'"volume":"0.89102242"', b'"volume":"8.9102242E-1"')
    [ticker] = venue.parse_ws(frame, 1)
    assert ticker.volume_24h == "0.89102242"


@pytest.mark.parametrize("name", ["ws_ack_success_doc.json", "ws_ack_success_probe.json"])
def test_acks_in_both_key_orders(venue: Korbit, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("korbit", name), 1) == []


@pytest.mark.parametrize(("name", "says"), [
    ("ws_error_invalid_symbol_doc.json", "INVALID_SYMBOL: The symbol does not exist (eth_btc) (requestId 1)"),
    ("ws_error_invalid_symbol_probe.json", "INVALID_SYMBOL: The symbol does not exist (nope_krw) (requestId 2)"),
    ("ws_error_invalid_level_probe.json", "INVALID_REQUEST: invalid_level (requestId 11)"),
    ("ws_error_invalid_format_probe.json", "fail: invalid_format (requestId None)"),
])
def test_failures_name_code_and_request(venue: Korbit, name: str, says: str) -> None:
    with pytest.raises(ExchangeError) as caught:
        venue.parse_ws(fixture_bytes("korbit", name), 1)
    assert str(caught.value) == says


def test_documented_error_status(venue: Korbit) -> None:
    with pytest.raises(ExchangeError, match="error: internal"):
        venue.parse_ws(b'{"status": "error", "message": "internal"}', 1)


@pytest.mark.parametrize("frame", [
    b'{"status":"pending","requestId":1}',
    b'{"type":"trade","symbol":"btc_krw","timestamp":1}',
    b'{"symbol":"btc_krw","timestamp":1,"type":"orderbook","data":{"timestamp":1,"bids":[],"asks":[]}}',
    b'{"symbol":"btc_krw","timestamp":1,"type":"ticker","data":{"close":100}}',
])
def test_other_frames_are_rejected_not_misread(venue: Korbit, frame: bytes) -> None:
    with pytest.raises(Exception) as caught:
        venue.parse_ws(frame, 1)
    assert not isinstance(caught.value, ExchangeError)


def test_unknown_symbol_is_a_frame_error(venue: Korbit) -> None:
    frame = fixture_bytes("korbit", "ws_ticker_1.json").replace(b'"btc_krw"', b'"nope_krw"')
    with pytest.raises(FrameError, match="unknown symbol 'nope_krw'"):
        venue.parse_ws(frame, 1)


def test_rest_tickers_every_field(venue: Korbit) -> None:
    url = "https://api.korbit.co.kr/v2/tickers?symbol=btc_krw,eth_krw"
    btc, eth = venue.parse_rest(url, fixture_bytes("korbit", "rest_ticker.json"), 3, [])
    assert (btc.symbol, btc.raw_symbol, btc.last, btc.bid, btc.ask) == (
        "BTC-KRW", "btc_krw", "77136000", "77136000", "77193000")
    assert (btc.open_24h, btc.high_24h, btc.low_24h) == ("77060000", "79650000", "76550000")
    assert (btc.volume_24h, btc.quote_volume_24h) == ("48.73739983", "3785149733.32633")
    # A row has no snapshot time; lastTradedAt is not one.
    assert (btc.exchange_ts, btc.received_ns, btc.source) == (None, 3, "rest")
    assert (eth.symbol, eth.last, eth.bid, eth.ask, eth.quote_volume_24h) == (
        "ETH-KRW", "3250000", "3251000", "3254000", "532827941.01581")


def test_rest_unknown_symbol_is_an_empty_success(venue: Korbit) -> None:
    body = fixture_bytes("korbit", "rest_ticker_unknown_symbol_probe.json")
    assert venue.parse_rest("https://api.korbit.co.kr/v2/tickers?symbol=nope_krw", body, 1, []) == []


def test_rest_error_envelope(venue: Korbit) -> None:
    with pytest.raises(ExchangeError, match="400: INVALID_CURRENCY_PAIR"):
        venue.parse_rest("https://api.korbit.co.kr/v2/tickers?symbol=nope_krw",
                         fixture_bytes("korbit", "rest_error_invalid_pair_probe.json"), 1, [])


def test_market_list_keeps_launched_pairs_in_the_quotes(venue: Korbit) -> None:
    probe_row = fixture_bytes("korbit", "rest_currency_pair_row_probe.json").strip()
    body = (b'{"success":true,"data":[' + probe_row
            + b',{"symbol":"xrp_krw","status":"launched"}'  # older reply: no base/quote keys
            + b',{"symbol":"lunc_krw","status":"stopped","baseCurrency":"lunc","quoteCurrency":"krw"}'
            + b',{"symbol":"eth_btc","status":"launched","baseCurrency":"eth","quoteCurrency":"btc"}]}')
    korbit = Korbit("wss://ws-api.korbit.co.kr/v2/public", "https://api.korbit.co.kr")
    assert korbit.parse_rest("https://api.korbit.co.kr/v2/currencyPairs", body, 1, ["KRW"]) == []
    assert korbit.symbols == {"btc_krw": "BTC-KRW", "xrp_krw": "XRP-KRW"}
    assert korbit.parse_market_list(body, ["BTC"]) == [korbit.market("ETH", "BTC")]


def test_market_ids_are_lower_case_base_quote(venue: Korbit) -> None:
    assert venue.market("USDT", "KRW").raw == "usdt_krw"


def test_subscribe_is_one_array_with_a_request_per_market(venue: Korbit) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "KRW"), venue.market("ETH", "KRW")])
    requests = json.loads(message)
    [doc_request] = json.loads(fixture_bytes("korbit", "ws_subscribe.json"))
    assert requests == [
        {**doc_request, "symbols": ["btc_krw"], "requestId": 1},
        {**doc_request, "symbols": ["eth_krw"], "requestId": 2},
    ]


def test_rest_ticker_urls_are_chunked(venue: Korbit) -> None:
    markets = [venue.market(f"C{index}", "KRW") for index in range(150)]
    first, second = venue.rest_ticker_urls(markets)
    assert first.startswith("https://api.korbit.co.kr/v2/tickers?symbol=c0_krw,c1_krw,")
    assert first.count(",") == 99 and second.count(",") == 49
    assert second.endswith(",c149_krw")
