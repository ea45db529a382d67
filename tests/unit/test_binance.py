"""Binance parsing on verbatim payloads (tests/fixtures/binance, see SOURCES.md there)."""

from decimal import Decimal
from types import SimpleNamespace

import msgspec
import pytest

from shared.record import ExchangeError, FrameError, ServerRestart
from simulator.binance import BinanceSim
from simulator.books import BookUpdate
from simulator.core import universe
from tests.conftest import fixture_bytes, json_shape
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


# --- order book ------------------------------------------------------------------------

def test_partial_depth_push_is_the_whole_book_named_by_its_stream(venue: Binance) -> None:
    frame = fixture_bytes("binance", "book_ws_partial_depth20_trimmed_tokocrypto_mirror.json")
    [message] = venue.parse_book_ws(frame, 7)
    assert (message.raw, message.snapshot, message.update_id, message.first_id, message.exchange_ts) == (
        "BTCUSDT", True, 100530416202, None, None)  # no time in the push
    assert [list(level) for level in message.bids] == [["86704.77000000", "4.67805000"],
                                                       ["86704.76000000", "0.00224000"]]
    assert [list(level) for level in message.asks] == [["86704.78000000", "0.73337000"],
                                                       ["86704.79000000", "0.00384000"]]


def test_a_bare_partial_depth_payload_names_no_market_and_is_refused(venue: Binance) -> None:
    # The raw endpoint /ws sends the payload alone: no market to place it in.
    with pytest.raises(FrameError):
        venue.parse_book_ws(fixture_bytes("binance", "book_ws_partial_depth_doc_comments_stripped.json"), 7)


def test_diff_events_are_read_in_both_forms(venue: Binance) -> None:
    [combined] = venue.parse_book_ws(fixture_bytes("binance", "book_ws_diff_depth_1_real.json"), 7)
    assert (combined.raw, combined.snapshot, combined.first_id, combined.update_id, combined.exchange_ts) == (
        "NKNUSDT", False, 499869750, 499869752, 1633998512068)
    [bare] = venue.parse_book_ws(fixture_bytes("binance", "book_ws_diff_depth_doc_comments_stripped.json"), 7)
    assert (bare.raw, bare.snapshot) == ("BNBBTC", False)


@pytest.mark.parametrize("depth,stream,resync,window", [
    (1, "btcusdt@depth5@100ms", "frames", 1), (5, "btcusdt@depth5@100ms", "frames", 5),
    (6, "btcusdt@depth10@100ms", "frames", 6), (10, "btcusdt@depth10@100ms", "frames", 10),
    (20, "btcusdt@depth20@100ms", "frames", 20), (21, "btcusdt@depth@100ms", "rest", 500),
    (1000, "btcusdt@depth@100ms", "rest", 5000),
])
def test_the_book_stream_follows_the_depth(depth: int, stream: str, resync: str, window: int) -> None:
    venue = Binance("wss://stream.binance.com:9443/ws", "https://data-api.binance.vision")
    [subscribe] = venue.book_subscribe_messages([venue.market("BTC", "USDT")], depth)
    assert msgspec.json.decode(subscribe)["params"] == [stream]
    assert (venue.book_resync_at(depth), venue.book_snapshot_ids_grow_at(depth), venue.book_window(depth)) == (
        resync, resync == "frames", window)
    # A partial-depth push names its market only in the combined envelope: its socket opens /stream.
    assert venue.book_ws_url([], depth) == ("wss://stream.binance.com:9443/stream" if resync == "frames"
                                            else "wss://stream.binance.com:9443/ws")


def _values(levels: object) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path, real", [("/stream", "book_ws_partial_depth20_trimmed_tokocrypto_mirror.json"),
                                        ("/ws", "book_ws_partial_depth_doc_comments_stripped.json")])
def test_simulated_partial_depth_pushes_are_shaped_like_the_real_ones(venue: Binance, path: str, real: str) -> None:
    sim = BinanceSim(universe("USDT", 2), rate_per_s=0)
    book = sim.book_feed.book("BTCUSDT")
    update = book.step()
    # What the simulator knows of a socket that subscribed btcusdt@depth20@100ms on `path`.
    socket = SimpleNamespace(request=SimpleNamespace(path=path), binance_partial_depths={"BTCUSDT": 20})
    frame = sim.book_update_frame(socket, "BTCUSDT", update)  # type: ignore[arg-type]
    assert json_shape(frame) == json_shape(fixture_bytes("binance", real))
    # The bulk feed's parts around the id make the same push again.
    render = sim.bulk_book_parts(socket, "BTCUSDT")  # type: ignore[arg-type]
    assert render is not None
    head, tail = render(update)
    assert f"{head}{update.update_id}{tail}" == frame
    if path == "/stream":
        [message] = venue.parse_book_ws(frame.encode(), 1)
        true_bids, true_asks = book.top(20)
        assert (message.raw, message.update_id) == ("BTCUSDT", update.update_id)
        assert (_values(message.bids), _values(message.asks)) == (_values(true_bids), _values(true_asks))
