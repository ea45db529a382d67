"""The worker command line as a user meets it: clear one-line errors, --record and --replay."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.harness import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def run_worker(exchange: str, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"workers.{exchange}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.parametrize("yaml_text, message", [
    ("exchanges: {binance: {symbols: [BTC-USDT]\n", "malformed YAML"),
    ("exchanges: {binance: {symbol: [BTC-USDT]}}\n", "exchanges.binance.symbol: unknown key"),
    ("runtime: {watchdog_s: soon}\n", "runtime.watchdog_s: Expected `float`, got `str`"),
    ("exchanges: {binanceus: {ws_url: a, rest_url: b, symbols: [BTC-USD]}}\n", "exchanges.binanceus: unknown exchange"),
    ("exchanges: {binance: {symbols: null}}\n", "set exactly one of 'symbols'"),
    ("kafka: {producer: {sasl.password: '${COINSTREAM_TEST_UNSET_SECRET}'}}\n",
     "kafka.producer.sasl.password: environment variable COINSTREAM_TEST_UNSET_SECRET is not set"),
    ("kafka: {producer: {linger.milliseconds: 5}}\n", 'No such configuration property: "linger.milliseconds"'),
    ("kafka: {producer: {delivery.report.only.error: false}}\n",
     "kafka.producer.delivery.report.only.error: set by coinstream itself"),
    ("topics: {replication_factor: 2, min_insync_replicas: 3}\n",
     "topics.min_insync_replicas: 3 is more than topics.replication_factor (2)"),
    ("topics: {min_insync_replicas: 0}\n", "topics.min_insync_replicas: Expected `int` >= 1"),
    ("exchanges: {binance: {book_depth: 6000}}\n", "exchanges.binance.book_depth: 6000 levels; binance serves 1 to 5000"),
    ("exchanges: {binance: {book_depth: 0}}\n", "exchanges.binance.book_depth: Expected `int` >= 1"),
    ("exchanges: {binance: {channels: [ticker, trades]}}\n", "exchanges.binance.channels.1: Invalid enum value 'trades'"),
    ("exchanges: {binance: {channels: []}}\n", "exchanges.binance.channels: the list is empty"),
    ("exchanges: {binance: {book_symbols: [btc_usdt]}}\n", "exchanges.binance.book_symbols.0: Expected `str` matching"),
    ("topics: {book_by_exchange: {binanceus: b}}\n", "topics.book_by_exchange.binanceus: unknown exchange"),
    ("exchanges: {coinbase: {book_ws_url: [wss://advanced-trade-ws.coinbase.com]}}\n",
     "exchanges.coinbase.book_ws_url: Expected `str | null`, got `array`"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(yaml_text)
    done = run_worker("binance", "--config", str(override))
    assert done.returncode == 78
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"coinstream binance: error: {override}:")
    assert message in lines[0]


def test_bad_argument_is_one_line() -> None:
    done = run_worker("binance", "--sink", "carrier-pigeon")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'carrier-pigeon'" in done.stderr


def test_unreachable_kafka_is_one_line_naming_where_the_address_came_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '127.0.0.1:{free_port()}'}}}}\n"
                        "runtime: {rest_timeout_s: 2}\n")
    done = run_worker("binance", "--config", str(override))
    assert done.returncode == 69
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"coinstream binance: error: {override}: kafka.producer.bootstrap.servers: "
                           "Kafka unreachable at 127.0.0.1:")
    assert "Traceback" not in done.stderr

    monkeypatch.setenv("COINSTREAM_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    done = run_worker("binance", "--config", str(override))
    assert done.returncode == 69
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("coinstream binance: error: $COINSTREAM_KAFKA_BOOTSTRAP_SERVERS: "
                           "kafka.producer.bootstrap.servers: Kafka unreachable at 127.0.0.1:")


def test_missing_topic_is_one_line(kafka: str, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '{kafka}'}}}}\n"
                        "topics: {ticker: no.such.topic}\n")
    done = run_worker("binance", "--config", str(override))
    assert done.returncode == 78
    [line] = done.stderr.strip().splitlines()
    assert "Kafka topic 'no.such.topic' does not exist" in line


@pytest.mark.parametrize("exchange", sorted(reference.PARSERS))
def test_replay_prints_exactly_what_the_live_run_produced(exchange: str, simulator: Any, tmp_path: Path) -> None:
    sim = simulator(exchange, rate=50, markets=4)
    capture = tmp_path / "capture.jsonl"
    live = subprocess.Popen([sys.executable, "-m", f"workers.{exchange}", "--config", str(sim.config_path),
                             "--sink", "stdout", "--record", str(capture)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_until(lambda: capture.exists() and capture.read_text().count('"kind":"ws"') > 40, 30, "live frames")
    sim.fault(exchange, "garbage", count=1)
    time.sleep(0.5)
    live.send_signal(signal.SIGTERM)
    live_out, _ = live.communicate(timeout=30)
    assert live.returncode == 0

    # A line that is not a capture item is dead-lettered and the replay goes on.
    with open(capture, "a") as appended:
        appended.write("this is not json\n")
    replayed = run_worker(exchange, "--config", str(sim.config_path), "--sink", "stdout", "--replay", str(capture))
    assert replayed.returncode == 0

    def comparable(stdout: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in stdout.splitlines()]
        for record in records:
            record.pop("run")
        return records

    live_records, replay_records = comparable(live_out), comparable(replayed.stdout)
    assert len(live_records) > 40
    assert replay_records == live_records
    # The run collected books too (the default): a replay publishes exactly the live
    # run's book records, numbered on their own.
    books = [record for record in live_records if "bids" in record]
    assert books
    assert [record["seq"] for record in books] == list(range(1, len(books) + 1))
    dead = [line for line in replayed.stderr.splitlines() if line.startswith("dead-letter ")]
    assert len(dead) == 2, replayed.stderr  # the simulator's garbage frame and the bad line
    assert any('"raw":"this is not json"' in line for line in dead)

    # The capture names the markets the run collected: it replays without the run's config
    # (the shipped one knows other markets), to the same records.
    assert sum(1 for line in capture.read_text().splitlines() if line.startswith('{"kind":"markets"')) == 1
    standalone = run_worker(exchange, "--sink", "stdout", "--replay", str(capture))
    assert standalone.returncode == 0, standalone.stderr
    assert comparable(standalone.stdout) == live_records
    assert standalone.stderr.count("dead-letter ") == 2, standalone.stderr

    # A capture without that line (made before it existed) replays with --config as before.
    old = tmp_path / "old-capture.jsonl"
    old.write_text("".join(line for line in capture.read_text().splitlines(keepends=True)
                           if not line.startswith('{"kind":"markets"')))
    replayed_old = run_worker(exchange, "--config", str(sim.config_path), "--sink", "stdout", "--replay", str(old))
    assert replayed_old.returncode == 0
    assert comparable(replayed_old.stdout) == live_records


def test_a_coinbase_capture_replays_its_numbering_breaks_and_sessions(simulator: Any, tmp_path: Path) -> None:
    """Coinbase numbers every message of a book connection: a replay checks the numbers by
    the session each frame was captured on. A run with dropped book messages (a break in
    the numbering: books lost and resubscribed) and a reconnect (a second session,
    numbered from 0 again) replays to exactly its book records, and finds the same gaps."""
    sim = simulator("coinbase", rate=50, markets=3)
    capture, out, err = tmp_path / "capture.jsonl", tmp_path / "live.out", tmp_path / "live.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a pipe not read would fill
        live = subprocess.Popen([sys.executable, "-m", "workers.coinbase", "--config", str(sim.config_path),
                                 "--sink", "stdout", "--record", str(capture)], cwd=ROOT, stdout=stdout, stderr=stderr)
    wait_until(lambda: capture.exists() and capture.read_text().count('"kind":"book"') > 30, 30, "book frames")
    sim.fault("coinbase", "book_gap", count=2)
    wait_until(lambda: not sim.control("coinbase", "stats")["book_faults"], 30, "the dropped messages")
    time.sleep(1)  # the resubscribe's snapshots
    sim.fault("coinbase", "close")
    wait_until(lambda: '"connection":"coinbase-book#0/2"' in capture.read_text(), 30, "the second session")
    time.sleep(1)
    live.send_signal(signal.SIGTERM)
    assert live.wait(timeout=30) == 0
    live_out, live_err = out.read_text(), err.read_text()
    assert "book lost (gap)" in live_err

    replayed = run_worker("coinbase", "--sink", "stdout", "--replay", str(capture))
    assert replayed.returncode == 0, replayed.stderr

    def books(stdout: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in stdout.splitlines() if '"bids"' in line]
        for record in records:
            record.pop("run")
        return records

    assert books(replayed.stdout) == books(live_out)
    assert live_err.count("book lost (gap)") == replayed.stderr.count("book lost (gap)")


def test_replaying_another_exchanges_capture_is_refused(tmp_path: Path) -> None:
    """Every frame was dead-lettered (into Kafka's dead-letter topic with --sink kafka),
    then exit 0."""
    frame = {"ts": 1, "kind": "ws", "url": "wss://stream.binance.com:9443/stream",
             "data": '{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","s":"BTCUSDT"}}'}
    capture = tmp_path / "binance.jsonl"
    capture.write_text(json.dumps(frame) + "\n")
    done = run_worker("kraken", "--sink", "stdout", "--replay", str(capture))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"coinstream kraken: error: --replay: {capture}: a capture of binance "
                           "(its frames came from stream.binance.com:9443), not of kraken\n")


@pytest.mark.parametrize("record", ["/nonexistent/run.jsonl", "/tmp", "/proc/run.jsonl"])
def test_a_record_file_that_cannot_be_opened_is_one_line(tmp_path: Path, record: str) -> None:
    """It was an OSError traceback, exit 1 (supervisord restarted the worker forever)."""
    capture = tmp_path / "empty.jsonl"
    capture.write_text("")
    done = run_worker("kraken", "--sink", "stdout", "--record", record, "--replay", str(capture))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"coinstream kraken: error: --record: {record}: cannot open: ")


@pytest.mark.parametrize("metrics, key, problem", [
    # The line named neither the file nor, for the host, the key: "metrics.ports.kraken:
    # cannot serve /metrics on not a host:9309: Name or service not known (choose a free port ...)".
    ("{host: 'not a host'}", "metrics.host", "cannot serve /metrics on not a host:9309: Name or service not known "
                                             "(a name or address of this machine)"),
    ("{host: 192.0.2.1}", "metrics.host", "cannot serve /metrics on 192.0.2.1:9309: Cannot assign requested address "
                                          "(a name or address of this machine)"),
    ("{ports: {kraken: PORT}}", "metrics.ports.kraken", "cannot serve /metrics on 127.0.0.1:PORT: Address already in "
                                                        "use (choose a free port, or 0 for no /metrics)"),
])
def test_metrics_that_cannot_be_served_are_one_line_naming_file_and_key(
        tmp_path: Path, metrics: str, key: str, problem: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        override = tmp_path / "site.yaml"
        override.write_text(f"metrics: {metrics.replace('PORT', port)}\n"
                            "exchanges: {kraken: {ws_url: 'ws://127.0.0.1:1', rest_url: 'http://127.0.0.1:1'}}\n")
        done = run_worker("kraken", "--sink", "stdout", "--config", str(override))
    assert done.returncode == 78
    assert done.stderr == f"coinstream kraken: error: {override}: {key}: {problem.replace('PORT', port)}\n"
