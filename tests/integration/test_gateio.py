"""Gate-specific behaviour against the simulator and the real broker: the spot.ping
keepalive, the `upgrade` notice (and dead letters on the socket that replaces it), one
ack per subscribe request (a request with an unknown pair refused whole), and the
/ws/v4/ path with its trailing slash."""

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.harness import Simulator, WorkerProcess, audited, consume, override_file, topic_size
from workers.gateio import PAIRS_PER_SUBSCRIBE

pytestmark = pytest.mark.integration

Messages = list[tuple[str, dict[str, Any]]]


def _start(kafka: str, simulator: Callable[..., Simulator], worker: Callable[..., WorkerProcess], tmp_path: Path,
           markets: int = 5, runtime: dict[str, Any] | None = None,
           ) -> tuple[Simulator, WorkerProcess, dict[str, str]]:
    sim = simulator("gateio", rate=40, markets=markets)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], runtime)
    return sim, worker("gateio", config), yaml.safe_load(config.read_text())["topics"]


def _socket_records(messages: Messages) -> list[dict[str, Any]]:
    return [value for _, value in messages if value["source"] == "ws"]


def _counters(process: WorkerProcess) -> dict[str, int]:
    line = process.counters()
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def _silent_client(url: str, requests: list[dict[str, Any]], limit_s: float) -> tuple[list[dict[str, Any]], float]:
    """Send `requests`, then only read (no pings of either kind) until the server closes
    the socket or limit_s passes; the frames read and the seconds the socket lasted."""
    frames: list[dict[str, Any]] = []
    opened = time.monotonic()
    with connect(url, compression=None, ping_interval=None, proxy=None) as socket:
        for request in requests:
            socket.send(json.dumps(request))
        try:
            while (left_s := limit_s - (time.monotonic() - opened)) > 0:
                frames.append(json.loads(socket.recv(timeout=left_s)))
        except (ConnectionClosed, TimeoutError):
            pass
    return frames, time.monotonic() - opened


def _subscribe(*pairs: str) -> dict[str, Any]:
    return {"time": int(time.time()), "id": 7, "channel": "spot.tickers", "event": "subscribe", "payload": list(pairs)}


def test_spot_ping_keeps_the_socket_and_silent_clients_are_closed(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, runtime={"ping_interval_s": 1})
    sim.control("gateio", "idle", seconds=3)
    consume(kafka, topics["ticker"], lambda got: len(_socket_records(got)) >= 10)
    watched_from = time.time_ns()
    time.sleep(6)
    assert sim.control("gateio", "stats")["connections_total"] == 1
    consume(kafka, topics["ticker"],
            lambda got: any(record["received_ns"] > watched_from + 5e9 for record in _socket_records(got)))
    # Every pong was understood: nothing dead-lettered, no error counted.
    assert topic_size(kafka, topics["dead_letter"]) == 0

    # A client that subscribes but never pings is cut although tickers flow to it;
    # before that it got its ack, and a spot.ping of its own is answered in Gate's shape.
    url = sim.config["exchanges"]["gateio"]["ws_url"]
    frames, lasted_s = _silent_client(url, [_subscribe("BTC_USDT"), {"time": 1, "channel": "spot.ping"}], 10)
    assert frames[0]["event"] == "subscribe" and frames[0]["result"] == {"status": "success"}
    assert frames[0]["payload"] == ["BTC_USDT"] and frames[0]["id"] == 7
    assert {key: frames[1][key] for key in ("time", "channel", "event", "error", "result")} == {
        "time": 1, "channel": "spot.pong", "event": "", "error": None, "result": None}
    assert any(frame["event"] == "update" and frame["result"]["currency_pair"] == "BTC_USDT" for frame in frames[2:])
    assert 3 <= lasted_s < 6
    assert process.stop() == 0
    assert _counters(process)["exchange_errors"] == 0


def test_upgrade_notice_reconnects_and_bad_frames_are_dead_lettered(kafka: str, simulator: Any, worker: Any,
                                                                    tmp_path: Path) -> None:
    sim, process, topics = _start(kafka, simulator, worker, tmp_path)
    consume(kafka, topics["ticker"], lambda got: len(_socket_records(got)) >= 10)
    announced_at = time.time_ns()
    assert sim.control("gateio", "upgrade")["sockets"] == 1
    consume(kafka, topics["ticker"],
            lambda got: sum(r["received_ns"] > announced_at + 1e9 for r in _socket_records(got)) >= 10)
    assert sim.control("gateio", "stats")["connections_total"] == 2
    assert "restart announced: upgrade event on spot.tickers" in process.log()
    assert topic_size(kafka, topics["dead_letter"]) == 0

    # On the new socket, a ticker for a pair nobody asked for and one whose price is a
    # JSON number are dead-lettered; the stream goes on without a gap in seq.
    sim.fault("gateio", "unknown_symbol", count=1)
    sim.fault("gateio", "wrong_shape", count=1)
    letters = consume(kafka, topics["dead_letter"], lambda got: len(got) >= 2)
    assert sorted(letter["error"].split(" - ")[0] for _, letter in letters) == [
        "FrameError: unknown symbol 'NOPE_USDT'", "ValidationError: Expected `str`, got `float`"]
    after = time.time_ns()
    consume(kafka, topics["ticker"], lambda got: any(r["received_ns"] > after for r in _socket_records(got)))
    assert process.stop() == 0
    audited(kafka, topics["ticker"])
    assert _counters(process)["exchange_errors"] == 0


def test_subscribe_requests_are_acked_one_by_one_and_bad_ones_refused_whole(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    markets = PAIRS_PER_SUBSCRIBE + 5
    sim, process, topics = _start(kafka, simulator, worker, tmp_path, markets=markets)
    symbols = set(sim.config["exchanges"]["gateio"]["symbols"])
    assert len(symbols) == markets
    # Both of the worker's requests took: every market streams on the one socket.
    consume(kafka, topics["ticker"], lambda got: {r["symbol"] for r in _socket_records(got)} == symbols)
    assert sim.control("gateio", "stats")["connections_total"] == 1

    url = sim.config["exchanges"]["gateio"]["ws_url"]
    frames, _ = _silent_client(url, [_subscribe("BTC_USDT", "NOPE_USDT"), _subscribe("ETH_USDT")], 1.5)
    refused, accepted = frames[0], frames[1]
    assert refused["error"] == {"code": 2, "message": "unknown currency pair NOPE_USDT"}
    assert refused["result"] == {"status": "fail"}
    assert accepted["result"] == {"status": "success"} and "error" not in accepted
    # Nothing from the refused request was subscribed, not even its valid pair.
    assert {frame["result"]["currency_pair"] for frame in frames[2:]} == {"ETH_USDT"}

    # The path is /ws/v4/; without the trailing slash there is no socket.
    with pytest.raises(InvalidStatus, match="404"):
        _silent_client(url.rstrip("/"), [], 1)
    assert process.stop() == 0
    assert _counters(process)["exchange_errors"] == 0
