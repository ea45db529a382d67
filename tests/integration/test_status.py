"""`coinstream status` against a real supervisord running two workers (the other
eight configured but not started) that collect from the exchange simulator into Kafka.

Covers what status reads from supervisord (each worker's state, disabled workers, a
stopped worker, supervisord itself gone) and from the workers' /metrics (healthy while
records flow; "no connection up" while the exchange refuses the socket). The column
arithmetic is covered by tests/unit/test_status.py on Prometheus text.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.config import EXCHANGES
from tests.harness import ROOT, override_file, wait_until
from tests.integration.test_supervisord import Supervisor

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

ENABLED = ("upbit", "binance")


def status(supervisor: Supervisor, override: Path) -> tuple[int, dict[str, dict[str, str]], str]:
    """Exit code, worker -> {column: cell}, and the whole output (stdout, then stderr)."""
    done = subprocess.run([sys.executable, "-m", "coinstream", "status", "--config", str(override),
                           "--supervisor-conf", str(supervisor.conf), "--window", "0.5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    lines = done.stdout.splitlines()
    # Columns are two or more spaces apart; a cell has at most single spaces in it.
    header = re.split(r"\s{2,}", lines[0])
    rows = {}
    for line in lines[1:1 + len(EXCHANGES)]:
        cells = re.split(r"\s{2,}", line)
        assert len(cells) == len(header), f"misaligned row: {line!r}"
        rows[cells[0]] = dict(zip(header, cells))
    assert list(rows) == list(EXCHANGES), done.stdout
    return done.returncode, rows, done.stdout + done.stderr


def test_status_reports_supervisord_states(kafka: str, simulator: Any, tmp_path: Path) -> None:
    sim = simulator(*ENABLED, rate=20, markets=3)
    # Upbit collects its books too: its own book socket beside the ticker's.
    sections = {**sim.config["exchanges"], "upbit": {**sim.config["exchanges"]["upbit"], "channels": ["ticker", "book"]}}
    override = override_file(tmp_path, kafka, sections)
    supervisor = Supervisor(tmp_path, override, autostart=ENABLED)
    try:
        wait_until(lambda: all(supervisor.states().get(name, ("",))[0] == "RUNNING" for name in ENABLED),
                   60, "both workers RUNNING")
        healthy = wait_until(lambda: (result := status(supervisor, override))[0] == 0 and result, 60,
                             "status to report healthy")
        _, rows, output = healthy
        for name in EXCHANGES:
            if name in ENABLED:
                sockets = "2/2" if name == "upbit" else "1/1"
                assert (rows[name]["STATE"], rows[name]["WS"], rows[name]["HEALTH"]) == ("RUNNING", sockets, "ok"), output
                assert float(rows[name]["REC/S"]) > 0, output
                assert rows[name]["RECONNECTS"] == "0", output
            else:
                assert (rows[name]["STATE"], rows[name]["HEALTH"]) == ("STOPPED", "disabled"), output
        book_health = rows["upbit"]["BOOK REC/S"], rows["upbit"]["BOOK RESYNCS"], rows["upbit"]["LAST BOOK"]
        assert float(book_health[0]) > 0 and book_health[1] == "0" and book_health[2].endswith("s"), output
        assert (rows["binance"]["BOOK REC/S"], rows["binance"]["BOOK RESYNCS"], rows["binance"]["LAST BOOK"]) == (
            "-", "-", "-"), "binance collects no book here"

        # A broken override: the error line, and still supervisord's half of the table.
        broken = tmp_path / "broken.yaml"
        broken.write_text("runtime: {watchdog_s: soon}\n")
        code, rows, output = status(supervisor, broken)
        assert code == 78, output
        assert f"coinstream status: error: {broken}: runtime.watchdog_s: Expected `float`, got `str`" in output
        for name in ENABLED:
            assert (rows[name]["STATE"], rows[name]["WS"]) == ("RUNNING", "-"), output
            assert rows[name]["HEALTH"] == "metrics not read (configuration error)", output
        assert (rows["kraken"]["STATE"], rows["kraken"]["HEALTH"]) == ("STOPPED", "disabled"), output

        sim.fault("upbit", "ws_down", seconds=60)
        code, rows, output = wait_until(
            lambda: (result := status(supervisor, override))[1]["upbit"]["WS"] == "0/2" and result, 30,
            "status to see upbit's ticker and book sockets down")
        assert code == 1, output
        assert rows["upbit"]["HEALTH"].startswith("no connection up"), output
        assert rows["binance"]["HEALTH"] == "ok", output

        assert "binance: stopped" in supervisor.ctl("stop", "binance")
        code, rows, output = status(supervisor, override)
        assert code == 1, output
        assert rows["binance"]["STATE"] == "STOPPED"
        assert rows["binance"]["HEALTH"] == "not RUNNING (STOPPED)", output
        assert rows["upbit"]["STATE"] == "RUNNING", output
        unhealthy = re.search(r"^unhealthy: (.*)$", output, re.MULTILINE)
        assert unhealthy and "binance" in unhealthy.group(1).split(", "), output
    finally:
        supervisor.stop()

    code, rows, output = status(supervisor, override)
    assert code == 1, output
    assert f"supervisord unreachable at unix://{supervisor.socket}" in output
    for name in EXCHANGES:
        expected = "supervisord unreachable" if name in ENABLED else "disabled"
        assert (rows[name]["STATE"], rows[name]["HEALTH"]) == ("?", expected), output
