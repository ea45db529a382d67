"""Kafka's health as an operator meets it, each test with a broker of its own.

coinstream status's Kafka verdict on a real worker during a real outage: the broker
stops, the worker keeps reading its exchange, records pile up with no delivery, and
status calls the worker unhealthy ("kafka: no delivery for N s") until the broker is
back. The verdict is status's own code on the worker's /metrics; supervisord's half of
status is covered by test_status.py.

And the start: the first idempotent producer after a broker starts met "Coordinator
load in progress" (a librdkafka warning in a worker's log at every `coinstream run`);
coinstream run now asks for a producer id before the workers start.
"""

from pathlib import Path
from typing import Any

import json
import logging
import time

import pytest
from confluent_kafka import Producer

from coinstream.run import await_producer_ids
from coinstream.status import Scrape, WorkerStatus, metrics_url, scrape
from shared import config as configuration
from tests.harness import Broker, override_file, wait_until
from tests.integration.test_kafka_outage import broker  # noqa: F401 - the fixture: a broker of the test's own

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

EXCHANGE = "upbit"
MAX_DELIVERY_WAIT_S = 3.0


def verdict(url: str) -> WorkerStatus | None:
    """status's assessment from two scrapes of the worker; None while /metrics is not up."""
    first = scrape(url)
    second = scrape(url)
    if not isinstance(second, Scrape):
        return None
    status = WorkerStatus(EXCHANGE, True, "RUNNING", first, second)
    status.assess(max_age_s=60, max_delivery_wait_s=MAX_DELIVERY_WAIT_S)
    return status


def test_status_calls_a_worker_whose_records_pile_up_undelivered_unhealthy(
        broker: Broker, tmp_path: Path, simulator: Any, worker: Any) -> None:  # noqa: F811
    sim = simulator(EXCHANGE, rate=20, markets=3)
    config_path = override_file(tmp_path, broker.bootstrap, sim.config["exchanges"], {"stats_interval_s": 1})
    url = metrics_url(configuration.load(config_path), EXCHANGE)
    assert url is not None
    process = worker(EXCHANGE, config_path)
    healthy = wait_until(lambda: (status := verdict(url)) is not None and status.second is not None
                         and (status.second.total("coinstream_kafka_delivered_total") or 0) > 0
                         and not status.problems and status, 60, "the worker to deliver")
    assert healthy.row()[-1] == "ok"

    broker.stop()
    down = wait_until(lambda: (status := verdict(url)) is not None and status.problems and status, 60,
                      "status to see Kafka down")
    [problem] = down.problems
    assert problem.startswith("kafka: no delivery for "), down.problems
    assert MAX_DELIVERY_WAIT_S <= float(problem.split()[-2]) < 60
    assert down.row()[-1] == problem
    assert process.process.poll() is None, process.log()

    broker.start(fresh=False)
    wait_until(lambda: (status := verdict(url)) is not None and not status.problems, 90, "status to see Kafka back")
    assert process.stop() == 0


def producer_warnings(bootstrap: str) -> list[str]:
    """What librdkafka warns about while an idempotent producer gets its id."""
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.Logger("test.producer")
    log.addHandler(handler)
    states: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "logger": log,
                         "statistics.interval.ms": 100,
                         "stats_cb": lambda text: states.append(json.loads(text).get("eos", {}).get("idemp_state"))})
    deadline = time.monotonic() + 60  # a second here, far more on a loaded machine
    while "Assigned" not in states and time.monotonic() < deadline:
        producer.poll(0.1)
    assert "Assigned" in states, f"no producer id within 60 s; librdkafka said {warnings}"
    return warnings


def test_producer_ids_are_ready_before_the_workers_start(broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    # The cause: right after the broker starts, the first producer is told to come back.
    first = producer_warnings(broker.bootstrap)
    assert any("Coordinator load in progress" in line for line in first), first
    broker.stop()
    broker.start(fresh=False)
    config = configuration.load(override_file(tmp_path, broker.bootstrap, {}))
    assert await_producer_ids(config, timeout_s=60)
    assert producer_warnings(broker.bootstrap) == []
