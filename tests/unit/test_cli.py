"""`coinstream status | head -12` ended in a BrokenPipeError traceback: a command whose
reader stops reading exits quietly, with 141 (128 + SIGPIPE), whichever command it is."""

import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, free_port


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # A Kafka that is not there: status waits for it after the table, then prints more.
    override = tmp_path / "site.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '127.0.0.1:{free_port()}'}}}}\n")
    status = subprocess.Popen([sys.executable, "-m", "coinstream", "status", "--config", str(override),
                               "--supervisor-conf", str(ROOT / "supervisord.conf"), "--window", "0.1"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert status.stdout is not None and status.stderr is not None
    assert status.stdout.readline().startswith("WORKER")  # the table's header, as head reads it
    status.stdout.close()  # as head exits
    errors = status.stderr.read()
    assert "Traceback" not in errors and "BrokenPipeError" not in errors
    assert status.wait(timeout=60) == 141
