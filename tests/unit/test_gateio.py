"""Gate parsing on verbatim payloads (tests/fixtures/gateio, see SOURCES.md there)."""

import json
import time

import msgspec
import pytest

from shared.record import ExchangeError, FrameError, ServerRestart
from tests.conftest import fixture_bytes
from workers.gateio import PAIRS_PER_SUBSCRIBE, Gateio


@pytest.fixture
def venue() -> Gateio:
    gateio = Gateio("wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws")
    gateio.learn([gateio.market(base, quote) for base, quote in
                  (("BTC", "USDT"), ("OMG", "USDT"), ("ETH", "USDT"), ("BTC3L", "USDT"))])
    return gateio


def test_documented_ticker_takes_time_ms(venue: Gateio) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("gateio", "ws_ticker_doc.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("gateio", "BTC-USDT", "BTC_USDT")
    assert (ticker.last, ticker.bid, ticker.ask) == ("15743.4", "15743.5", "15744.4")
    assert (ticker.bid_size, ticker.ask_size, ticker.open_24h) == (None, None, None)
    assert (ticker.high_24h, ticker.low_24h) == ("16280.9", "15468.5")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("9110.473081735", "145082083.2535")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1669107766406, 7, "ws")


def test_ticker_without_time_ms_falls_back_to_seconds(venue: Gateio) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("gateio", "ws_ticker_1.json"), 3)
    assert (ticker.symbol, ticker.raw_symbol) == ("OMG-USDT", "OMG_USDT")
    assert (ticker.last, ticker.bid, ticker.ask) == ("7.915", "7.899", "7.927")
    assert (ticker.high_24h, ticker.low_24h) == ("8.44", "7.364")
    # 19 significant digits: more than a double holds, kept as sent.
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("27799.8390372666", "215375.1010537074991")
    assert (ticker.exchange_ts, ticker.received_ns) == (1619093535000, 3)


def test_empty_book_side_is_null_and_exponents_become_plain(venue: Gateio) -> None:
    frame = fixture_bytes("gateio", "ws_ticker_1.json")
    frame = frame.replace(b'"lowest_ask":"7.927"', b'"lowest_ask":""').replace(b'"last":"7.915"', b'"last":"7.9E-5"')
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.ask, ticker.bid, ticker.last) == (None, "7.899", "0.000079")


@pytest.mark.parametrize(("old", "new", "error", "match"), [
    (b'"time":1619093535,', b"", FrameError, "without a time"),
    (b'"last":"7.915"', b'"last":""', FrameError, "without last"),
    # A JSON number where Gate sends a string is never read through a float.
    (b'"last":"7.915"', b'"last":7.915', msgspec.ValidationError, "Expected `str`, got `float`"),
    (b'"OMG_USDT"', b'"NOPE_USDT"', FrameError, "unknown symbol 'NOPE_USDT'"),
    (b'"event":"update"', b'"event":"snapshot"', FrameError, "neither"),
])
def test_broken_tickers_are_rejected(venue: Gateio, old: bytes, new: bytes, error: type[Exception],
                                     match: str) -> None:
    frame = fixture_bytes("gateio", "ws_ticker_1.json")
    assert old in frame
    with pytest.raises(error, match=match):
        venue.parse_ws(frame.replace(old, new), 1)


@pytest.mark.parametrize("name", ["ws_subscribe_ack_real_2021.json", "ws_subscribe_ack_real_2024.json",
                                  "ws_subscribe_ack_real_2026_trades.json", "ws_server_response_doc.json"])
def test_acks_of_every_vintage_are_not_tickers(venue: Gateio, name: str) -> None:
    # 2021: no time_ms and no error key; 2024: "time":"1" echoed as a string.
    assert venue.parse_ws(fixture_bytes("gateio", name), 1) == []


def test_pong_is_not_a_ticker(venue: Gateio) -> None:
    assert venue.parse_ws(fixture_bytes("gateio", "ws_pong_doc.json"), 1) == []


def test_error_reply_is_an_exchange_error(venue: Gateio) -> None:
    # No verbatim error frame exists: the 2024 ack with the documented error object.
    ack = json.loads(fixture_bytes("gateio", "ws_subscribe_ack_real_2024.json"))
    frame = ack | {"error": {"code": 2, "message": "unknown currency pair NOPE_USDT"}, "result": {"status": "fail"}}
    with pytest.raises(ExchangeError, match="error 2: unknown currency pair NOPE_USDT"):
        venue.parse_ws(json.dumps(frame).encode(), 1)


def test_failed_status_without_error_object_is_an_exchange_error(venue: Gateio) -> None:
    frame = fixture_bytes("gateio", "ws_subscribe_ack_real_2021.json").replace(b'"success"', b'"fail"')
    with pytest.raises(ExchangeError, match="status fail"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("channel", ["spot.tickers", ""])
def test_upgrade_event_asks_for_a_reconnect(venue: Gateio, channel: str) -> None:
    # The payload was never published; the official SDK reacts to the event alone.
    frame = json.dumps({"time": 1788336080, "time_ms": 1788336080750, "channel": channel, "event": "upgrade"})
    with pytest.raises(ServerRestart):
        venue.parse_ws(frame.encode(), 1)


def test_other_channels_are_rejected_not_misread(venue: Gateio) -> None:
    with pytest.raises(FrameError):
        venue.parse_ws(fixture_bytes("gateio", "ws_book_ticker_doc.json"), 1)


def test_rest_ticker(venue: Gateio) -> None:
    url = venue.rest_ticker_urls([venue.market("BTC", "USDT")])[0]
    [ticker] = venue.parse_rest(url, fixture_bytes("gateio", "rest_ticker.json"), 5, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.source) == ("BTC-USDT", "BTC_USDT", "rest")
    assert (ticker.last, ticker.bid, ticker.ask) == ("16618.2", "16618.1", "16618.2")
    assert (ticker.high_24h, ticker.low_24h, ticker.open_24h) == ("16627.8", "16470.5", None)
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("3331.1019407569", "55137098.012875")
    # REST tickers carry no time of any kind.
    assert (ticker.exchange_ts, ticker.received_ns) == (None, 5)


def test_rest_ticker_doc_with_etf_fields(venue: Gateio) -> None:
    [ticker] = venue.parse_rest_ticker(fixture_bytes("gateio", "rest_tickers_doc.json"), 1)
    assert (ticker.symbol, ticker.last, ticker.bid, ticker.ask) == ("BTC3L-USDT", "2.46140352", "2.4606821", "2.477")
    assert ticker.quote_volume_24h == "1602221.66468375534639404191"


def test_rest_skips_pairs_not_collected(venue: Gateio) -> None:
    body = fixture_bytes("gateio", "rest_ticker.json").replace(b'"BTC_USDT"', b'"XRP_USDT"')
    assert venue.parse_rest_ticker(body, 1) == []


def test_one_rest_call_covers_every_market(venue: Gateio) -> None:
    markets = [venue.market(f"C{index}", "USDT") for index in range(450)]
    assert venue.rest_ticker_urls(markets) == ["https://api.gateio.ws/api/v4/spot/tickers"]


def test_market_list_keeps_tradable_pairs_in_the_wanted_quotes(venue: Gateio) -> None:
    body = (b'[{"id":"BTC_USDT","base":"BTC","quote":"USDT","trade_status":"tradable"},'
            b'{"id":"BTC3L_USDT","base":"BTC3L","quote":"USDT","trade_status":"tradable"},'
            b'{"id":"LUNA_USDT","base":"LUNA","quote":"USDT","trade_status":"untradable"},'
            b'{"id":"FOO_USDT","base":"FOO","quote":"USDT","trade_status":"sellable"},'
            b'{"id":"ETH_BTC","base":"ETH","quote":"BTC","trade_status":"tradable"}]')
    url = venue.market_list_url()
    assert url == "https://api.gateio.ws/api/v4/spot/currency_pairs"
    assert venue.parse_rest(url, body, 1, ["USDT"]) == []
    assert venue.symbol_of("BTC3L_USDT") == "BTC3L-USDT"
    with pytest.raises(FrameError):
        venue.symbol_of("LUNA_USDT")
    assert [m.symbol for m in venue.parse_market_list(body, ["USDT", "BTC"])] == ["BTC-USDT", "BTC3L-USDT", "ETH-BTC"]


def test_subscribe_messages_match_the_live_request(venue: Gateio) -> None:
    markets = [venue.market(f"C{index}", "USDT") for index in range(PAIRS_PER_SUBSCRIBE + 1)]
    before = int(time.time())
    first, second = (json.loads(message) for message in venue.subscribe_messages(markets))
    live = json.loads(fixture_bytes("gateio", "ws_subscribe_request_2024.json"))
    assert first.keys() == live.keys()
    assert (first["channel"], first["event"]) == (live["channel"], live["event"])
    assert first["payload"] == [market.raw for market in markets[:PAIRS_PER_SUBSCRIBE]]
    assert second["payload"] == [markets[-1].raw]
    # A real integer time, current to the second; ids small enough for int32.
    assert type(first["time"]) is int and before <= first["time"] <= int(time.time())
    assert (first["id"], second["id"]) == (1, 2)
    old = json.loads(fixture_bytes("gateio", "ws_subscribe_request_real_2021.json"))
    assert old["payload"][3] == "NANO_USDT" == venue.market("NANO", "USDT").raw


def test_app_ping_is_the_documented_ping_with_the_current_time(venue: Gateio) -> None:
    template = fixture_bytes("gateio", "ws_ping_template_doc.txt").decode()
    now = int(time.time())
    ping = json.loads(venue.app_ping())
    assert ping == json.loads(template % ping["time"])
    assert now <= ping["time"] <= int(time.time())
    assert 10 <= venue.app_ping_interval_s <= 20


def test_ws_url_keeps_the_trailing_slash(venue: Gateio) -> None:
    assert venue.ws_url([]) == "wss://api.gateio.ws/ws/v4/"
