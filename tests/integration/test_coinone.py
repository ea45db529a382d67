"""Coinone's own rules, end to end: the JSON PING keepalive, one ack per pair, the
nameless Invalid Topic error, repeats of the current ticker on every subscribe, and
the 20-connection cap. The generic checks are in test_worker.py."""

import json
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.harness import Simulator, audited, consume, override_file, wait_until
from tests.integration.test_books import BOOKS, resyncs, settle_and_compare, start_books

pytestmark = pytest.mark.integration

EXCHANGE = "coinone"


def _subscribe(base: str) -> str:
    return json.dumps({"request_type": "SUBSCRIBE", "channel": "TICKER",
                       "topic": {"quote_currency": "KRW", "target_currency": base}})


def _ws_url(sim: Simulator) -> str:
    return str(sim.config["exchanges"][EXCHANGE]["ws_url"])


def _next_control_frame(socket: ClientConnection) -> dict[str, Any]:
    """The next frame that is not ticker data."""
    while True:
        frame = json.loads(socket.recv(timeout=5))
        if frame["response_type"] != "DATA":
            return dict(frame)


def _start(sim: Simulator, kafka: str, worker: Any, tmp_path: Any,
           runtime: dict[str, Any] | None = None, symbols: list[str] | None = None) -> tuple[Any, str]:
    sections = sim.config["exchanges"]
    if symbols is not None:
        sections = {EXCHANGE: {**sections[EXCHANGE], "symbols": symbols}}
    config = override_file(tmp_path, kafka, sections, runtime)
    return worker(EXCHANGE, config), yaml.safe_load(config.read_text())["topics"]["ticker"]


def test_json_ping_keeps_the_connection_and_silence_gets_it_closed(kafka: str, simulator: Any, worker: Any,
                                                                   tmp_path: Any) -> None:
    sim = simulator(EXCHANGE, rate=20, markets=3)
    sim.control(EXCHANGE, "idle", seconds=3)
    process, topic = _start(sim, kafka, worker, tmp_path, runtime={"ping_interval_s": 1})
    consume(kafka, topic, lambda got: any(value["source"] == "ws" for _, value in got))
    quiet_from = time.time_ns()
    time.sleep(6)
    assert sim.control(EXCHANGE, "stats")["connections_total"] == 1
    consume(kafka, topic, lambda got: any(value["source"] == "ws" and value["received_ns"] > quiet_from + 5e9
                                          for _, value in got))
    assert sim.control(EXCHANGE, "stats")["connections_total"] == 1

    # A client that subscribes and then never pings is dropped without a close frame.
    with connect(_ws_url(sim)) as socket:
        assert _next_control_frame(socket)["response_type"] == "CONNECTED"
        socket.send(_subscribe("BTC"))
        last_sent = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - last_sent < 10:
                socket.recv(timeout=10)
        assert 3 <= time.monotonic() - last_sent < 5
        assert closed.value.rcvd is None  # 1006: no close frame
    assert process.stop() == 0


def test_one_ack_per_pair_errors_keep_the_socket_open(simulator: Any) -> None:
    sim = simulator(EXCHANGE, rate=5, markets=3)
    with connect(_ws_url(sim)) as socket:
        greeting = _next_control_frame(socket)
        assert greeting["response_type"] == "CONNECTED" and greeting["data"]["session_id"]
        for base in ("BTC", "eth"):
            socket.send(_subscribe(base))
            assert _next_control_frame(socket) == {
                "response_type": "SUBSCRIBED", "channel": "TICKER",
                "data": {"quote_currency": "KRW", "target_currency": base}}  # echoed as sent
        # An unknown pair is acked first; the error that follows does not name it.
        socket.send(_subscribe("NOPE"))
        assert _next_control_frame(socket)["response_type"] == "SUBSCRIBED"
        assert _next_control_frame(socket) == {"response_type": "ERROR", "error_code": 160012,
                                               "message": "Invalid Topic"}
        socket.send(json.dumps({"request_type": "subscribe", "channel": "TICKER"}))
        assert _next_control_frame(socket) == {"response_type": "ERROR", "error_code": 160011,
                                               "message": "Invalid Type", "field": "request_type"}
        socket.send("not json")
        assert _next_control_frame(socket)["error_code"] == 160010
        socket.send('{"request_type":"PING"}')
        assert _next_control_frame(socket) == {"response_type": "PONG"}
        # Data arrives for both pairs, in upper case whatever the subscribe said.
        seen: set[str] = set()
        while seen != {"BTC", "ETH"}:
            frame = json.loads(socket.recv(timeout=5))
            if frame["response_type"] == "DATA":
                seen.add(frame["data"]["target_currency"])


def test_twenty_first_connection_is_refused_with_4290(simulator: Any) -> None:
    sim = simulator(EXCHANGE, rate=1, markets=1)
    with ExitStack() as open_sockets:
        for _ in range(20):
            socket = open_sockets.enter_context(connect(_ws_url(sim)))
            assert _next_control_frame(socket)["response_type"] == "CONNECTED"
        with connect(_ws_url(sim)) as extra, pytest.raises(ConnectionClosed) as closed:
            extra.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4290


def test_invalid_topic_is_counted_and_the_other_pairs_flow(kafka: str, simulator: Any, worker: Any,
                                                           tmp_path: Any) -> None:
    sim = simulator(EXCHANGE, rate=20, markets=3)
    symbols = [*sim.config["exchanges"][EXCHANGE]["symbols"], "NOPE-KRW"]
    # The market list fails at startup, so NOPE-KRW is not caught there and reaches the
    # socket, as a pair delisted after the worker started would.
    sim.fault(EXCHANGE, "http_500", count=1)
    process, topic = _start(sim, kafka, worker, tmp_path, symbols=symbols)
    messages = consume(kafka, topic, lambda got: len({value["symbol"] for _, value in got
                                                       if value["source"] == "ws"}) == 3)
    assert "NOPE-KRW" not in {value["symbol"] for _, value in messages}
    wait_until(lambda: "error 160012: Invalid Topic" in process.log(), 10, "the Invalid Topic warning")
    assert process.stop() == 0
    assert "exchange_errors=1 " in process.log()


def test_repeated_tickers_after_reconnects_are_published_once(kafka: str, simulator: Any, worker: Any,
                                                              tmp_path: Any) -> None:
    sim = simulator(EXCHANGE, rate=20, markets=3)
    process, topic = _start(sim, kafka, worker, tmp_path)
    consume(kafka, topic, lambda got: sum(value["source"] == "ws" for _, value in got) >= 10)
    for connections in (2, 3):
        sim.fault(EXCHANGE, "close")
        wait_until(lambda: sim.control(EXCHANGE, "stats")["connections_total"] == connections, 10, "a reconnect")
        time.sleep(1)
    after = time.time_ns()
    messages = consume(kafka, topic, lambda got: any(value["received_ns"] > after for _, value in got))
    assert process.stop() == 0

    # The simulator repeated each pair's current ticker on every subscribe (same id)...
    ids = Counter(json.loads(line)["data"]["id"] for line in sim.journal(EXCHANGE))
    assert sum(count > 1 for count in ids.values()) >= 3
    # ... and every ticker became exactly one record.
    records = [value for _, value in messages]
    audited(kafka, topic)
    keys = Counter((record["symbol"], record["exchange_ts"], record["last"]) for record in records)
    assert max(keys.values()) == 1


# --- order book (tests/integration/test_books.py has the cases every exchange shares) ---


def _book_ids_grow(records: list[dict[str, Any]]) -> None:
    """Each market's records come in the order of their ids: never an older book after a newer."""
    last: dict[str, int] = {}
    for record in records:
        assert record["update_id"] > last.get(record["raw_symbol"], 0), record
        last[record["raw_symbol"]] = record["update_id"]


def test_book_frames_late_or_again_are_skipped_by_their_id(kafka: str, simulator: Any, worker: Any,
                                                           tmp_path: Any) -> None:
    # A frame held back and sent after the next shows the older book with the older id;
    # a repeated frame has the id of the one before. Both are skipped, never published.
    # One market: the simulator sends the held frame after the next update of any market.
    sim, process, topic = start_books("coinone", kafka, simulator, worker, tmp_path, markets=1)
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault("coinone", "book_reorder", count=5)
    sim.fault("coinone", "book_repeat", count=5)
    wait_until(lambda: not sim.control("coinone", "stats")["book_faults"], 30, "the simulator to make the faults")
    time.sleep(1)  # the last late frame follows the market's next update
    records = settle_and_compare(sim, "coinone", kafka, topic, BOOKS["coinone"].depth, markets=1)
    assert process.stop() == 0
    _book_ids_grow(records)
    counters = process.counters()
    assert resyncs(process) == {}, counters
    # 5 late frames and 5 repeats skipped (subscribing repeats nothing here: one subscribe a pair).
    assert int(counters.rsplit(" book_skipped=", 1)[1].split()[0]) == 10, counters
    audited(kafka, topic)


def test_an_older_rest_book_is_skipped_by_its_id(kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    # While the socket is down, REST books stand in; a REST book older than the book kept
    # (the book_stale fault: 50 updates back) is skipped by its id.
    sim, process, topic = start_books("coinone", kafka, simulator, worker, tmp_path, rate=10,
                                      runtime={"rest_fallback_after_s": 1, "rest_poll_interval_s": 0.5})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault("coinone", "ws_down", seconds=30)
    sim.fault("coinone", "book_stale", count=3)
    sim.fault("coinone", "close")
    consume(kafka, topic, lambda got: sum(1 for _, record in got if record["source"] == "rest") >= 10, timeout_s=60)
    records = settle_and_compare(sim, "coinone", kafka, topic, BOOKS["coinone"].depth, markets=3)
    assert process.stop() == 0
    _book_ids_grow(records)
    counters = process.counters()
    assert resyncs(process) == {} and " dead_letters=0 " in counters, counters
    assert int(counters.rsplit(" book_skipped=", 1)[1].split()[0]) >= 3, counters
    audited(kafka, topic)
