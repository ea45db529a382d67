"""Alternate hosts (alternate_ws_url, alternate_rest_url): a worker whose configured
hosts refuse connections moves to the alternates, delivers from both the socket and
REST there, and moves between them again when the host in use goes away."""

import re
import time
from typing import Any

import pytest
import yaml

from tests.harness import consume, free_port, override_file

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("exchange", ["korbit", "okx"])
def test_refused_hosts_give_way_to_the_alternates(exchange: str, kafka: str, simulator: Any, worker: Any,
                                                  tmp_path: Any) -> None:
    sim = simulator(exchange, rate=20, markets=3)
    served = sim.config["exchanges"][exchange]
    dead = free_port()  # nothing listens there: every connect is refused
    ws_path = served["ws_url"].split(str(sim.ports[exchange]), 1)[1]
    section = {**served, "ws_url": f"ws://127.0.0.1:{dead}{ws_path}", "rest_url": f"http://127.0.0.1:{dead}",
               "alternate_ws_url": served["ws_url"], "alternate_rest_url": served["rest_url"]}
    config = override_file(tmp_path, kafka, {exchange: section})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker(exchange, config)
    symbols = set(served["symbols"])

    def from_both(got: list[tuple[str, dict[str, Any]]]) -> bool:
        ws = [value for _, value in got if value["source"] == "ws"]
        rest = {value["symbol"] for _, value in got if value["source"] == "rest"}
        return len(ws) >= 20 and rest == symbols
    # The snapshot's call is made again on the alternate host as soon as REST moves there.
    consume(kafka, topic, from_both, timeout_s=60)
    log = process.log()
    assert f"REST: 1 failure(s) in a row on http://127.0.0.1:{dead}; switching to {served['rest_url']}" in log
    assert (f"WebSocket: 3 failure(s) in a row on ws://127.0.0.1:{dead}{ws_path}; "
            f"switching to {served['ws_url']}") in log

    # The alternate goes away: the socket moves back to the (still dead) primary, and
    # returns to the alternate once that listens again.
    listening_again_ns = time.time_ns() + 6_000_000_000
    sim.fault(exchange, "refuse", seconds=6)
    consume(kafka, topic, lambda got: any(value["source"] == "ws" and value["received_ns"] > listening_again_ns
                                          for _, value in got), timeout_s=60)
    assert process.stop() == 0
    switches = int(re.findall(r" host_switches=(\d+) ", process.log())[-1])
    assert switches >= 4, process.log()  # REST once; the socket there, back, and there again
