"""runtime.read_pause_s: frames that arrive during the pause are read together, none lost.

With no pause every frame of a 2 ms-paced stream is its own read, so the records'
receipt times are spread out; with pauses of up to 20 ms (ten frames at 500 a second)
they come in bursts, one burst a read.
"""

import re
import signal
import time
from typing import Any

import pytest
import yaml

from tests.harness import consume, override_file

pytestmark = pytest.mark.integration

RATE = 500  # frames a second, one frame at a time
PAUSE_S = 0.02


def _bursts(received_ns: list[int]) -> int:
    """Groups of receipt times less than 1 ms apart: one group per socket read."""
    ordered = sorted(received_ns)
    return 1 + sum(1 for earlier, later in zip(ordered, ordered[1:]) if later - earlier > 1_000_000)


@pytest.mark.parametrize("pause_s", [0.0, PAUSE_S])
def test_read_pause_coalesces_reads_and_loses_nothing(pause_s: float, kafka: str, simulator: Any, worker: Any,
                                                       tmp_path: Any) -> None:
    sim = simulator("binance", rate=RATE, markets=5)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"read_pause_s": pause_s})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("binance", config)
    messages = consume(kafka, topic, lambda got: sum(1 for _, v in got if v["source"] == "ws") >= 1000,
                       timeout_s=60)
    received = [value["received_ns"] for _, value in messages if value["source"] == "ws"]
    bursts = _bursts(received)
    if pause_s:
        # ~10 frames a read at 500 frames/s and 20 ms; at most a quarter as many reads as frames.
        assert bursts <= len(received) / 4, f"{bursts} reads for {len(received)} frames"
    else:
        assert bursts >= len(received) / 2, f"{bursts} reads for {len(received)} frames"

    # Nothing stays behind the pause: every frame sent has been read a moment later.
    sent = sim.control("binance", "stats")["frames"]
    time.sleep(0.5)
    assert process.stop(signal.SIGTERM) == 0
    read = int(re.findall(r"counters frames=(\d+) ", process.log())[-1])
    assert read >= sent, f"read {read} of the {sent} frames sent"
