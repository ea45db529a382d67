"""Bithumb parsing on verbatim payloads (tests/fixtures/bithumb, see SOURCES.md there)."""

import json

import pytest

from shared.numbers import NumberError
from shared.record import ExchangeError, FrameError
from shared.venue import Market
from tests.conftest import fixture_bytes
from workers.bithumb import KST_AS_EPOCH_MS, Bithumb

REST_URL = "https://api.bithumb.com/v1/ticker?markets=KRW-BTC"
# 2025-08-13 10:48:14 UTC: one second after rest_ticker.json's true `timestamp`.
REST_RECEIVED_NS = 1_755_082_094_840 * 1_000_000


@pytest.fixture
def venue() -> Bithumb:
    bithumb = Bithumb("wss://ws-api.bithumb.com/websocket/v1", "https://api.bithumb.com")
    bithumb.learn([bithumb.market("BTC", "KRW"), bithumb.market("ETH", "BTC")])
    return bithumb


def test_snapshot_ticker_every_field(venue: Bithumb) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("bithumb", "ws_ticker_1.json"), 9)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("bithumb", "BTC-KRW", "KRW-BTC")
    assert ticker.last == "493100"
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (None, None, None, None)
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("484500", "493100", "472500")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("13380.57687512", "8227950466.316009")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1725927377287, 9, "ws")
    assert (ticker.run, ticker.seq) == ("", 0)


def test_realtime_ticker_is_published_like_the_snapshot(venue: Bithumb) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("bithumb", "ws_ticker_2.json"), 5)
    assert (ticker.symbol, ticker.last, ticker.open_24h, ticker.high_24h, ticker.low_24h) == (
        "BTC-KRW", "493100", "484500", "493100", "472500")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("13386.15417512", "8230696760.346009")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1725927377931, 5, "ws")


def test_trimmed_wire_frame_with_empty_delisting_date(venue: Bithumb) -> None:
    # The 2026 probe frame: delisting_date is "" (null in 2024), day fields trimmed away.
    [ticker] = venue.parse_ws(fixture_bytes("bithumb", "ws_ticker_probe_trimmed.json"), 1)
    assert (ticker.symbol, ticker.last, ticker.exchange_ts) == ("BTC-KRW", "116208000", 1790133514044)
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == (None, None, None)
    assert (ticker.volume_24h, ticker.quote_volume_24h) == (None, None)


def test_more_digits_than_a_double_are_kept(venue: Bithumb) -> None:
    # 27 significant digits, set into ws_ticker_1.json: Bithumb writes such values as bare JSON numbers.
    frame = fixture_bytes("bithumb", "ws_ticker_1.json").replace(
        b'"acc_trade_price_24h":8227950466.316009', b'"acc_trade_price_24h":912345678.12345678901234567')
    [ticker] = venue.parse_ws(frame, 1)
    assert ticker.quote_volume_24h == "912345678.12345678901234567"


def test_status_up_is_keepalive(venue: Bithumb) -> None:
    assert venue.parse_ws(fixture_bytes("bithumb", "ws_status_up.json"), 1) == []


@pytest.mark.parametrize(("name", "error"), [
    ("ws_error_no_ticket.json", "NO_TICKET: 티켓이 존재하지 않거나, 유효하지 않습니다."),
    ("ws_error_invalid_param.json", "INVALID_PARAM: nope 은 지원하지 않는 타입입니다."),
    ("ws_error_wrong_format.json", "WRONG_FORMAT: Format 이 맞지 않습니다."),
])
def test_error_frames(venue: Bithumb, name: str, error: str) -> None:
    with pytest.raises(ExchangeError) as raised:
        venue.parse_ws(fixture_bytes("bithumb", name), 1)
    assert str(raised.value) == error


def test_trade_frames_we_never_ask_for_are_dead_lettered(venue: Bithumb) -> None:
    with pytest.raises(FrameError):
        venue.parse_ws(fixture_bytes("bithumb", "ws_trade_probe.json"), 1)


def test_simple_format_ticker(venue: Bithumb) -> None:
    """The SIMPLE format (abbreviated keys), which we do not ask for but a capture by
    another tool may hold: the same record as its DEFAULT spelling."""
    [ticker] = venue.parse_ws(fixture_bytes("bithumb", "ws_ticker_simple_1.json"), 7)
    assert (ticker.symbol, ticker.raw_symbol, ticker.last) == ("BTC-KRW", "KRW-BTC", "493100")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("484500", "493100", "471300")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("13501.26687512", "8286175646.064881")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1725927582208, 7, "ws")


@pytest.mark.parametrize(("sent", "changed", "error", "message"), [
    (b'"code":"KRW-BTC"', b'"code":"KRW-NOPE"', FrameError, "unknown symbol 'KRW-NOPE'"),
    (b'"trade_price":493100', b'"trade_price":null', NumberError, "ticker without a trade_price"),
])
def test_unknown_symbol_and_missing_price_are_rejected(
        venue: Bithumb, sent: bytes, changed: bytes, error: type[Exception], message: str) -> None:
    frame = fixture_bytes("bithumb", "ws_ticker_1.json").replace(sent, changed)
    with pytest.raises(error, match=message):
        venue.parse_ws(frame, 1)


def test_rest_ticker_every_field(venue: Bithumb) -> None:
    [ticker] = venue.parse_rest(REST_URL, fixture_bytes("bithumb", "rest_ticker.json"), REST_RECEIVED_NS, [])
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("bithumb", "BTC-KRW", "KRW-BTC")
    assert ticker.last == "164114000"
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (None, None, None, None)
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("164380000", "165053000", "163378000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("884.10906588", "145074420625.274")
    # A true UTC `timestamp` (2025: only trade_timestamp was shifted) is left alone.
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1755082093840, REST_RECEIVED_NS, "rest")


def _rest_body_with_timestamp(epoch_ms: int) -> bytes:
    return fixture_bytes("bithumb", "rest_ticker.json").replace(
        b'"timestamp": 1755082093840', b'"timestamp": %d' % epoch_ms)


def test_rest_timestamp_written_as_kst_is_corrected(venue: Bithumb) -> None:
    # As probed in 2026: `timestamp` holds the KST wall clock, 9 h ahead of UTC.
    body = _rest_body_with_timestamp(1755082093840 + KST_AS_EPOCH_MS)
    [ticker] = venue.parse_rest(REST_URL, body, REST_RECEIVED_NS, [])
    assert ticker.exchange_ts == 1755082093840


def test_rest_timestamp_far_in_the_future_is_not_published(venue: Bithumb) -> None:
    body = _rest_body_with_timestamp(1755082093840 + 2 * KST_AS_EPOCH_MS)
    [ticker] = venue.parse_rest(REST_URL, body, REST_RECEIVED_NS, [])
    assert ticker.exchange_ts is None


def test_rest_error_with_http_200(venue: Bithumb) -> None:
    with pytest.raises(ExchangeError, match="^404: Code not found$"):
        venue.parse_rest(REST_URL, fixture_bytes("bithumb", "rest_error_code_not_found.json"), 1, [])


def test_rest_object_that_is_not_an_error_is_dead_lettered(venue: Bithumb) -> None:
    with pytest.raises(ValueError):
        venue.parse_rest(REST_URL, b'{"unexpected": true}', 1, [])


def test_rest_ticker_urls_respect_the_200_market_cap(venue: Bithumb) -> None:
    markets = [venue.market(f"C{index}", "KRW") for index in range(450)]
    urls = venue.rest_ticker_urls(markets)
    codes = [url.split("markets=", 1)[1].split(",") for url in urls]
    assert max(len(call) for call in codes) <= 200
    assert [code for call in codes for code in call] == [market.raw for market in markets]
    assert urls[0].startswith("https://api.bithumb.com/v1/ticker?markets=KRW-C0,KRW-C1,")


def test_market_list_teaches_every_market_in_the_quotes(venue: Bithumb) -> None:
    body = (b'[{"market":"KRW-XRP","korean_name":"\xeb\xa6\xac\xed\x94\x8c","english_name":"XRP"},'
            b'{"market":"BTC-SOL","korean_name":"\xec\x86\x94\xeb\x9d\xbc\xeb\x82\x98","english_name":"Solana"}]')
    url = venue.market_list_url()
    assert url == "https://api.bithumb.com/v1/market/all"
    assert venue.parse_market_list(body, ["KRW"]) == [Market(raw="KRW-XRP", base="XRP", quote="KRW")]
    assert venue.parse_rest(url, body, 1, ["KRW"]) == []
    assert venue.symbol_of("KRW-XRP") == "XRP-KRW"
    with pytest.raises(FrameError):
        venue.symbol_of("BTC-SOL")


def test_subscribe_is_one_complete_request_without_snapshot_flags(venue: Bithumb) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "KRW"), venue.market("ETH", "BTC")])
    ticket, ticker_type, data_format = json.loads(message)
    # The documented request's shape, with the codes in the exchange's QUOTE-BASE form.
    doc_ticket, doc_type = json.loads(fixture_bytes("bithumb", "ws_subscribe.json"))
    assert set(ticket) == set(doc_ticket) and ticket["ticket"]
    assert ticker_type == {"type": "ticker", "codes": ["KRW-BTC", "BTC-ETH"]} and set(doc_type) == set(ticker_type)
    assert data_format == {"format": "DEFAULT"}
    # Each connection gets its own ticket.
    assert json.loads(venue.subscribe_messages([venue.market("BTC", "KRW")])[0])[0] != ticket


def test_keepalive_stays_inside_the_60_s_idle_rule(venue: Bithumb) -> None:
    assert venue.app_ping() == "PING"
    assert venue.protocol_ping_interval_s is not None and venue.protocol_ping_interval_s < 60
    assert venue.app_ping_interval_s < 60
