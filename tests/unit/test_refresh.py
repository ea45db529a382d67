"""The quiet-market refresh publishes a REST ticker only when it brings news: its market
has published nothing for rest_refresh_s, and a number differs from the market's last
record. Judged from the records alone, so a replay of a capture publishes what the live
run did: here, through --replay's own path."""

import json
import logging
from pathlib import Path

import pytest

from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.worker import Worker
from tests.conftest import fixture_bytes
from workers.binance import Binance

T0_NS = 1_653_812_650_400_000_000  # just after the fixture's event time
SECOND_NS = 1_000_000_000
REST_URL = "https://data-api.binance.vision/api/v3/ticker/24hr?symbols=%5B%22ETHUSDT%22%5D"
# The fixture's ETHUSDT numbers as REST writes them, trailing zeros trimmed.
ETH = {"symbol": "ETHUSDT", "lastPrice": "1792.84", "bidPrice": "1792.83", "bidQty": "1.6274",
       "askPrice": "1792.84", "askQty": "20.2914", "openPrice": "1764.61", "highPrice": "1808.98",
       "lowPrice": "1748.94", "volume": "471703.5311", "quoteVolume": "840180761.513581", "closeTime": 1653812650344}
BTC = {**ETH, "symbol": "BTCUSDT", "lastPrice": "29000.01"}


def _line(kind: str, at_ns: int, data: str, url: str = REST_URL) -> str:
    return json.dumps({"ts": at_ns, "kind": kind, "url": url, "data": data})


def test_a_refresh_publishes_only_news_and_a_replay_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws_frame = fixture_bytes("binance", "ws_ticker_combined_1.json").decode()
    moved = {**ETH, "volume": "471001.2"}  # the rolling 24 h volume fell, no trade
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\n".join([
        _line("ws", T0_NS, ws_frame, "wss://stream.binance.com:9443/stream"),
        _line("refresh", T0_NS + 10 * SECOND_NS, json.dumps([moved])),   # the socket spoke 10 s ago
        _line("refresh", T0_NS + 400 * SECOND_NS, json.dumps([ETH])),    # quiet, nothing changed
        _line("refresh", T0_NS + 401 * SECOND_NS, json.dumps([moved, BTC])),  # news; BTC never published
        _line("refresh", T0_NS + 402 * SECOND_NS, json.dumps([moved])),  # its last record is 1 s old
        _line("rest", T0_NS + 403 * SECOND_NS, json.dumps([ETH])),       # a snapshot or fallback: always
    ]) + "\n")
    exchange = ExchangeConfig(ws_url="wss://stream.binance.com:9443/stream",
                              rest_url="https://data-api.binance.vision", symbols=["ETH-USDT", "BTC-USDT"])
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(rest_refresh_s=300),
                    StdoutSink(stats), stats, logging.getLogger("coinstream.test"))
    worker.replay(capture)
    worker.sink.close(1)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["symbol"], r["source"], r["volume_24h"], r["received_ns"]) for r in records] == [
        ("ETH-USDT", "ws", "471703.53110000", T0_NS),
        ("ETH-USDT", "rest", "471001.2", T0_NS + 401 * SECOND_NS),
        ("BTC-USDT", "rest", "471703.5311", T0_NS + 401 * SECOND_NS),
        ("ETH-USDT", "rest", "471703.5311", T0_NS + 403 * SECOND_NS),
    ]
    assert stats.refreshed == 2


def test_a_fallback_body_publishes_only_the_markets_it_was_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A socket's fallback or refresh body names the markets it asked for (where one call
    answers every market, the others' sockets may be streaming): the others are not
    published, replayed as live. A body without the list (a snapshot, an older capture)
    publishes every market it holds."""
    capture = tmp_path / "capture.jsonl"
    asked = json.loads(_line("rest", T0_NS, json.dumps([ETH, BTC])))
    asked["markets"] = ["ETHUSDT"]
    capture.write_text("\n".join([
        json.dumps(asked),
        _line("rest", T0_NS + SECOND_NS, json.dumps([ETH, BTC])),
    ]) + "\n")
    exchange = ExchangeConfig(ws_url="wss://stream.binance.com:9443/stream",
                              rest_url="https://data-api.binance.vision", symbols=["ETH-USDT", "BTC-USDT"])
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(),
                    StdoutSink(stats), stats, logging.getLogger("coinstream.test"))
    worker.replay(capture)
    worker.sink.close(1)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["symbol"], r["received_ns"]) for r in records] == [
        ("ETH-USDT", T0_NS), ("ETH-USDT", T0_NS + SECOND_NS), ("BTC-USDT", T0_NS + SECOND_NS)]


def test_a_silent_socket_s_check_publishes_news_after_rest_fallback_after_s(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A silent streaming socket's check (kind "silence") publishes a REST ticker that
    differs from its market's last record once that record is rest_fallback_after_s old:
    the REST ticker is then newer than the stream's. A refresh's body keeps its own
    rest_refresh_s. Replayed as live."""
    ws_frame = fixture_bytes("binance", "ws_ticker_combined_1.json").decode()
    traded = {**ETH, "lastPrice": "1793.01"}
    later = {**ETH, "lastPrice": "1793.02"}
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\n".join([
        _line("ws", T0_NS, ws_frame, "wss://stream.binance.com:9443/stream"),
        _line("silence", T0_NS + 5 * SECOND_NS, json.dumps([traded])),   # the socket spoke 5 s ago
        _line("silence", T0_NS + 12 * SECOND_NS, json.dumps([ETH])),     # silent, nothing changed
        _line("silence", T0_NS + 13 * SECOND_NS, json.dumps([traded])),  # silent, traded: news
        _line("refresh", T0_NS + 30 * SECOND_NS, json.dumps([later])),   # 17 s since, not 300
    ]) + "\n")
    exchange = ExchangeConfig(ws_url="wss://stream.binance.com:9443/stream",
                              rest_url="https://data-api.binance.vision", symbols=["ETH-USDT"])
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange,
                    Runtime(rest_fallback_after_s=10, rest_refresh_s=300), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test"))
    worker.replay(capture)
    worker.sink.close(1)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["source"], r["last"], r["received_ns"]) for r in records] == [
        ("ws", "1792.84000000", T0_NS), ("rest", "1793.01", T0_NS + 13 * SECOND_NS)]
    assert stats.refreshed == 1
    assert worker.refreshed_last["ETH-USDT"] == ("1793.02", T0_NS + 30 * SECOND_NS)


def test_a_fallback_body_holding_none_of_the_markets_asked_for_is_an_error_not_a_lull(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A body of other markets only (REST names the socket's markets otherwise, or has
    dropped them) publishes nothing for the socket: counted in rest_errors and logged,
    not passed over as a fallback with nothing new."""
    capture = tmp_path / "capture.jsonl"
    asked = json.loads(_line("rest", T0_NS, json.dumps([ETH, BTC])))
    asked["markets"] = ["SOLUSDT"]
    capture.write_text(json.dumps(asked) + "\n")
    exchange = ExchangeConfig(ws_url="wss://stream.binance.com:9443/stream",
                              rest_url="https://data-api.binance.vision", symbols=["ETH-USDT", "BTC-USDT", "SOL-USDT"])
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(),
                    StdoutSink(stats), stats, logging.getLogger("coinstream.test"))
    worker.replay(capture)
    worker.sink.close(1)
    assert capsys.readouterr().out == ""
    assert stats.rest_errors == 1
    assert "none of the 1 market(s) asked for (SOLUSDT) in the body's 2 ticker(s) (ETHUSDT, BTCUSDT)" in caplog.text
