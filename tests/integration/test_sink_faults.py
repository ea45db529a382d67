"""Faults of Kafka and of the spool's disk that no earlier test scripted (issue 17): a
stop while the broker is frozen, a full disk, a read-only spool directory, a record
larger than the broker takes, a topic deleted under the worker. Each test has a broker
of its own, and ends with the counters' identity and `coinstream verify`'s audit: every
record the worker counted is in Kafka, in the spool, in undelivered.jsonl or in a
counted drop, and Kafka holds each of its runs' records once."""

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import Broker, WorkerProcess, audited, consume, override_file, run_sizes, wait_until
from tests.integration.test_supervisord import Supervisor, enabled_workers

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, thawed and stopped whatever happens."""
    own = Broker(tmp_path / "kafka")
    own.start()
    yield own
    thaw(own)
    own.stop()


def broker_pid(broker: Broker) -> int:
    return int((Path(broker.env["KAFKA_RUN_DIR"]) / "broker.pid").read_text())


def freeze(broker: Broker) -> None:
    os.kill(broker_pid(broker), signal.SIGSTOP)


def thaw(broker: Broker) -> None:
    try:
        os.kill(broker_pid(broker), signal.SIGCONT)
    except (OSError, ValueError):
        pass  # stopped already


def counters(log: str) -> dict[str, int]:
    """The last counters line's plain numbers, by name."""
    line = [line for line in log.splitlines() if " counters frames=" in line][-1]
    return {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)(?=\s|$)", line)}


def assert_accounted(found: dict[str, int]) -> None:
    """Every record and dead letter the run counted (and every record an earlier run left
    in the spool) is delivered, queued, in the spool, in undelivered.jsonl or dropped."""
    counted = found["records"] + found["dead_letters"] + found["spool_inherited"]
    placed = (found["delivered"] + found["kafka_queue"] + found["spool_records"] + found["delivery_failures"]
              + found["spool_dropped"])
    assert counted == placed, f"{counted} counted, {placed} placed: {found}"


def config_for(tmp_path: Path, broker: Broker, sim: Any, spool: dict[str, Any] | None = None,
               producer: dict[str, Any] | None = None) -> tuple[Path, str]:
    # No REST fallback: once the simulator stops sending, the record count stands still.
    path = override_file(tmp_path, broker.bootstrap, sim.config["exchanges"],
                         {"stats_interval_s": 1, "rest_fallback_after_s": 3600, "watchdog_s": 3600})
    settings = yaml.safe_load(path.read_text())
    settings["kafka"]["spool"].update(spool or {})
    settings["kafka"]["producer"].update(producer or {})
    path.write_text(yaml.safe_dump(settings))
    return path, settings["topics"]["ticker"]


def drain_spool_in_a_new_run(worker: Any, config: Path) -> tuple[dict[str, int], str]:
    """Start a worker on the same spool (the simulator sends nothing), wait until the spool
    is in Kafka, stop it; its counters."""
    second: WorkerProcess = worker("binance", config)
    wait_until(lambda: " counters " in second.log() and counters(second.log())["spool_records"] == 0
               and counters(second.log())["delivered"] >= counters(second.log())["spool_inherited"] > 0,
               90, "the next run to send the spool")
    assert second.stop() == 0
    return counters(second.log()), second.log()


def test_a_stop_while_kafka_is_frozen_spools_every_unacknowledged_record(
        broker: Broker, tmp_path: Path, simulator: Any, worker: Any) -> None:
    """Issue 17, item 1. SIGTERM while the broker is stopped with SIGSTOP: the records in
    librdkafka's queue and in flight go to the spool (those in flight marked unsure), the
    worker exits within seconds, and the next run sends each of them once, after checking
    Kafka for those the frozen broker wrote once it resumed."""
    sim = simulator("binance", rate=2000, markets=20)
    config, topic = config_for(tmp_path, broker, sim)
    first = worker("binance", config)
    consume(broker.bootstrap, topic, lambda got: len(got) >= 2000, timeout_s=60)
    freeze(broker)
    time.sleep(4)  # records pile up in librdkafka's queue and in flight
    stopping_at = time.monotonic()
    assert first.stop() == 0
    stop_s = time.monotonic() - stopping_at
    sim.control("binance", "rate", per_s=0)
    thaw(broker)
    stopped = counters(first.log())
    assert_accounted(stopped)
    assert stopped["spool_records"] > 2000, stopped
    assert stop_s < 5, f"the stop took {stop_s:.1f} s with the broker frozen"
    assert "they stay in the spool" in first.log()
    following, following_log = drain_spool_in_a_new_run(worker, config)
    assert_accounted(following)
    assert following["spool_inherited"] == stopped["spool_records"]
    # Each run whole from seq 1, nothing repeated (audited), and as long as it counted.
    sizes = run_sizes(audited(broker.bootstrap, topic))
    assert sorted(sizes.values()) == sorted([stopped["records"], following["records"]]), sizes
    print(f"frozen stop: stop {stop_s:.1f} s; first run {stopped}; next run {following}; "
          f"{re.findall(r'spool: .*', following_log)}")


def test_supervisord_stops_ten_workers_with_kafka_down_as_fast_as_one(
        broker: Broker, tmp_path: Path, simulator: Any) -> None:
    """Issue 17, item 1: with Kafka down, a worker spools its queue and exits at once, and
    supervisord stops all of them together (stop_together): before, it stopped them one
    after another, each waiting out stop_timeout_s (209 s for ten)."""
    exchanges = enabled_workers()
    sim = simulator(*exchanges, rate=20, markets=3)
    override = override_file(tmp_path, broker.bootstrap, sim.config["exchanges"], {"stop_timeout_s": 10})
    topic = yaml.safe_load(override.read_text())["topics"]["ticker"]
    supervisor = Supervisor(tmp_path, override)
    try:
        wait_until(lambda: all(supervisor.states().get(name, ("",))[0] == "RUNNING" for name in exchanges),
                   60, "every enabled worker RUNNING")
        consume(broker.bootstrap, topic, lambda got: {value["exchange"] for _, value in got} >= set(exchanges),
                timeout_s=90)
        broker.stop()
        time.sleep(2)  # records queue up
        stopping_at = time.monotonic()
        supervisor.ctl("shutdown")
        supervisor.process.wait(timeout=300)
        took_s = time.monotonic() - stopping_at
    finally:
        supervisor.stop()
    logs = {name: (supervisor.logs / f"{name}.log").read_text() for name in exchanges}
    for name, log in logs.items():
        assert log.rstrip().endswith("stopped"), f"{name}: {log[-2000:]}"
        assert_accounted(counters(log))
    assert took_s < 10, f"supervisord took {took_s:.1f} s to stop {len(exchanges)} workers with Kafka down"
    print(f"supervisord stop with Kafka down: {took_s:.1f} s for {len(exchanges)} workers; spooled "
          f"{sum(counters(log)['spool_records'] for log in logs.values())} records")
