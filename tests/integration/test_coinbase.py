"""Coinbase-specific behaviour against the simulator and the real broker: RFC 6455 pings
as the keepalive, the 5 s subscribe deadline, the subscriptions ack and heartbeats,
subscription errors, one paced REST call per product, and dead letters."""

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.harness import Simulator, WorkerProcess, consume, override_file, topic_size, wait_until

pytestmark = pytest.mark.integration


class Run:
    """The simulator, a worker reading it, and the worker's topics."""

    def __init__(self, kafka: str, simulator: Any, worker: Any, tmp_path: Path, markets: int = 5,
                 runtime: dict[str, Any] | None = None) -> None:
        self.kafka = kafka
        self.sim: Simulator = simulator("coinbase", rate=40, markets=markets)
        config = override_file(tmp_path, kafka, self.sim.config["exchanges"], runtime)
        self.topics: dict[str, str] = yaml.safe_load(config.read_text())["topics"]
        self.process: WorkerProcess = worker("coinbase", config)
        self.url: str = self.sim.config["exchanges"]["coinbase"]["ws_url"]

    def socket_records(self, enough: Any) -> list[dict[str, Any]]:
        """Read the ticker topic until `enough(records from the socket)` holds."""
        def ws(got: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
            return [value for _, value in got if value["source"] == "ws"]
        return ws(consume(self.kafka, self.topics["ticker"], lambda got: enough(ws(got))))

    def counter(self, name: str) -> int:
        """The worker's final value of one counter (after stop)."""
        return int(re.findall(rf" {name}=(\d+)", self.process.log())[-1])


async def _raw_client(url: str, request: dict[str, Any] | None, limit_s: float,
                      ping_interval_s: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """The frames a bare client gets for `request` within limit_s, and how long it stayed connected."""
    frames: list[dict[str, Any]] = []
    started = time.monotonic()
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(limit_s), connect(url, ping_interval=ping_interval_s) as socket:
            if request is not None:
                await socket.send(json.dumps(request))
            async for message in socket:
                frames.append(json.loads(message))
    return frames, time.monotonic() - started


def test_protocol_pings_keep_the_socket_and_silent_clients_are_closed(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    run = Run(kafka, simulator, worker, tmp_path, runtime={"ping_interval_s": 1})
    run.sim.control("coinbase", "idle", seconds=3)
    run.socket_records(lambda records: len(records) >= 10)
    quiet_from = time.time_ns()
    time.sleep(6)
    # Six seconds of a 3 s idle rule: the worker's RFC 6455 pings kept its one socket.
    assert run.sim.control("coinbase", "stats")["connections_total"] == 1
    run.socket_records(lambda records: any(r["received_ns"] > quiet_from + 5e9 for r in records))

    # A client that subscribes but never pings is cut, although data flows to it...
    request = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker"]}
    frames, lasted_s = asyncio.run(_raw_client(run.url, request, 10))
    assert frames[0]["type"] == "subscriptions"
    assert any(frame["type"] == "ticker" for frame in frames[1:])
    assert 3 <= lasted_s < 6
    # ...and one that pings, with the same request, is not.
    frames, lasted_s = asyncio.run(_raw_client(run.url, request, 5, ping_interval_s=1))
    assert lasted_s >= 5 and frames[-1]["type"] == "ticker"
    assert run.process.stop() == 0
    assert run.counter("exchange_errors") == 0


def test_subscribe_deadline_ack_heartbeats_and_errors(simulator: Any) -> None:
    sim = simulator("coinbase", rate=5, markets=3)
    url = sim.config["exchanges"]["coinbase"]["ws_url"]

    # Nothing sent within 5 s: dropped, pings or not.
    frames, lasted_s = asyncio.run(_raw_client(url, None, 10, ping_interval_s=1))
    assert frames == [] and 5 <= lasted_s < 7

    # The object form of channels (as in the 2025 capture); the ack lists the whole
    # subscription, each product's latest ticker follows, then a heartbeat a second.
    request = {"type": "subscribe", "product_ids": ["BTC-USD"],
               "channels": [{"name": "ticker", "product_ids": ["BTC-USD", "ETH-USD"]}, "heartbeat"]}
    frames, _ = asyncio.run(_raw_client(url, request, 2.5, ping_interval_s=1))
    assert frames[0] == {"type": "subscriptions", "channels": [
        {"name": "ticker", "product_ids": ["BTC-USD", "ETH-USD"], "account_ids": None},
        {"name": "heartbeat", "product_ids": ["BTC-USD"], "account_ids": None}]}
    assert [frame["product_id"] for frame in frames[1:3]] == ["BTC-USD", "ETH-USD"]
    heartbeats = [frame for frame in frames if frame["type"] == "heartbeat"]
    assert heartbeats and {frame["product_id"] for frame in heartbeats} == {"BTC-USD"}
    assert set(heartbeats[0]) == {"type", "last_trade_id", "product_id", "sequence", "time"}

    # A request naming one unknown product fails as a whole.
    request = {"type": "subscribe", "product_ids": ["BTC-USD", "GIBBERISH-USD"], "channels": ["ticker"]}
    frames, _ = asyncio.run(_raw_client(url, request, 1))
    assert frames == [{"type": "error", "message": "Failed to subscribe",
                       "reason": "GIBBERISH-USD is not a valid product"}]


def test_rest_is_one_paced_call_per_product_beside_the_socket_and_bad_frames_are_dead_lettered(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    run = Run(kafka, simulator, worker, tmp_path, markets=30)
    symbols = set(run.sim.config["exchanges"]["coinbase"]["symbols"])
    run.socket_records(lambda records: {r["symbol"] for r in records} == symbols)

    def rest(got: list[tuple[str, dict[str, Any]]]) -> list[int]:
        return sorted(value["received_ns"] for _, value in got if value["source"] == "rest")
    messages = consume(kafka, run.topics["ticker"], lambda got: len(rest(got)) >= len(symbols))
    snapshot = rest(messages)
    # The market list (the symbols checked at startup), then one call per product.
    assert len(snapshot) == len(symbols) == run.sim.control("coinbase", "stats")["rest_calls"] - 1
    # At most 10 requests a second, ~3 s for 30 products: the socket did not wait for them.
    assert all(later - earlier >= 0.1e9 for earlier, later in zip(snapshot, snapshot[1:]))
    first_socket_record = min(value["received_ns"] for _, value in messages if value["source"] == "ws")
    assert first_socket_record < snapshot[-1] - 1e9

    run.sim.fault("coinbase", "unknown_symbol", count=1)
    run.sim.fault("coinbase", "wrong_shape", count=1)
    letters = consume(kafka, run.topics["dead_letter"], lambda got: len(got) >= 2)
    errors = sorted(letter["error"] for _, letter in letters)
    assert errors[0].startswith("FrameError: unknown symbol 'NOPE-USD'")
    assert errors[1].startswith("ValidationError: ")
    assert run.process.stop() == 0
    # Frames beyond the socket's tickers, the ack and the two bad ones are heartbeats:
    # they arrived, and none of them became a record, a dead letter or an error.
    socket_records = run.counter("records") - len(symbols)
    assert run.counter("frames") - socket_records - 1 - 2 > 0
    assert topic_size(kafka, run.topics["dead_letter"]) == 2
    assert run.counter("exchange_errors") == 0


def test_stall_silences_heartbeats_too(kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    run = Run(kafka, simulator, worker, tmp_path, runtime={"watchdog_s": 3})
    run.socket_records(lambda records: len(records) >= 10)
    run.sim.fault("coinbase", "stall", seconds=6)
    # With heartbeats still flowing the watchdog would never fire.
    wait_until(lambda: "stalled: nothing heard for 3 s" in run.process.log(), 15, "the watchdog to reconnect")
    after = time.time_ns()
    run.socket_records(lambda records: any(r["received_ns"] > after for r in records))
    assert run.sim.control("coinbase", "stats")["connections_total"] >= 2
    assert run.process.stop() == 0
