"""OKX-specific behaviour against the simulator and the real broker: the text `ping`
keepalive (and 4004 for clients without it), one ack per instrument for one subscribe
request per connection, the 480-requests budget, and the 64008 service-upgrade notice."""

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.harness import Simulator, WorkerProcess, consume, override_file, topic_size, wait_until

pytestmark = pytest.mark.integration


class Session:
    """A raw client of the simulator: what it received, and how the server closed it."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.lasted_s = 0.0

    def replies(self) -> list[dict[str, Any]]:
        """The JSON frames that are not ticker pushes."""
        return [reply for reply in map(json.loads, self.frames) if "data" not in reply]


async def _talk(url: str, requests: list[str], listen_s: float) -> Session:
    """Send `requests` without ever pinging, then read for up to `listen_s`."""
    session = Session()
    started = time.monotonic()
    async with connect(url, ping_interval=None) as socket:
        for request in requests:
            await socket.send(request)
        try:
            while True:
                remaining = listen_s - (time.monotonic() - started)
                session.frames.append(str(await asyncio.wait_for(socket.recv(), max(remaining, 0.001))))
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            if closed.rcvd is not None:
                session.close_code, session.close_reason = closed.rcvd.code, closed.rcvd.reason
    session.lasted_s = time.monotonic() - started
    return session


def _start(kafka: str, simulator: Callable[..., Simulator], worker: Callable[..., WorkerProcess], tmp_path: Path,
           runtime: dict[str, Any] | None = None) -> tuple[Simulator, WorkerProcess, dict[str, str]]:
    sim = simulator("okx", rate=40, markets=5)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], runtime)
    return sim, worker("okx", config), yaml.safe_load(config.read_text())["topics"]


def _ws_after(after_ns: float) -> Callable[[list[tuple[str, dict[str, Any]]]], bool]:
    return lambda got: any(v["source"] == "ws" and v["received_ns"] > after_ns for _, v in got)


def _counter(process: WorkerProcess, name: str) -> int:
    return int(re.findall(rf" {name}=(\d+)", process.log())[-1])


def _subscribe(*market_ids: str, request_id: str | None = None) -> str:
    request: dict[str, Any] = {"op": "subscribe",
                               "args": [{"channel": "tickers", "instId": market_id} for market_id in market_ids]}
    return json.dumps(request if request_id is None else {"id": request_id, **request})


def test_text_pings_keep_the_socket_and_sockets_silent_both_ways_get_4004(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, runtime={"ping_interval_s": 1})
    sim.control("okx", "idle", seconds=3)
    consume(kafka, topics["ticker"], _ws_after(0))
    watched_from = time.time_ns()
    time.sleep(6)
    assert sim.control("okx", "stats")["connections_total"] == 1
    consume(kafka, topics["ticker"], _ws_after(watched_from + 5e9))
    # Every `pong` was understood as keepalive: nothing dead-lettered.
    assert topic_size(kafka, topics["dead_letter"]) == 0

    # A client that never pings keeps its socket while data is pushed to it, and loses
    # one that nothing is pushed to, as OKX's rule says ("no data pushed for 30 s").
    url = sim.config["exchanges"]["okx"]["ws_url"]

    async def both() -> list[Session]:
        return list(await asyncio.gather(_talk(url, [_subscribe("BTC-USDT")], listen_s=7), _talk(url, [], 7)))

    fed, silent = asyncio.run(both())
    assert sum(1 for frame in fed.frames if json.loads(frame).get("data")) > 20
    assert fed.close_code is None and fed.lasted_s >= 7
    assert (silent.close_code, silent.close_reason) == (4004, "No data received in 30s")
    assert 3 <= silent.lasted_s < 6
    assert process.stop() == 0
    assert _counter(process, "exchange_errors") == 0


def test_one_request_per_connection_and_one_ack_per_instrument(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path)
    symbols = set(sim.config["exchanges"]["okx"]["symbols"])
    messages = consume(kafka, topics["ticker"], lambda got: {v["symbol"] for _, v in got if v["source"] == "ws"}
                       == symbols)
    # Two REST calls, the market list (the symbols checked at startup) and the whole
    # snapshot; the socket got one subscribe request for 5 markets.
    stats = sim.control("okx", "stats")
    assert (stats["rest_calls"], stats["subscribe_requests"]) == (2, 1)
    assert all(value["bid"] is not None and value["ask_size"] is not None for _, value in messages)

    # A raw client sees what the worker parsed: an ack per arg (with the request's id)
    # and a 60018 error for an instrument that does not exist.
    url = sim.config["exchanges"]["okx"]["ws_url"]
    session = asyncio.run(_talk(url, [_subscribe("BTC-USDT", "LTC-USD", "ETH-USDT", request_id="7")], listen_s=1))
    conn_id = session.replies()[0]["connId"]
    assert session.replies() == [
        {"id": "7", "event": "subscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"}, "connId": conn_id},
        {"id": "7", "event": "error", "code": "60018", "msg": "channel:tickers,instId:LTC-USD doesn't exist",
         "connId": conn_id},
        {"id": "7", "event": "subscribe", "arg": {"channel": "tickers", "instId": "ETH-USDT"}, "connId": conn_id},
    ]
    assert process.stop() == 0
    # Five acks were understood, none taken for an error or a bad frame.
    assert _counter(process, "exchange_errors") == 0
    assert topic_size(kafka, topics["dead_letter"]) == 0


def test_the_481st_request_within_an_hour_is_refused(simulator: Any) -> None:
    sim = simulator("okx", rate=0, markets=2)
    url = sim.config["exchanges"]["okx"]["ws_url"]
    session = asyncio.run(_talk(url, [_subscribe("BTC-USDT")] * 481, listen_s=2))
    replies = session.replies()
    assert len(replies) == 481
    assert all(reply["event"] == "subscribe" for reply in replies[:480])
    assert (replies[480]["event"], replies[480]["code"]) == ("error", "60014")


def test_service_upgrade_notice_reconnects_at_once(kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path)
    consume(kafka, topics["ticker"], _ws_after(0))
    assert sim.control("okx", "notice") == {"ok": "notice", "sockets": 1}
    noticed = time.time_ns()
    wait_until(lambda: sim.control("okx", "stats")["connections_total"] == 2, 10, "a new connection")
    consume(kafka, topics["ticker"], _ws_after(noticed))
    assert "restart announced: notice 64008" in process.log()
    assert process.stop() == 0
    assert topic_size(kafka, topics["dead_letter"]) == 0
