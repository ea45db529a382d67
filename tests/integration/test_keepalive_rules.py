"""The exchanges' idle rules where RFC 6455 pings count as the client's traffic (Upbit,
Bithumb, Gate.io): a client that only sends protocol pings keeps its socket, one that
sends nothing loses it although tickers flow to it. Upbit's text PING, answered only
before a subscription; and the Upbit worker under its rule."""

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.venue import Venue
from tests.harness import consume, override_file
from workers.bithumb import Bithumb
from workers.gateio import Gateio
from workers.upbit import Upbit

pytestmark = pytest.mark.integration

IDLE_S = 3
VENUES: dict[str, type[Venue]] = {"upbit": Upbit, "bithumb": Bithumb, "gateio": Gateio}


async def _client(url: str, requests: list[str], ping_interval_s: float | None, limit_s: float) -> tuple[int, float]:
    """Send `requests`, then nothing but (with ping_interval_s) RFC 6455 pings; the data
    frames read and the seconds the socket lasted, up to limit_s."""
    frames = 0
    started = time.monotonic()
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(limit_s), connect(url, ping_interval=ping_interval_s, compression=None) as socket:
            for request in requests:
                await socket.send(request)
            async for _ in socket:
                frames += 1
    return frames, time.monotonic() - started


@pytest.mark.parametrize("exchange", sorted(VENUES))
def test_protocol_pings_alone_keep_the_socket_and_a_client_sending_nothing_is_cut(
        exchange: str, simulator: Any) -> None:
    sim = simulator(exchange, rate=20, markets=2)
    sim.control(exchange, "idle", seconds=IDLE_S)
    section = sim.config["exchanges"][exchange]
    venue = VENUES[exchange](section["ws_url"], section["rest_url"])
    requests = venue.subscribe_messages([venue.market(*symbol.split("-")) for symbol in section["symbols"]])

    async def both() -> list[tuple[int, float]]:
        return list(await asyncio.gather(_client(venue.ws_url([]), requests, 0.5, 3 * IDLE_S),
                                         _client(venue.ws_url([]), requests, None, 3 * IDLE_S)))

    (pinging_frames, pinging_s), (silent_frames, silent_s) = asyncio.run(both())
    assert pinging_s >= 3 * IDLE_S and pinging_frames > 20, (pinging_s, pinging_frames)
    assert IDLE_S <= silent_s < IDLE_S + 2.5 and silent_frames > 5, (silent_s, silent_frames)


def test_upbit_answers_a_text_ping_only_before_a_subscription(simulator: Any) -> None:
    sim = simulator("upbit", rate=0, markets=2)
    url = sim.config["exchanges"]["upbit"]["ws_url"]

    async def answers(subscribe_first: bool) -> list[Any]:
        async with connect(url, compression=None) as socket:
            if subscribe_first:
                await socket.send('[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC"]},{"format":"DEFAULT"}]')
                await asyncio.wait_for(socket.recv(), 2)  # the snapshot
            await socket.send("PING")
            with contextlib.suppress(TimeoutError):
                return [json.loads(await asyncio.wait_for(socket.recv(), 1.5))]
            return []

    assert asyncio.run(answers(subscribe_first=False)) == [{"status": "UP"}]
    assert asyncio.run(answers(subscribe_first=True)) == []


def test_upbit_worker_keeps_its_socket_under_the_idle_rule(kafka: str, simulator: Any, worker: Any,
                                                          tmp_path: Any) -> None:
    sim = simulator("upbit", rate=20, markets=3)
    sim.control("upbit", "idle", seconds=IDLE_S)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"ping_interval_s": 1})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("upbit", config)
    consume(kafka, topic, lambda got: sum(v["source"] == "ws" for _, v in got) >= 5, timeout_s=30)
    time.sleep(2 * IDLE_S)  # only the worker's protocol pings count for the rule
    after_ns = time.time_ns()
    consume(kafka, topic, lambda got: any(v["source"] == "ws" and v["received_ns"] > after_ns for _, v in got))
    assert sim.control("upbit", "stats")["connections_total"] == 1
    assert process.stop() == 0
    assert "reconnecting" not in process.log()
