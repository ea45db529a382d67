"""librdkafka's messages in a worker's log: a connection failure once, not twice (its
own log line at ERROR, then the same error through error_cb at WARNING)."""

import logging
import time
from pathlib import Path

import pytest

from shared.config import Spool
from shared.sink import KafkaSink
from shared.stats import Stats
from tests.harness import free_port


def test_a_kafka_connection_failure_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: every connect is refused
    sink = KafkaSink({"bootstrap.servers": f"127.0.0.1:{port}"}, "t", "d", Spool(dir=str(tmp_path)), "upbit",
                     Stats(), logging.getLogger("coinstream.test.kafka"))
    with caplog.at_level(logging.INFO):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # librdkafka suppresses an identical error for 30 s
            sink.serve_deliveries()
            time.sleep(0.1)
    sink.close(timeout_s=1)
    refusals = [f"{record.levelname} {record.getMessage()}" for record in caplog.records
                if f"127.0.0.1:{port}" in record.getMessage() and "Connection refused" in record.getMessage()]
    # librdkafka retries (and reports) a refused connect again and again; each one is one line.
    assert refusals, caplog.text
    for refusal in refusals:
        assert refusal.startswith(f"WARNING kafka: 127.0.0.1:{port}/bootstrap: Connect to ipv4#127.0.0.1:{port} "
                                  "failed: Connection refused"), refusals
