"""Kafka refusing the worker's credentials is a configuration error, not an outage: one
line that says so, exit 78 (supervisord does not restart it), no password in the log."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT, Broker, override_file

# Its own broker, with a SASL listener.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

PASSWORD = "the-right-pa55word"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("kafka-sasl"), sasl_password=PASSWORD)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_an_authentication_failure_is_a_config_error(sasl_broker: Broker, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sections = {"binance": {"ws_url": "ws://127.0.0.1:1/stream", "rest_url": "http://127.0.0.1:1",
                            "symbols": ["BTC-USDT"]}}
    config = override_file(tmp_path, sasl_broker.bootstrap, sections)
    settings = yaml.safe_load(config.read_text())
    settings["kafka"]["producer"].update({
        "bootstrap.servers": sasl_broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN", "sasl.username": "coinstream", "sasl.password": "${COINSTREAM_TEST_KAFKA_PASSWORD}"})
    settings["runtime"]["rest_timeout_s"] = 2
    config.write_text(yaml.safe_dump(settings))
    wrong = "a-wrong-pa55word"
    monkeypatch.setenv("COINSTREAM_TEST_KAFKA_PASSWORD", wrong)
    done = subprocess.run([sys.executable, "-m", "workers.binance", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1].startswith(f"coinstream binance: error: {config}: kafka.producer: Kafka authentication failed "
                                f"at {sasl_broker.sasl_bootstrap}: "), lines
    assert "Invalid username or password" in lines[-1]
    assert "unreachable" not in done.stderr and wrong not in done.stderr

    # The same settings with the right password reach Kafka: the listener works.
    monkeypatch.setenv("COINSTREAM_TEST_KAFKA_PASSWORD", PASSWORD)
    capture = tmp_path / "capture.jsonl"
    frame = (ROOT / "tests" / "fixtures" / "binance" / "ws_ticker_combined_1.json").read_text().strip()
    capture.write_text(json.dumps({"ts": 1_653_812_650_400_000_000, "kind": "ws",
                                   "url": "ws://127.0.0.1:1/stream", "data": frame}) + "\n")
    replayed = subprocess.run([sys.executable, "-m", "workers.binance", "--config", str(config), "--replay",
                               str(capture)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
