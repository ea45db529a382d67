"""A worker's Prometheus /metrics, scraped over HTTP while it collects from the simulator
into Kafka: counters move with traffic, the connection gauge follows a WebSocket outage,
reconnects are counted by reason, the delivery histogram fills, and the server listens
on 127.0.0.1 only. Also: a port already in use is one line and a non-zero exit, and a
replay serves no /metrics at all."""

import math
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared import config as configuration
from tests.harness import ROOT, WorkerProcess, override_file, wait_until

pytestmark = pytest.mark.integration

EXCHANGE = "binance"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    response = requests.get(f"http://{host}:{port}/metrics", timeout=5)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    [found] = [number for sample_labels, number in samples.get(name, []) if labels.items() <= sample_labels.items()]
    return found


def scrape_until(process: WorkerProcess, port: int, holds: Callable[[Samples], bool], timeout_s: float,
                 what: str) -> Samples:
    """The first scrape for which `holds` is true."""
    def attempt() -> Samples | None:
        assert process.process.poll() is None, process.log()
        try:
            samples = scrape(port)
        except requests.ConnectionError:
            return None  # not listening yet
        return samples if holds(samples) else None
    return wait_until(attempt, timeout_s, what)  # type: ignore[no-any-return]


def test_metrics_follow_traffic_outage_and_deliveries(kafka: str, simulator: Any, worker: Any,
                                                      tmp_path: Path) -> None:
    sim = simulator(EXCHANGE, rate=50, markets=3)
    config_path = override_file(tmp_path, kafka, sim.config["exchanges"])
    port = configuration.load(config_path).metrics.ports[EXCHANGE]
    process = worker(EXCHANGE, config_path)

    def connected(samples: Samples) -> float | None:
        """None until the worker has made its connection."""
        flags = {labels["connection"]: number for labels, number in samples.get("coinstream_ws_connected", [])}
        return flags.get("0")

    def moved(before: Samples, after: Samples) -> bool:
        return all(value(after, name, exchange=EXCHANGE, **labels) > value(before, name, exchange=EXCHANGE, **labels)
                   for name, labels in (("coinstream_frames_total", {}),
                                        ("coinstream_records_total", {"source": "ws"}),
                                        ("coinstream_kafka_delivered_total", {})))

    first = scrape_until(process, port, lambda samples: connected(samples) == 1, 20, "the connection up")
    second = scrape_until(process, port, lambda samples: moved(first, samples), 10, "counters to grow")
    assert 0 <= value(second, "coinstream_seconds_since_last_record", exchange=EXCHANGE, connection="0") < 2
    assert 0 <= value(second, "coinstream_seconds_since_heard", exchange=EXCHANGE, connection="0") < 2

    # Cumulative buckets, +Inf equal to the count, and every delivery counted.
    buckets = [number for labels, number in second["coinstream_kafka_delivery_report_latency_seconds_bucket"]]
    assert buckets == sorted(buckets) and buckets[-1] > 0
    assert second["coinstream_kafka_delivery_report_latency_seconds_bucket"][-1][0]["le"] == "+Inf"
    assert buckets[-1] == value(second, "coinstream_kafka_delivery_report_latency_seconds_count", exchange=EXCHANGE)
    assert value(second, "coinstream_kafka_delivery_report_latency_seconds_sum", exchange=EXCHANGE) > 0
    assert value(second, "process_resident_memory_bytes") > 0

    # The socket goes down (aborted, then upgrades refused): the gauge drops to 0,
    # reconnects are counted by reason, and REST fills in (source="rest").
    rest_before = value(second, "coinstream_records_total", exchange=EXCHANGE, source="rest")
    sim.fault(EXCHANGE, "ws_down", seconds=5)
    down = scrape_until(process, port, lambda samples: connected(samples) == 0, 5, "ws_connected 0")
    during = scrape_until(process, port, lambda samples: "handshake_refused" in _reasons(samples), 10,
                          "a refused reconnect")
    assert connected(during) == 0
    assert {"closed_abnormally", "handshake_refused"} <= _reasons(during).keys()
    scrape_until(process, port, lambda samples: value(
        samples, "coinstream_records_total", exchange=EXCHANGE, source="rest") > rest_before, 10,
        "REST fallback records")
    after = scrape_until(process, port, lambda samples: connected(samples) == 1, 20, "ws_connected 1 again")
    assert sum(_reasons(after).values()) >= sum(_reasons(down).values()) + 1
    assert math.isfinite(value(after, "coinstream_seconds_since_last_record", exchange=EXCHANGE, connection="0"))

    # Bound to 127.0.0.1 alone: another loopback address reaches nothing.
    with pytest.raises(requests.ConnectionError):
        scrape(port, host="127.0.0.2")
    assert process.stop() == 0


def _reasons(samples: Samples) -> dict[str, float]:
    return {labels["reason"]: number for labels, number in samples.get("coinstream_reconnects_total", [])}


def test_port_in_use_is_one_line_and_replay_serves_none(kafka: str, simulator: Any, tmp_path: Path) -> None:
    sim = simulator(EXCHANGE, rate=50, markets=3)
    config_path = override_file(tmp_path, kafka, sim.config["exchanges"])
    loaded = configuration.load(config_path)
    port = loaded.metrics.ports[EXCHANGE]
    capture = tmp_path / "capture.jsonl"
    capture.write_text("")
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", port))
        occupant.listen()
        live = subprocess.run([sys.executable, "-m", f"workers.{EXCHANGE}", "--config", str(config_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        replay = subprocess.run([sys.executable, "-m", f"workers.{EXCHANGE}", "--config", str(config_path),
                                 "--sink", "stdout", "--replay", str(capture)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert live.returncode == 78
    [line] = live.stderr.strip().splitlines()
    assert line == (f"coinstream {EXCHANGE}: error: {loaded.origin('metrics', 'ports', EXCHANGE)}: "
                    f"metrics.ports.{EXCHANGE}: cannot serve /metrics on "
                    f"127.0.0.1:{port}: Address already in use (choose a free port, or 0 for no /metrics)")
    assert replay.returncode == 0, replay.stderr
