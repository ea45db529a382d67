"""Kafka outages: the broker goes away under load and comes back. Each test has a
broker of its own (stopping the session's broker would disturb the other tests)."""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinstream import verify
from tests.harness import Broker, audited, consume, override_file, run_sizes, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

COUNTERS = re.compile(r"counters frames=\d+ records=(\d+) .* delivered=(\d+) delivery_failures=(\d+) "
                      r"spooled=(\d+) spool_bytes=(\d+) spool_dropped=(\d+)")


def final_counters(log: str) -> dict[str, int]:
    records, delivered, failures, spooled, spool_bytes, dropped = map(int, COUNTERS.findall(log)[-1])
    return {"records": records, "delivered": delivered, "failures": failures, "spooled": spooled,
            "spool_bytes": spool_bytes, "dropped": dropped}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, stopped whatever happens."""
    own = Broker(tmp_path / "kafka")
    own.start()
    yield own
    own.stop()


def outage(broker: Broker, tmp_path: Path, simulator: Any, worker: Any, outage_s: float,
           spool: dict[str, Any], rate: float = 2000) -> tuple[str, Any, dict[str, int]]:
    bootstrap = broker.bootstrap
    sim = simulator("binance", rate=rate, markets=20)
    # No REST fallback: once the simulator stops sending, the record count must stand still.
    config = override_file(tmp_path, bootstrap, sim.config["exchanges"],
                           {"stats_interval_s": 1, "rest_fallback_after_s": 3600, "watchdog_s": 3600})
    settings = yaml.safe_load(config.read_text())
    # A small in-memory queue, so that the outage spills to the disk spool.
    settings["kafka"]["producer"]["queue.buffering.max.messages"] = 20_000
    settings["kafka"]["spool"].update(spool)
    config.write_text(yaml.safe_dump(settings))
    topic = settings["topics"]["ticker"]
    process = worker("binance", config)
    consume(bootstrap, topic, lambda got: len(got) >= 2000, timeout_s=60)
    broker.stop()
    down_at = time.monotonic()
    time.sleep(outage_s)
    assert process.process.poll() is None, "the worker must survive the outage"
    broker.start(fresh=False)
    sim.control("binance", "rate", per_s=0)  # a fixed total, so that "all delivered" has a moment

    def drained() -> bool:
        counters = final_counters(process.log())
        return counters["spool_bytes"] == 0 and counters["records"] == counters["delivered"] + counters["dropped"]

    try:
        wait_until(drained, 120, "the spool to drain")
    except AssertionError:
        events = [line for line in process.log().splitlines() if " counters " not in line]
        raise AssertionError(f"not drained: {final_counters(process.log())}; the worker's last events:\n"
                             + "\n".join(events[-30:])) from None
    assert process.stop() == 0
    counters = final_counters(process.log())
    counters["outage_s"] = int(time.monotonic() - down_at)
    return topic, process, counters


def test_a_60_second_outage_at_2000_per_second_loses_nothing(broker: Broker, tmp_path: Path, simulator: Any,
                                                             worker: Any) -> None:
    topic, process, counters = outage(broker, tmp_path, simulator, worker, 60, {"max_mb": 512})
    assert counters["failures"] == 0 and counters["dropped"] == 0
    assert counters["spooled"] > 50_000, counters  # the outage outgrew the 20,000-record queue
    assert list(run_sizes(audited(broker.bootstrap, topic)).values()) == [counters["records"]]
    print(f"outage: {counters}")


def test_a_full_spool_drops_by_policy_and_counts_it(broker: Broker, tmp_path: Path, simulator: Any,
                                                    worker: Any) -> None:
    topic, process, counters = outage(broker, tmp_path, simulator, worker, 20,
                                      {"max_mb": 1, "when_full": "drop_oldest"})
    assert counters["dropped"] > 0, counters
    assert counters["records"] == counters["delivered"] + counters["dropped"]
    # What the policy dropped is missing from the run, in the middle; all else arrived once.
    [run] = verify.audit({"bootstrap.servers": broker.bootstrap}, [topic], ended=True).runs
    assert (run.records, run.lost, run.repeats, run.out_of_order) == (counters["delivered"], counters["dropped"], 0, 0)
    assert run.missing and not run.tail
    assert "spool full" in process.log() and "policy drop_oldest" in process.log()
    print(f"spool full: {counters}")
