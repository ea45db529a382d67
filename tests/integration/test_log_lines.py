"""What a worker's log says about its connections: no secret from a URL, and repeated
reconnect warnings throttled to five of a kind a minute, as docs/operations.md promises."""

from pathlib import Path
from typing import Any

import pytest

from tests.harness import override_file, wait_until

pytestmark = pytest.mark.integration


def test_urls_in_the_log_carry_no_secret(kafka: str, simulator: Any, worker: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token, password = "t0ken-in-the-query-never-logged", "pa55-in-the-userinfo-never-logged"
    monkeypatch.setenv("COINSTREAM_TEST_WS_TOKEN", token)
    monkeypatch.setenv("COINSTREAM_TEST_REST_PASSWORD", password)
    sim = simulator("binance", rate=20, markets=3)
    sections = sim.config["exchanges"]
    port = sim.ports["binance"]
    sections["binance"] = {**sections["binance"],
                           "ws_url": f"ws://127.0.0.1:{port}/stream?token=${{COINSTREAM_TEST_WS_TOKEN}}",
                           "rest_url": f"http://coinstream:${{COINSTREAM_TEST_REST_PASSWORD}}@127.0.0.1:{port}"}
    # REST warnings, which name the URL: the market list read at startup, then the snapshot.
    sim.fault("binance", "http_500", count=2)
    config = override_file(tmp_path, kafka, sections)
    assert token not in config.read_text()
    process = worker("binance", config)
    wait_until(lambda: "connected to" in process.log() and "symbols=***: HTTP 500" in process.log(), 30,
               "the socket to connect and the REST warning")
    assert process.stop() == 0
    log = process.log()
    assert f"connected to ws://127.0.0.1:{port}/stream?token=***, 3 markets" in log
    assert f"GET http://***@127.0.0.1:{port}/api/v3/exchangeInfo?permissions=***: gave up" in log
    assert f"GET http://***@127.0.0.1:{port}/api/v3/ticker/24hr?symbols=***: HTTP 500" in log
    assert token not in log and password not in log


def test_reconnect_warnings_are_throttled_to_five_of_a_kind_a_minute(kafka: str, simulator: Any, worker: Any,
                                                                       tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=3)
    sim.fault("binance", "ws_down", seconds=60)
    config = override_file(tmp_path, kafka, sim.config["exchanges"],
                           {"backoff_initial_s": 0.1, "backoff_max_s": 0.2, "stats_interval_s": 1})
    process = worker("binance", config)

    def refusals() -> int:
        """Handshakes refused so far, from the latest counters line."""
        log = process.log()
        return int(log.rsplit("handshake_refused=", 1)[1].split("]")[0]) if "handshake_refused=" in log else 0

    wait_until(lambda: refusals() >= 20, 30, "20 refused handshakes")
    assert process.stop() == 0
    log = process.log()
    assert log.count("handshake refused: HTTP 503") == 5
    assert log.count("more reconnects handshake_refused this minute; see the counters line") == 1
