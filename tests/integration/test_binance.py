"""Binance's two endpoints against the simulator, as the docs describe them: /stream wraps
each event in {"stream","data"}, /ws sends it bare; either is subscribed with SUBSCRIBE
or in the URL. A worker pointed at /ws publishes every ticker (none dead-lettered)."""

import asyncio
import json
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import connect

from tests.harness import consume, override_file, topic_size

pytestmark = pytest.mark.integration

SUBSCRIBE = json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": 1})


async def _frames(url: str, requests: list[str], count: int) -> list[dict[str, Any]]:
    async with connect(url, compression=None) as socket:
        for request in requests:
            await socket.send(request)
        return [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(count)]


@pytest.mark.parametrize("path, subscribe, combined", [
    ("/stream?streams=btcusdt@ticker/ethusdt@ticker", False, True),
    ("/stream", True, True),
    ("/ws/btcusdt@ticker/ethusdt@ticker", False, False),
    ("/ws", True, False),
])
def test_both_endpoints_and_both_ways_of_subscribing(simulator: Any, path: str, subscribe: bool,
                                                     combined: bool) -> None:
    sim = simulator("binance", rate=20, markets=3, edge_shapes=False)
    url = f"ws://127.0.0.1:{sim.ports['binance']}{path}"
    frames = asyncio.run(_frames(url, [SUBSCRIBE] if subscribe else [], 7))
    if subscribe:
        assert frames.pop(0) == {"result": None, "id": 1}
    events = [frame["data"] for frame in frames] if combined else frames
    if combined:
        assert all(frame["stream"] == frame["data"]["s"].lower() + "@ticker" for frame in frames)
    assert all(event["e"] == "24hrTicker" for event in events), frames
    assert {event["s"] for event in events} == ({"BTCUSDT"} if subscribe else {"BTCUSDT", "ETHUSDT"})


def test_a_worker_on_the_raw_endpoint_publishes_every_ticker(kafka: str, simulator: Any, worker: Any,
                                                            tmp_path: Any) -> None:
    sim = simulator("binance", rate=40, markets=3)
    section = dict(sim.config["exchanges"]["binance"])
    section["ws_url"] = section["ws_url"].replace("/stream", "/ws")
    config = override_file(tmp_path, kafka, {"binance": section})
    topics = yaml.safe_load(config.read_text())["topics"]
    process = worker("binance", config)
    records = consume(kafka, topics["ticker"], lambda got: sum(v["source"] == "ws" for _, v in got) >= 60)
    assert {value["symbol"] for _, value in records if value["source"] == "ws"} == set(section["symbols"])
    assert process.stop() == 0
    assert "/ws" in process.log() and " dead_letters=0 " in process.log().split(" counters ")[-1]
    assert topic_size(kafka, topics["dead_letter"]) == 0
