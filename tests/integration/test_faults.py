"""Exchange faults, injected through the simulator: the worker never dies, never goes
silently dead, and publishes again within the configured bound once data flows.

Every test runs for every exchange with a simulator mode and a reference parser.
"""

import time
from typing import Any, Callable

import pytest
import yaml

from tests import reference
from tests.harness import Simulator, WorkerProcess, audited, consume, override_file, wait_until

pytestmark = pytest.mark.integration

EXCHANGES = sorted(reference.PARSERS)
WATCHDOG_S = 3
BACKOFF_MAX_S = 1
# Fault to first record again: watchdog or close detection, plus the largest backoff
# (with jitter), plus the handshake and subscribe; generous for a loaded CI machine.
RECOVERY_BOUND_S = WATCHDOG_S + 1.5 * BACKOFF_MAX_S + 5


class Running:
    def __init__(self, exchange: str, kafka: str, simulator: Callable[..., Simulator],
                 worker: Callable[..., WorkerProcess], tmp_path: Any, **runtime: Any) -> None:
        self.exchange = exchange
        self.kafka = kafka
        self.sim = simulator(exchange, rate=40, markets=4)
        config = override_file(tmp_path, kafka, self.sim.config["exchanges"],
                               {"watchdog_s": WATCHDOG_S, "backoff_max_s": BACKOFF_MAX_S,
                                "rest_fallback_after_s": 30, **runtime})
        topics = yaml.safe_load(config.read_text())["topics"]
        self.ticker, self.dead_letter = topics["ticker"], topics["dead_letter"]
        self.worker = worker(exchange, config)

    def ws_records_after(self, after_ns: int, count: int = 1, timeout_s: float = 60) -> list[dict[str, Any]]:
        messages = consume(self.kafka, self.ticker, lambda got: sum(
            1 for _, v in got if v["source"] == "ws" and v["received_ns"] > after_ns) >= count, timeout_s)
        return [value for _, value in messages]

    def recovery_s(self, fault_ns: int) -> float:
        records = self.ws_records_after(fault_ns)
        first = min(r["received_ns"] for r in records if r["source"] == "ws" and r["received_ns"] > fault_ns)
        audited(self.kafka, self.ticker, ended=False)
        return (first - fault_ns) / 1e9


@pytest.fixture
def running(exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> Running:
    setup = Running(exchange, kafka, simulator, worker, tmp_path)
    setup.ws_records_after(0, count=10)
    return setup


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_abrupt_close_reconnects_within_bound(running: Running) -> None:
    fault = time.time_ns()
    running.sim.fault(running.exchange, "close")
    assert running.recovery_s(fault) < RECOVERY_BOUND_S
    assert "closed abnormally" in running.worker.log() or "closed 1006" in running.worker.log()
    assert running.worker.stop() == 0


# Each exchange gets one of the close codes (and below, one of the bad-frame kinds and
# one of the REST faults), so every variant is exercised on several exchanges within
# CI's budget.
CLOSE_CODES = (1001, 1011, 4000)
REST_FAULTS = (("http_429", {"seconds": 2}), ("http_500", {}), ("slow_rest", {"seconds": 5}))


@pytest.mark.parametrize("exchange, code", [(name, CLOSE_CODES[i % 3]) for i, name in enumerate(EXCHANGES)])
def test_close_frame_with_code_is_logged_and_survived(running: Running, code: int) -> None:
    fault = time.time_ns()
    running.sim.fault(running.exchange, "close_code", code=code)
    assert running.recovery_s(fault) < RECOVERY_BOUND_S
    assert f"closed {code}" in running.worker.log()
    assert running.worker.stop() == 0


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_stalled_socket_is_caught_by_the_watchdog(running: Running) -> None:
    fault = time.time_ns()
    running.sim.fault(running.exchange, "stall", seconds=30)
    # Frames already on the wire still arrive after the fault: recovery counts from
    # the watchdog's verdict, which must come within watchdog_s (plus a check period).
    wait_until(lambda: f"stalled: nothing heard for {WATCHDOG_S} s" in running.worker.log(), WATCHDOG_S + 3,
               "the watchdog")
    detected = time.time_ns()
    records = running.ws_records_after(detected)
    first = min(r["received_ns"] for r in records if r["source"] == "ws" and r["received_ns"] > detected)
    assert (first - fault) / 1e9 < RECOVERY_BOUND_S
    assert running.worker.stop() == 0
    audited(running.kafka, running.ticker)


@pytest.mark.parametrize("exchange, kind",
                         [(name, ("wrong_shape", "unknown_symbol")[i % 2]) for i, name in enumerate(EXCHANGES)])
def test_bad_frames_are_dead_lettered_and_counted(running: Running, kind: str) -> None:
    running.sim.fault(running.exchange, kind, count=3)
    letters = consume(running.kafka, running.dead_letter, lambda got: len(got) >= 3)
    assert all(value["exchange"] == running.exchange and value["raw"] for _, value in letters)
    if kind == "unknown_symbol":
        assert all("unknown symbol" in value["error"] for _, value in letters)
    after = time.time_ns()
    running.ws_records_after(after)
    assert running.worker.stop() == 0
    assert "dead_letters=3 " in running.worker.log()


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_refused_connections_during_a_reconnect_storm(running: Running) -> None:
    fault = time.time_ns()
    running.sim.fault(running.exchange, "refuse", seconds=4)  # also closes the open sockets (1001)
    assert running.recovery_s(fault) < 4 + RECOVERY_BOUND_S
    log = running.worker.log()
    assert "ConnectionRefusedError" in log
    assert running.worker.stop() == 0


@pytest.mark.parametrize("exchange, kind, extra",
                         [(name, *REST_FAULTS[i % 3]) for i, name in enumerate(EXCHANGES)])
def test_rest_faults_during_the_snapshot_are_retried(exchange: str, kind: str, extra: dict[str, Any],
                                                     kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator(exchange, rate=0, markets=4)  # no socket data: REST is all there is
    sim.fault(exchange, kind, count=2, **extra)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"rest_timeout_s": 2})
    started = time.monotonic()
    process = worker(exchange, config)
    ticker = yaml.safe_load(config.read_text())["topics"]["ticker"]
    markets = len(sim.config["exchanges"][exchange]["symbols"])
    consume(kafka, ticker, lambda got: sum(1 for _, v in got if v["source"] == "rest") >= markets, timeout_s=60)
    elapsed = time.monotonic() - started
    log = process.log()
    if kind == "http_429":
        assert "HTTP 429" in log and elapsed >= 2 * 2  # two Retry-After waits of 2 s each
    elif kind == "http_500":
        assert "HTTP 500" in log
    else:
        assert "no complete answer within 2 s" in log  # the call's deadline, rest_timeout_s
    assert process.stop() == 0
    assert "rest_errors=2 " in process.log()
