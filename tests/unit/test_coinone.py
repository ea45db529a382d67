"""Coinone parsing on verbatim payloads (tests/fixtures/coinone, see SOURCES.md there)."""

import json

import msgspec
import pytest

from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.coinone import Coinone

REST = "https://api.coinone.co.kr"
TICKERS_URL = f"{REST}/public/v2/ticker_new/KRW"
MARKETS_URL = f"{REST}/public/v2/markets/KRW"


@pytest.fixture
def venue() -> Coinone:
    coinone = Coinone("wss://stream.coinone.co.kr", REST)
    coinone.learn([coinone.market("BTC", "KRW"), coinone.market("XRP", "KRW")])
    return coinone


def test_ticker_every_field(venue: Coinone) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("coinone", "ws_ticker_1.json"), 9)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("coinone", "BTC-KRW", "KRW/BTC")
    assert ticker.last == "116380000"
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (
        "116370000", "116400000", "8.60554308", "0.00562817")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("115650000", "116470000", "115570000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("267.27610034", "30947007404.5912")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1790133796484, 9, "ws")


def test_pretty_printed_ticker(venue: Coinone) -> None:
    # Captures from other tools print the frame indented (ccxt's comment does); the reference sample of
    # that is kept aside for acceptance checks, so this is ws_ticker_1.json indented the same way.
    frame = json.dumps(json.loads(fixture_bytes("coinone", "ws_ticker_1.json")), indent=4).encode()
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.symbol, ticker.last, ticker.ask_size, ticker.bid_size) == (
        "BTC-KRW", "116380000", "0.00562817", "8.60554308")
    assert (ticker.quote_volume_24h, ticker.exchange_ts) == ("30947007404.5912", 1790133796484)


# The SHORT format (1-3 letter keys, asked for with "format":"SHORT"), for captures made by
# other tools. No verbatim SHORT ticker was published: the probe's ticker in the documented
# SHORT keys, as the verbatim SHORT orderbook frame spells its envelope.
SHORT_KEYS = {"response_type": "r", "channel": "c", "data": "d", "quote_currency": "qc", "target_currency": "tc",
              "timestamp": "t", "quote_volume": "qv", "target_volume": "tv", "high": "hi", "low": "lo",
              "first": "fi", "last": "la", "volume_power": "vp", "ask_best_price": "abp", "ask_best_qty": "abq",
              "bid_best_price": "bbp", "bid_best_qty": "bbq", "id": "i", "yesterday_high": "yhi",
              "yesterday_low": "ylo", "yesterday_first": "yfi", "yesterday_last": "yla",
              "yesterday_quote_volume": "yqv", "yesterday_target_volume": "ytv"}


def short_form(frame: bytes) -> bytes:
    def shorten(node: object) -> object:
        return {SHORT_KEYS[key]: shorten(value) for key, value in node.items()} if isinstance(node, dict) else node
    return json.dumps(shorten(json.loads(frame)), separators=(",", ":")).encode()


def test_short_format_ticker_is_the_same_record(venue: Coinone) -> None:
    default = fixture_bytes("coinone", "ws_ticker_1.json")
    short = short_form(default)
    assert short.startswith(b'{"r":"DATA","c":"TICKER","d":{"qc":"KRW","tc":"BTC","t":1790133796484,')
    in_default = Coinone("wss://stream.coinone.co.kr", REST)
    in_default.learn([in_default.market("BTC", "KRW")])
    [expected] = in_default.parse_ws(default, 9)
    assert venue.parse_ws(short, 9) == [expected]
    assert venue.parse_ws(short, 10) == []  # the same id again: a repeat, as in DEFAULT


def test_short_format_of_a_channel_never_asked_for_is_dead_lettered(venue: Coinone) -> None:
    with pytest.raises((FrameError, msgspec.ValidationError)):
        venue.parse_ws(fixture_bytes("coinone", "ws_orderbook_short_trimmed.json"), 1)


def test_empty_book_side_is_null(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_ticker_1.json").replace(b'"ask_best_price":"116400000"',
                                                                 b'"ask_best_price":null')
    frame = frame.replace(b'"ask_best_qty":"0.00562817",', b"")
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.ask, ticker.ask_size, ticker.bid) == (None, None, "116370000")


def test_exponent_text_becomes_plain(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_ticker_1.json").replace(b'"116380000"', b'"1.1638E8"')
    [ticker] = venue.parse_ws(frame, 1)
    assert ticker.last == "116380000"


def test_repeated_ticker_is_dropped(venue: Coinone) -> None:
    """A second subscribe (or a reconnect) repeats the current ticker with the same id."""
    frame = fixture_bytes("coinone", "ws_ticker_1.json")
    assert len(venue.parse_ws(frame, 1)) == 1
    assert venue.parse_ws(frame, 2) == []
    older = frame.replace(b'"id":"1790133796484001"', b'"id":"1790133796483999"')
    assert venue.parse_ws(older, 3) == []
    newer = frame.replace(b'"id":"1790133796484001"', b'"id":"1790133796484002"')
    assert len(venue.parse_ws(newer, 4)) == 1


def test_ids_are_compared_per_pair(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_ticker_1.json")
    venue.parse_ws(frame, 1)
    xrp = frame.replace(b'"target_currency":"BTC"', b'"target_currency":"XRP"')
    assert [ticker.symbol for ticker in venue.parse_ws(xrp, 2)] == ["XRP-KRW"]


@pytest.mark.parametrize("name", ["ws_connected.json", "ws_subscribed_ack.json", "ws_pong.json"])
def test_greeting_acks_and_pong_are_not_tickers(venue: Coinone, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("coinone", name), 1) == []


def test_unsubscribe_ack_is_not_a_ticker(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_subscribed_ack.json").replace(b"SUBSCRIBED", b"UNSUBSCRIBED")
    assert venue.parse_ws(frame, 1) == []


@pytest.mark.parametrize(("name", "text"), [
    ("ws_error_invalid_topic.json", "error 160012: Invalid Topic"),
    ("ws_error_invalid_type.json", "error 160011: Invalid Type (request_type)"),
    ("ws_error_invalid_request.json", "error 160010: Invalid Request"),
])
def test_error_frames(venue: Coinone, name: str, text: str) -> None:
    with pytest.raises(ExchangeError) as caught:
        venue.parse_ws(fixture_bytes("coinone", name), 1)
    assert str(caught.value) == text


def test_short_format_orderbook_is_dead_lettered(venue: Coinone) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(fixture_bytes("coinone", "ws_orderbook_short_trimmed.json"), 1)


def test_data_on_another_channel_is_a_frame_error(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_ticker_1.json").replace(b'"channel":"TICKER"', b'"channel":"TRADE"')
    with pytest.raises(FrameError, match="TRADE"):
        venue.parse_ws(frame, 1)


def test_unknown_response_type_is_dead_lettered(venue: Coinone) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(b'{"response_type":"NOTICE","data":{}}', 1)


def test_unknown_symbol_is_a_frame_error(venue: Coinone) -> None:
    frame = fixture_bytes("coinone", "ws_ticker_1.json").replace(b'"target_currency":"BTC"',
                                                                 b'"target_currency":"NOPE"')
    with pytest.raises(FrameError, match="unknown symbol 'KRW/NOPE'"):
        venue.parse_ws(frame, 1)


def test_subscribe_is_one_message_per_pair_shaped_like_the_doc(venue: Coinone) -> None:
    messages = venue.subscribe_messages([venue.market("XRP", "KRW"), venue.market("BTC", "KRW")])
    assert [json.loads(message) for message in messages] == [
        json.loads(fixture_bytes("coinone", "ws_subscribe.json")),
        {"request_type": "SUBSCRIBE", "channel": "TICKER",
         "topic": {"quote_currency": "KRW", "target_currency": "BTC"}},
    ]


def test_keepalive_is_the_json_ping(venue: Coinone) -> None:
    assert json.loads(venue.app_ping()) == json.loads(fixture_bytes("coinone", "ws_ping.json"))
    assert venue.protocol_ping_interval_s is None
    assert venue.app_ping_interval_s == 20.0


def test_rest_ticker_lower_case_and_one_level_sides(venue: Coinone) -> None:
    [ticker] = venue.parse_rest(TICKERS_URL, fixture_bytes("coinone", "rest_ticker.json"), 3, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.source) == ("BTC-KRW", "KRW/BTC", "rest")
    assert ticker.last == "50062000.0"
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (
        "50062000.0", "50081000.0", "0.04213455", "0.18471358")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("50487000.0", "50543000.0", "49945000.0")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("226.07268994", "11349804285.3859")
    assert (ticker.exchange_ts, ticker.received_ns) == (1701073357818, 3)


def test_rest_and_socket_share_ids(venue: Coinone) -> None:
    body = fixture_bytes("coinone", "rest_ticker.json")
    assert len(venue.parse_rest(TICKERS_URL, body, 1, [])) == 1
    assert venue.parse_rest(TICKERS_URL, body, 2, []) == []  # nothing traded since the last poll
    # A socket frame carrying an id older than the REST row is a repeat, too.
    frame = fixture_bytes("coinone", "ws_ticker_1.json").replace(b'"id":"1790133796484001"',
                                                                 b'"id":"1701073357818001"')
    assert venue.parse_ws(frame, 3) == []


def test_rest_rows_of_pairs_not_collected_are_skipped(venue: Coinone) -> None:
    body = fixture_bytes("coinone", "rest_ticker.json").replace(b'"btc"', b'"eth"')
    assert venue.parse_rest(TICKERS_URL, body, 1, []) == []


def test_rest_empty_side(venue: Coinone) -> None:
    body = json.loads(fixture_bytes("coinone", "rest_ticker.json"))
    body["tickers"][0]["best_asks"] = []
    [ticker] = venue.parse_rest(TICKERS_URL, json.dumps(body).encode(), 1, [])
    assert (ticker.ask, ticker.ask_size, ticker.bid) == (None, None, "50062000.0")


def test_rest_empty_quote_is_no_tickers(venue: Coinone) -> None:
    body = fixture_bytes("coinone", "rest_ticker_empty_quote.json")
    assert venue.parse_rest(f"{REST}/public/v2/ticker_new/USDT", body, 1, []) == []


@pytest.mark.parametrize("body", [
    fixture_bytes("coinone", "rest_error_unknown_currency.json"),
    b'{"result": "error", "errorCode": "4", "errorMsg": "Blocked user access."}',
])
def test_rest_errors_arrive_with_http_200(venue: Coinone, body: bytes) -> None:
    with pytest.raises(ExchangeError, match="error (108|4): (Unknown CryptoCurrency|Blocked user access)"):
        venue.parse_rest(TICKERS_URL, body, 1, [])


def test_rest_ticker_urls_one_call_per_quote(venue: Coinone) -> None:
    markets = [venue.market("BTC", "KRW"), venue.market("XRP", "KRW")]
    assert venue.rest_ticker_urls(markets) == [TICKERS_URL]


def test_market_list_teaches_trading_pairs(venue: Coinone) -> None:
    body = json.dumps({"result": "success", "error_code": "0", "server_time": 1790134779665, "markets": [
        {"quote_currency": "KRW", "target_currency": "ETH", "trade_status": 1, "maintenance_status": 0},
        {"quote_currency": "KRW", "target_currency": "DOGE", "trade_status": "2", "maintenance_status": 1},
        {"quote_currency": "KRW", "target_currency": "GONE", "trade_status": 0, "maintenance_status": 0},
    ]}).encode()
    assert venue.market_list_url() == MARKETS_URL
    assert venue.parse_rest(MARKETS_URL, body, 1, ["KRW"]) == []
    assert (venue.symbol_of("KRW/ETH"), venue.symbol_of("KRW/DOGE")) == ("ETH-KRW", "DOGE-KRW")
    with pytest.raises(FrameError):
        venue.symbol_of("KRW/GONE")
    assert venue.parse_market_list(body, ["USDT"]) == []


def test_unknown_rest_path_answers_html(venue: Coinone) -> None:
    with pytest.raises(msgspec.DecodeError):
        venue.parse_rest(f"{REST}/public/v2/nope", b"<!DOCTYPE html><html></html>", 1, [])
