"""runtime.read_pause_s: frames that arrive during the pause are read together, none lost.

Two workers run side by side, under the same load, each on its own simulator sending
one Binance frame every 2 ms: one without a pause, one with pauses of up to 20 ms (ten
frames at 500 a second). Without a pause the records' receipt times are spread out, one
read per write of the sender; with it they come in bursts, one burst a read. The
unpaused worker is the measure of the sender: on a loaded machine its 2 ms sleeps
overshoot and it writes several due frames at once, which are rightly read together.
"""

import re
import signal
import time
from typing import Any

import pytest
import yaml

from tests.harness import consume, override_file, wait_until

pytestmark = pytest.mark.integration

RATE = 500  # frames a second, one frame at a time
PAUSE_S = 0.02
FRAMES = 1000


def _bursts(received_ns: list[int]) -> int:
    """Groups of receipt times less than 1 ms apart: one group per socket read."""
    ordered = sorted(received_ns)
    return 1 + sum(1 for earlier, later in zip(ordered, ordered[1:]) if later - earlier > 1_000_000)


def test_read_pause_coalesces_reads_and_loses_nothing(kafka: str, simulator: Any, worker: Any,
                                                       tmp_path: Any) -> None:
    runs = {}
    for pause_s in (0.0, PAUSE_S):
        sim = simulator("binance", rate=RATE, markets=5)
        config = override_file(tmp_path, kafka, sim.config["exchanges"], {"read_pause_s": pause_s})
        runs[pause_s] = (sim, yaml.safe_load(config.read_text())["topics"]["ticker"], worker("binance", config))
    for sim, _, _ in runs.values():
        wait_until(lambda: sim.control("binance", "stats")["frames"] >= FRAMES, 60, f"{FRAMES} frames sent")

    reads_per_frame = {}
    for pause_s, (sim, topic, process) in runs.items():
        # Nothing stays behind the pause: every frame sent has been read a moment later.
        sent = sim.control("binance", "stats")["frames"]
        time.sleep(0.5)
        assert process.stop(signal.SIGTERM) == 0
        counters = re.findall(r"counters frames=(\d+) records=(\d+) ", process.log())[-1]
        read, records = int(counters[0]), int(counters[1])
        assert read >= sent, f"read_pause_s {pause_s}: read {read} of the {sent} frames sent"
        # The whole topic, every partition to its end: a prefix of it would mix partitions'
        # different stretches of time.
        messages = consume(kafka, topic, lambda got: len(got) >= records, timeout_s=60)
        received = [value["received_ns"] for _, value in messages if value["source"] == "ws"]
        reads_per_frame[pause_s] = _bursts(received) / len(received)

    unpaused, paused = reads_per_frame[0.0], reads_per_frame[PAUSE_S]
    # ~10 frames a read at 500 frames/s and 20 ms: at most a quarter as many reads as
    # frames, and at most half as many as the unpaused worker made of the same traffic.
    assert paused <= 1 / 4, f"{paused:.2f} reads a frame with the pause"
    assert paused <= unpaused / 2, f"{paused:.2f} reads a frame with the pause, {unpaused:.2f} without"
