"""Bithumb's own rules, against the simulator (and the real broker where a worker runs):
the 60 s idle rule kept with text PINGs, REST epochs written as KST, the 200-market REST
cap, and the v1 socket's snapshots, flags and errors as the documented requests meet them."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import fixture_bytes
from tests.harness import consume, override_file

pytestmark = pytest.mark.integration


def _ticker_topic(config: Path) -> str:
    return str(yaml.safe_load(config.read_text())["topics"]["ticker"])


def _ws_url(sim: Any) -> str:
    return str(sim.config["exchanges"]["bithumb"]["ws_url"])


async def _frames(socket: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every frame the socket receives within `seconds`, decoded; stops early if it closes."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            frame = await asyncio.wait_for(socket.recv(), left)
            assert isinstance(frame, bytes)  # the v1 socket sends binary frames only
            frames.append(json.loads(frame))
    except (TimeoutError, ConnectionClosed):
        pass
    return frames


def test_pinging_worker_keeps_its_connection(kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator("bithumb", rate=20, markets=3)
    sim.control("bithumb", "idle", seconds=3)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"ping_interval_s": 1})
    topic = _ticker_topic(config)
    process = worker("bithumb", config)
    consume(kafka, topic, lambda got: sum(v["source"] == "ws" for _, v in got) >= 5, timeout_s=30)
    assert sim.control("bithumb", "stats")["connections_total"] == 1
    time.sleep(6)  # twice the idle limit: only the worker's PINGs keep the socket open
    after_ns = time.time_ns()
    consume(kafka, topic, lambda got: any(v["source"] == "ws" and v["received_ns"] > after_ns for _, v in got))
    assert sim.control("bithumb", "stats")["connections_total"] == 1
    assert process.stop() == 0
    assert "reconnecting" not in process.log()


def test_silent_client_is_dropped_without_close_frame(simulator: Any) -> None:
    sim = simulator("bithumb", rate=5, markets=2)
    sim.control("bithumb", "idle", seconds=2)

    async def silent_client() -> tuple[list[dict[str, Any]], int | None, float]:
        # No RFC 6455 pings either: the client sends its request and nothing more.
        async with connect(_ws_url(sim), ping_interval=None, compression=None) as socket:
            started = time.monotonic()
            await socket.send(fixture_bytes("bithumb", "ws_subscribe.json").decode())
            frames = await _frames(socket, 6)
            return frames, socket.close_code, time.monotonic() - started

    frames, close_code, lasted_s = asyncio.run(silent_client())
    assert frames and all(frame["code"] == "KRW-BTC" for frame in frames)
    assert close_code == 1006  # the exchange drops the TCP connection, no close frame
    assert 2 <= lasted_s < 5


def test_one_ping_starts_a_status_heartbeat(simulator: Any) -> None:
    sim = simulator("bithumb", rate=0, markets=2)

    async def pinging_client() -> list[tuple[float, dict[str, Any]]]:
        async with connect(_ws_url(sim), compression=None) as socket:
            started = time.monotonic()
            await socket.send("PING")
            received = []
            for _ in range(2):
                frame = await asyncio.wait_for(socket.recv(), 12)
                received.append((time.monotonic() - started, json.loads(frame)))
            return received

    (answer_s, answer), (heartbeat_s, heartbeat) = asyncio.run(pinging_client())
    assert answer == heartbeat == {"status": "UP"}
    assert answer_s < 1 and 9.5 < heartbeat_s < 11


def test_rest_snapshot_over_the_market_cap_with_kst_epochs_corrected(
        kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    # 250 markets: the simulator refuses more than 200 in one REST call, and writes
    # REST epochs as KST, 9 h ahead.
    sim = simulator("bithumb", rate=20, markets=250)
    config = override_file(tmp_path, kafka, sim.config["exchanges"])
    topic = _ticker_topic(config)
    process = worker("bithumb", config)
    def rest(got: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [value for _, value in got if value["source"] == "rest"]
    # The snapshot runs beside the socket: its 250 records, one per market, in two calls.
    snapshot = rest(consume(kafka, topic, lambda got: len(rest(got)) >= 250, timeout_s=30))
    assert len(snapshot) == len({value["symbol"] for value in snapshot}) == 250
    for value in snapshot:
        assert abs(value["exchange_ts"] - value["received_ns"] // 1_000_000) < 5_000, value
    assert process.stop() == 0
    assert "REST snapshot failed" not in process.log()


def test_documented_requests_flags_and_errors(simulator: Any) -> None:
    sim = simulator("bithumb", rate=20, markets=3)

    async def session(request: str, seconds: float) -> tuple[list[dict[str, Any]], int | None]:
        async with connect(_ws_url(sim), compression=None) as socket:
            await socket.send(request)
            frames = await _frames(socket, seconds)
            return frames, socket.close_code

    async def run() -> None:
        # The probe's multi-type request: ticker frames for KRW-BTC only (KRW-EGG is not
        # listed and is ignored), first a SNAPSHOT, then REALTIME; orderbook frames for the
        # listed codes of its orderbook type, a SNAPSHOT first for each.
        frames, _ = await session(fixture_bytes("bithumb", "ws_subscribe_multi_type_probe.json").decode(), 1)
        tickers = [frame for frame in frames if frame["type"] == "ticker"]
        assert {frame["code"] for frame in tickers} == {"KRW-BTC"}
        assert [frame["stream_type"] for frame in tickers[:2]] == ["SNAPSHOT", "REALTIME"]
        books = [frame for frame in frames if frame["type"] == "orderbook"]
        assert {frame["code"] for frame in books} == {"KRW-BTC", "KRW-ETH"}
        assert {frame["stream_type"] for frame in books[:2]} == {"SNAPSHOT"}

        codes = ["KRW-BTC", "KRW-ETH", "BTC-KRW", "krw-xrp"]
        # camelCase isOnlySnapshot: one snapshot per valid code and nothing after.
        camel = json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": codes, "isOnlySnapshot": True}])
        frames, _ = await session(camel, 1)
        assert [(frame["code"], frame["stream_type"]) for frame in frames] == [
            ("KRW-BTC", "SNAPSHOT"), ("KRW-ETH", "SNAPSHOT")]
        # The docs' snake_case spelling is ignored: realtime frames follow.
        snake = json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": codes, "is_only_snapshot": True}])
        frames, _ = await session(snake, 1)
        assert "REALTIME" in {frame["stream_type"] for frame in frames}
        # camelCase isOnlyRealtime: no snapshot.
        realtime = json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": codes, "isOnlyRealtime": True}])
        frames, _ = await session(realtime, 1)
        assert frames and {frame["stream_type"] for frame in frames} == {"REALTIME"}

        # Errors: one frame shaped like the samples, then a close with 1000.
        for request, sample in [
            ('[{"type":"ticker","codes":["KRW-BTC"]}]', "ws_error_no_ticket.json"),
            ('[{"ticket":"t"},{"type":"nope","codes":["KRW-BTC"]}]', "ws_error_invalid_param.json"),
            ('{"ticket":"t"}', "ws_error_wrong_format.json"),
        ]:
            frames, close_code = await session(request, 2)
            assert frames == [json.loads(fixture_bytes("bithumb", sample))]
            assert close_code == 1000

    asyncio.run(run())
