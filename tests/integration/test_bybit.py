"""Bybit-specific behaviour against the simulator and the real broker: the {"op":"ping"}
keepalive, the 10-args subscribe cap, and null bid/ask on the socket."""

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

from tests.harness import Simulator, WorkerProcess, audited, consume, override_file, topic_size, wait_until
from tests.integration.test_books import resyncs, settle_and_compare, start_books

pytestmark = pytest.mark.integration

Messages = list[tuple[str, dict[str, Any]]]


def _start(kafka: str, simulator: Callable[..., Simulator], worker: Callable[..., WorkerProcess], tmp_path: Path,
           markets: int, runtime: dict[str, Any] | None = None) -> tuple[Simulator, WorkerProcess, dict[str, str]]:
    sim = simulator("bybit", rate=40, markets=markets)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], runtime)
    topics = yaml.safe_load(config.read_text())["topics"]
    return sim, worker("bybit", config), topics


def _ws(messages: Messages) -> list[dict[str, Any]]:
    return [value for _, value in messages if value["source"] == "ws"]


def _final_counters(process: WorkerProcess) -> dict[str, int]:
    line = process.counters()
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


async def _frames_until_closed(url: str, request: dict[str, Any], limit_s: float) -> tuple[list[str], float]:
    """Send one request, never ping, and read until the server closes (or limit_s passes)."""
    frames: list[str] = []
    started = time.monotonic()
    async with connect(url, ping_interval=None) as socket:
        await socket.send(json.dumps(request))
        try:
            while time.monotonic() - started < limit_s:
                frames.append(str(await asyncio.wait_for(socket.recv(), limit_s)))
        except (ConnectionClosed, TimeoutError):
            pass
    return frames, time.monotonic() - started


def test_app_pings_keep_the_socket_and_silent_clients_are_closed(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, markets=5, runtime={"ping_interval_s": 1})
    sim.control("bybit", "idle", seconds=3)
    consume(kafka, topics["ticker"], lambda got: len(_ws(got)) >= 10)
    watched_from = time.time_ns()
    time.sleep(6)
    assert sim.control("bybit", "stats")["connections_total"] == 1
    consume(kafka, topics["ticker"], lambda got: any(v["received_ns"] > watched_from + 5e9 for v in _ws(got)))
    # Every pong was understood: nothing dead-lettered.
    assert topic_size(kafka, topics["dead_letter"]) == 0

    # A client that subscribes but never pings is cut once no data flows to it either
    # ("without ping-pong and without server data").
    sim.control("bybit", "rate", per_s=0)
    url = sim.config["exchanges"]["bybit"]["ws_url"]
    frames, lasted_s = asyncio.run(_frames_until_closed(url, {"op": "subscribe", "args": ["tickers.BTCUSDT"]}, 10))
    assert [json.loads(frame)["ret_msg"] for frame in frames] == ["subscribe"]
    assert 3 <= lasted_s < 6
    assert process.stop() == 0
    assert _final_counters(process)["exchange_errors"] == 0


def test_many_markets_subscribe_in_chunks_of_ten(kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, markets=25)
    symbols = set(sim.config["exchanges"]["bybit"]["symbols"])
    def rest(got: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [value for _, value in got if value["source"] == "rest"]
    messages = consume(kafka, topics["ticker"],
                       lambda got: {v["symbol"] for v in _ws(got)} == symbols and len(rest(got)) >= len(symbols))
    # After the market list (the symbols checked at startup), one REST call gave the whole
    # snapshot, with bid/ask; the socket's tickers have none.
    assert sim.control("bybit", "stats")["rest_calls"] == 2
    snapshot = rest(messages)
    assert {record["symbol"] for record in snapshot} == symbols
    assert all(record["bid"] is not None and record["ask_size"] is not None for record in snapshot)
    assert all(record[key] is None for record in _ws(messages) for key in ("bid", "ask", "bid_size", "ask_size"))

    # The simulator holds the worker to the cap: eleven args fail, as on Bybit.
    url = sim.config["exchanges"]["bybit"]["ws_url"]
    eleven = {"op": "subscribe", "args": [f"tickers.{symbol.replace('-', '')}" for symbol in sorted(symbols)[:11]]}
    frames, _ = asyncio.run(_frames_until_closed(url, eleven, 1))
    assert [json.loads(frame) | {"conn_id": ""} for frame in frames] == [
        {"success": False, "ret_msg": "args size >10", "conn_id": "", "op": "subscribe"}]
    assert process.stop() == 0
    # Each of the worker's three subscribe requests was acked, none refused.
    assert _final_counters(process)["exchange_errors"] == 0


def test_unknown_symbol_and_wrong_shape_are_dead_lettered(kafka: str, simulator: Any, worker: Any,
                                                          tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, markets=5)
    consume(kafka, topics["ticker"], lambda got: len(_ws(got)) >= 10)
    sim.fault("bybit", "unknown_symbol", count=1)
    sim.fault("bybit", "wrong_shape", count=1)
    letters = [value for _, value in consume(kafka, topics["dead_letter"], lambda got: len(got) >= 2)]
    errors = sorted(letter["error"] for letter in letters)
    assert errors[0].startswith("FrameError: unknown symbol 'NOPEUSDT'")
    assert errors[1].startswith("ValidationError: ")
    after = time.time_ns()
    consume(kafka, topics["ticker"], lambda got: any(v["received_ns"] > after for v in _ws(got)))
    assert process.stop() == 0


def test_book_updates_out_of_order_are_a_gap_and_resynced(kafka: str, simulator: Any, worker: Any,
                                                          tmp_path: Path) -> None:
    """One market, so that the held-back delta is that market's next one (with several,
    the simulator's round robin would reorder across markets, which changes nothing)."""
    sim, process, topic = start_books("bybit", kafka, simulator, worker, tmp_path, markets=1)
    consume(kafka, topic, lambda got: len(got) >= 20, timeout_s=60)
    sim.fault("bybit", "book_reorder", count=2)
    wait_until(lambda: "book lost (gap)" in process.log(), 30, "the worker to find the reorder")
    frames = sim.control("bybit", "stats")["book_frames"]
    wait_until(lambda: sim.control("bybit", "stats")["book_frames"] >= frames + 5, 10, "book frames")
    settle_and_compare(sim, "bybit", kafka, topic, 10, markets=1)
    assert process.stop() == 0
    assert set(resyncs(process)) == {"gap"}
    audited(kafka, topic)
