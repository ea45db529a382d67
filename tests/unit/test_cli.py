"""`coinstream status | head -12` ended in a BrokenPipeError traceback: a command whose
reader stops reading exits quietly, with 141 (128 + SIGPIPE), whichever command it is."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coinstream import cli, verify
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


@pytest.mark.parametrize("argv, option", [
    # argparse printed its usage block before the error: 2 to 5 lines.
    (["run", "--bogus"], "--bogus"),
    (["check", "extra"], "extra"),
    (["topics", "--config"], "--config"),
    (["live", "--exchange", "krakn"], "--exchange"),
    (["verify", "--since", "-5s"], "--since"),
    (["demo", "--rate", "fast"], "--rate"),
    # Taken: a traceback from time.sleep (ValueError: sleep length must be non-negative).
    (["status", "--window", "-1"], "--window"),
    (["status", "--window", "nan"], "--window"),
    # Taken: no worker could ever be healthy, or every one always is.
    (["status", "--max-age", "-5"], "--max-age"),
    (["status", "--max-delivery-wait", "inf"], "--max-delivery-wait"),
    # Taken: a premium computed with a negative or undefined exchange rate.
    (["live", "--krw-per-usd", "-5"], "--krw-per-usd"),
    (["live", "--krw-per-usd", "NaN"], "--krw-per-usd"),
    # Taken: the demo started its broker, then failed (a Java stack trace for the port,
    # exit 69; exit 78 for the markets and the metrics ports), or ran with no tickers.
    (["demo", "--rate", "-1"], "--rate"),
    (["demo", "--markets", "0"], "--markets"),
    (["demo", "--kafka-port", "65535"], "--kafka-port"),
    (["demo", "--metrics-port", "65530"], "--metrics-port"),
])
def test_a_bad_argument_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                      option: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"coinstream {argv[0]}: error: ") and option in err, err


def test_verify_with_kafka_unreachable_is_one_line(capfd: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's own log lines came first: 195 lines on stderr for one error."""
    monkeypatch.setattr(verify, "METADATA_TIMEOUT_S", 2.0)
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit) as exited:
        verify.main(["--bootstrap", address])
    assert exited.value.code == 69
    assert capfd.readouterr().err == (f"coinstream verify: error: {address}: Kafka unreachable: "
                                      "Failed to get metadata: Local: Broker transport failure\n")


def test_verify_refuses_a_bootstrap_address_that_does_not_parse(capsys: pytest.CaptureFixture[str]) -> None:
    """It was tried, and reported as 'Kafka unreachable' (exit 69), after 10 s."""
    with pytest.raises(SystemExit) as exited:
        verify.main(["--bootstrap", "bad host::"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("coinstream verify: error: argument --bootstrap: 'bad host::' is not a list "
                                       "of host:port, such as kafka1:9092,kafka2:9092 (see --help)\n")


def test_live_with_kafka_unreachable_says_so_on_its_screen_only(tmp_path: Path) -> None:
    """librdkafka wrote its connect retries to the terminal, over the redrawn screen (96
    lines in 5 s), and the screen's title never said that Kafka was away."""
    override = tmp_path / "site.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '127.0.0.1:{free_port()}'}}}}\n")
    live = subprocess.Popen([sys.executable, "-m", "coinstream", "live", "--config", str(override)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})  # the title is cut to the screen's width
    time.sleep(4)
    live.terminate()
    out, err = live.communicate(timeout=30)
    assert err == ""
    assert "last Kafka error: 127.0.0.1:" in out
