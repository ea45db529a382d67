"""Binance parsing on verbatim payloads (tests/fixtures/binance, see SOURCES.md there)."""

import msgspec
import pytest

from shared.record import ExchangeError, FrameError, ServerRestart
from tests.conftest import fixture_bytes
from workers.binance import Binance


@pytest.fixture
def venue() -> Binance:
    binance = Binance("wss://stream.binance.com:9443/stream", "https://data-api.binance.vision")
    binance.learn([binance.market("ETH", "USDT"), binance.market("BTC", "USDT"), binance.market("BNB", "BTC")])
    return binance


def test_combined_stream_ticker(venue: Binance) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("binance", "ws_ticker_combined_1.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("binance", "ETH-USDT", "ETHUSDT")
    assert (ticker.last, ticker.bid, ticker.ask) == ("1792.84000000", "1792.83000000", "1792.84000000")
    assert (ticker.bid_size, ticker.ask_size) == ("1.62740000", "20.29140000")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("1764.61000000", "1808.98000000", "1748.94000000")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("471703.53110000", "840180761.51358100")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1653812650349, 7, "ws")


def test_both_frame_forms_give_the_same_record(venue: Binance) -> None:
    """The raw endpoint (/ws, /ws/btcusdt@ticker) sends the bare event, as other tools capture it."""
    combined = fixture_bytes("binance", "ws_ticker_combined_1.json")
    bare = combined[combined.index(b'"data":') + len(b'"data":'):-1]  # the envelope's event, verbatim
    assert bare.startswith(b'{"e":"24hrTicker"')
    assert venue.parse_ws(bare, 7) == venue.parse_ws(combined, 7)


def test_server_shutdown_on_the_raw_stream_asks_for_a_reconnect(venue: Binance) -> None:
    with pytest.raises(ServerRestart):
        venue.parse_ws(b'{"e":"serverShutdown","E":1778000000000}', 1)


def test_other_bare_events_are_rejected_not_misread(venue: Binance) -> None:
    mini = fixture_bytes("binance", "ws_miniticker_combined_unattributed.json")
    bare = mini[mini.index(b'"data":') + len(b'"data":'):-1]
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(bare, 1)


def test_subscribe_ack_is_not_a_ticker(venue: Binance) -> None:
    assert venue.parse_ws(fixture_bytes("binance", "ws_subscribe_response_doc.json"), 1) == []


@pytest.mark.parametrize("frame", [
    fixture_bytes("binance", "rest_error_doc.json"),
    b'{"error":{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"},"id":null}',
])
def test_errors_in_both_envelopes(venue: Binance, frame: bytes) -> None:
    with pytest.raises(ExchangeError):
        venue.parse_ws(frame, 1)


def test_server_shutdown_asks_for_a_reconnect(venue: Binance) -> None:
    with pytest.raises(ServerRestart):
        venue.parse_ws(b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1778000000000}}', 1)


@pytest.mark.parametrize("name", ["ws_miniticker_combined_unattributed.json", "ws_bookticker_combined_1.json",
                                  "ws_ticker_arr_retired_element.json"])
def test_other_streams_are_rejected_not_misread(venue: Binance, name: str) -> None:
    with pytest.raises(Exception) as caught:
        venue.parse_ws(fixture_bytes("binance", name), 1)
    assert not isinstance(caught.value, ExchangeError)


def test_unknown_symbol_is_a_frame_error(venue: Binance) -> None:
    frame = fixture_bytes("binance", "ws_ticker_combined_1.json").replace(b'"ETHUSDT"', b'"NOPEUSDT"')
    with pytest.raises(FrameError, match="unknown symbol"):
        venue.parse_ws(frame, 1)


def test_rest_24hr_ticker(venue: Binance) -> None:
    body = b"[" + fixture_bytes("binance", "rest_ticker_24hr_doc.json") + b"]"
    [ticker] = venue.parse_rest("https://x/api/v3/ticker/24hr?symbols=%5B%22BNBBTC%22%5D", body, 5, [])
    assert (ticker.symbol, ticker.last, ticker.bid, ticker.ask) == ("BNB-BTC", "4.00000200", "4.00000000", "4.00000200")
    assert (ticker.low_24h, ticker.exchange_ts, ticker.source) == ("0.10000000", 1499869899040, "rest")


def test_subscribe_message_uses_lower_case_stream_names(venue: Binance) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "USDT"), venue.market("ETH", "USDT")])
    assert message == '{"method": "SUBSCRIBE", "params": ["btcusdt@ticker", "ethusdt@ticker"], "id": 1}'


def test_market_list_keeps_trading_markets_in_the_wanted_quotes(venue: Binance) -> None:
    body = (b'{"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT"},'
            b'{"symbol":"1000SATSUSDT","status":"TRADING","baseAsset":"1000SATS","quoteAsset":"USDT"},'
            b'{"symbol":"LUNAUSDT","status":"BREAK","baseAsset":"LUNA","quoteAsset":"USDT"},'
            b'{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC"}]}')
    markets = venue.parse_market_list(body, ["USDT"])
    assert [(m.raw, m.symbol) for m in markets] == [("BTCUSDT", "BTC-USDT"), ("1000SATSUSDT", "1000SATS-USDT")]
