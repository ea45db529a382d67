"""Kraken against its simulator and the real broker: the keepalive rule, the v2
handshake (status, one ack per symbol, snapshots, heartbeats, pong) checked against
the verbatim samples, and market discovery through AssetPairs with legacy REST keys."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.record import ExchangeError
from tests.conftest import fixture_bytes
from tests.harness import ROOT, consume, override_file
from tests.integration.test_books import resyncs, settle_and_compare, start_books
from workers.kraken import Kraken

pytestmark = pytest.mark.integration


def _ws_count(messages: list[tuple[str, dict[str, Any]]]) -> int:
    return sum(1 for _, value in messages if value["source"] == "ws")


async def _next(socket: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(socket.recv(), timeout=5)))


def _sample(name: str) -> dict[str, Any]:
    return dict(json.loads(fixture_bytes("kraken", name)))


def test_pinging_worker_survives_the_idle_rule_and_so_does_a_subscribed_silent_client(
        kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator("kraken", rate=20, markets=5)
    sim.control("kraken", "idle", seconds=3)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"ping_interval_s": 1})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("kraken", config)
    consume(kafka, topic, lambda got: _ws_count(got) >= 10, timeout_s=30)
    started = time.time_ns()
    time.sleep(6)
    assert sim.control("kraken", "stats")["connections_total"] == 1
    consume(kafka, topic, lambda got: sum(1 for _, v in got if v["received_ns"] > started + 5e9) >= 10)

    async def silent_client(subscribe: bool) -> tuple[float, int]:
        """Subscribe or not, then send nothing, not even a ping: seconds until the server
        drops us (at most 7), frames seen."""
        frames = 0
        async with connect(sim.config["exchanges"]["kraken"]["ws_url"], ping_interval=None) as socket:
            if subscribe:
                await socket.send(fixture_bytes("kraken", "ws_subscribe.json").decode().replace("USDT/USD", "BTC/USD"))
            opened = time.monotonic()
            try:
                while time.monotonic() - opened < 7:
                    await asyncio.wait_for(socket.recv(), timeout=10)
                    frames += 1
            except ConnectionClosed:
                pass
            return time.monotonic() - opened, frames

    async def both() -> list[tuple[float, int]]:
        return list(await asyncio.gather(silent_client(subscribe=True), silent_client(subscribe=False)))

    (subscribed_s, subscribed_frames), (unsubscribed_s, unsubscribed_frames) = asyncio.run(both())
    # The tickers and heartbeats sent to a subscribed client are traffic: it stays...
    assert subscribed_s >= 7 and subscribed_frames > 10
    # ...and one that never subscribes gets nothing but the status frame, and is dropped.
    assert 2.5 < unsubscribed_s < 5 and unsubscribed_frames == 1
    assert process.stop() == 0
    assert "reconnecting" not in process.log()


def test_handshake_acks_snapshots_heartbeats_and_pong_match_the_samples(simulator: Any) -> None:
    sim = simulator("kraken", rate=0, markets=5)
    venue = Kraken(sim.config["exchanges"]["kraken"]["ws_url"], sim.config["exchanges"]["kraken"]["rest_url"])
    venue.learn([venue.market("BTC", "USD"), venue.market("ETH", "USD")])

    async def session() -> None:
        async with connect(venue.ws_base, ping_interval=None) as socket:
            status = await _next(socket)
            assert status.keys() == _sample("ws_status.json").keys()
            assert status["data"][0].keys() == _sample("ws_status.json")["data"][0].keys()
            assert status["data"][0]["connection_id"] > 2**53
            request = {"method": "subscribe",
                       "params": {"channel": "ticker", "symbol": ["BTC/USD", "NOPE/USD", "XBT/USD", "ETH/USD"]}}
            await socket.send(json.dumps(request))
            acks = [await _next(socket) for _ in range(4)]
            ok, error = _sample("ws_subscribe_ack.json"), _sample("ws_subscribe_error.json")
            # One answer per symbol, in order; a bad symbol (XBT too) fails alone.
            assert [list(ack) for ack in acks] == [list(ok), list(error), list(error), list(ok)]
            assert [ack.get("symbol") or ack["result"]["symbol"] for ack in acks] == request["params"]["symbol"]
            assert acks[0]["result"].keys() == ok["result"].keys()
            assert acks[2]["error"] == "Currency pair not supported XBT/USD"
            for ack in acks:
                frame = json.dumps(ack).encode()
                if ack["success"]:
                    assert venue.parse_ws(frame, 1) == []
                else:
                    with pytest.raises(ExchangeError):
                        venue.parse_ws(frame, 1)
            snapshots = [await _next(socket) for _ in range(2)]
            assert [s["type"] for s in snapshots] == ["snapshot", "snapshot"]
            assert snapshots[0]["data"][0].keys() == _sample("ws_ticker_1.json")["data"][0].keys()
            parsed = [venue.parse_ws(json.dumps(s).encode(), 1)[0].symbol for s in snapshots]
            assert parsed == ["BTC-USD", "ETH-USD"]
            # No tickers at rate 0: a heartbeat comes within about a second.
            assert await _next(socket) == _sample("ws_heartbeat.json")
            await socket.send(json.dumps({"method": "ping", "req_id": 42}))
            pong = await _next(socket)
            while pong.get("channel") == "heartbeat":
                pong = await _next(socket)
            # The documented pong (kraken.md, keepalive): the method, the req_id echoed, time_in, time_out.
            assert list(pong) == ["method", "req_id", "time_in", "time_out"] and pong["req_id"] == 42
            assert venue.parse_ws(json.dumps(pong).encode(), 1) == []
            # A channel the simulator does not serve (the book is served since issue 20).
            await socket.send('{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}')
            refused = await _next(socket)
            while refused.get("channel") == "heartbeat":
                refused = await _next(socket)
            assert refused["success"] is False and refused["method"] == "subscribe"

    asyncio.run(session())


def test_quotes_discovers_markets_and_maps_legacy_rest_keys(kafka: str, simulator: Any, worker: Any,
                                                            tmp_path: Any) -> None:
    sim = simulator("kraken", rate=20, markets=5)
    section = {key: value for key, value in sim.config["exchanges"]["kraken"].items() if key != "symbols"}
    config = override_file(tmp_path, kafka, {"kraken": {**section, "quotes": ["USD"]}})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("kraken", config)
    symbols = set(sim.config["exchanges"]["kraken"]["symbols"])

    def enough(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return _ws_count(got) >= 20 and sum(1 for _, value in got if value["source"] == "rest") >= len(symbols)
    records = [value for _, value in consume(kafka, topic, enough)]
    # The snapshot (beside the socket) came from /Ticker, keyed XXBTZUSD, XETHZUSD,
    # XXDGZUSD, ...: each one found its v2 pair through AssetPairs.
    snapshot = [record for record in records if record["source"] == "rest"]
    assert sorted(r["symbol"] for r in snapshot) == sorted(symbols)
    assert {r["raw_symbol"] for r in snapshot} >= {"BTC/USD", "DOGE/USD"}
    assert {r["symbol"] for r in records if r["source"] == "ws"} == symbols
    assert process.stop() == 0
    assert "dead letter" not in process.log()


@pytest.mark.parametrize("depth", [27, 20])
def test_a_book_depth_kraken_would_refuse_in_the_ack_is_refused_at_start(tmp_path: Path, depth: int) -> None:
    """Kraken answers a depth outside 10/25/100/500/1000 only in the ack, then sends
    heartbeats and no book: the worker refuses it before connecting, in one line."""
    override = tmp_path / "override.yaml"
    override.write_text(f"exchanges: {{kraken: {{channels: [ticker, book], book_depth: {depth}}}}}\n")
    done = subprocess.run([sys.executable, "-m", "workers.kraken", "--config", str(override)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78
    assert done.stderr.strip().splitlines() == [
        f"coinstream kraken: error: {override}: exchanges.kraken.book_depth: {depth} levels; "
        "kraken serves 10, 25, 100, 500, 1000"]


def test_depth_25_books_are_the_true_top_25(kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """A depth-25 subscription: the checksum still covers the top 10, the window is 25."""
    sim, process, topic = start_books("kraken", kafka, simulator, worker, tmp_path, depth=25)
    consume(kafka, topic, lambda got: len(got) >= 60, timeout_s=60)
    records = settle_and_compare(sim, "kraken", kafka, topic, 25, markets=3)
    assert process.stop() == 0
    assert resyncs(process) == {}
    assert max(len(record["bids"]) for record in records) == 25
