"""`coinstream demo` end to end, as a newcomer meets it: in a fresh checkout
(tests.harness.fresh_checkout), in a real terminal (tmux), with the demo's own broker,
the simulator for all ten exchanges and supervisord running the ten workers.

It does what the demo tells the user to try: `coinstream status` shows all ten ok; the
live view's BTC rows sit at the simulator's levels with a KRW premium of about 0 %; the
simulator's fault URL makes Kraken reconnect, and status shows it; `supervisorctl
restart kraken` restarts it. Every record and dead letter read back from Kafka matches
schemas/*.schema.json. Ctrl-C stops it all: the demo exits 0 and nothing it started is
left running.

The checkout is the `checkout` fixture (tests/conftest.py). The demo's fixed ports (19092, 9301..9310) are replaced with free ones (--kafka-port,
--metrics-port), so the commands it prints carry --config run/demo.yaml. make is not
run in the copy: its .venv is this checkout's, linked, which make might reinstall.
"""

import json
import re
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator

from coinstream.broker import BundledBroker
from shared.config import EXCHANGES
from simulator import prices
from simulator.core import EDGE_EVERY
from tests.harness import ROOT, consume, free_port_run, processes_of, wait_until
from tests.integration.test_live import Pane

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

KRW_EXCHANGES = ("upbit", "bithumb", "coinone", "korbit")


class Terminal(Pane):
    """A shell in a tmux pane of its own, in the demo's checkout."""

    def __init__(self, checkout: Path) -> None:
        super().__init__()
        self.type(f"cd {checkout}")

    def type(self, command: str) -> None:
        self._tmux("send-keys", "-t", "live", "-l", command)
        self._tmux("send-keys", "-t", "live", "Enter")

    def wait_exit(self, program: str, timeout_s: float) -> str:
        """The exit code the shell echoed for `program` (not the echo command itself)."""
        pattern = re.compile(rf"^{program} exited (\d+)$", re.MULTILINE)
        return str(wait_until(lambda: (found := pattern.search(self.screen())) and found.group(1), timeout_s,
                              f"{program} to exit"))

    def shell_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "live", "#{pane_pid}"))


# The last `coinstream status` output, for a test that times out waiting for it to be right.
last_status: list[str] = [""]


def status(checkout: Path) -> tuple[int, dict[str, list[str]]]:
    """`coinstream status` as the demo prints it: exit code, worker -> its row's cells."""
    done = subprocess.run([".venv/bin/python", "-m", "coinstream", "status", "--config", "run/demo.yaml",
                           "--window", "0.5"], cwd=checkout, capture_output=True, text=True, timeout=60)
    last_status[0] = f"{done.stdout}{done.stderr}"
    rows = {cells[0]: cells for line in done.stdout.splitlines()[1:]
            if (cells := re.split(r"\s{2,}", line.strip()))[0] in EXCHANGES}
    return done.returncode, rows


def test_demo_end_to_end(checkout: Path) -> None:
    first_port = free_port_run(12)
    kafka_port, metrics_port = first_port, first_port + 2  # the broker's controller takes +1
    demo, live = Terminal(checkout), Terminal(checkout)
    shells = {demo.shell_pid(), live.shell_pid()}
    try:
        demo.type(f".venv/bin/python -m coinstream demo --kafka-port {kafka_port} --metrics-port {metrics_port}; "
                  'echo "demo exited $?"')
        screen = demo.wait_for("Ctrl-C here stops it all.", timeout_s=240)
        assert "demo: supervisord: all ten workers RUNNING" in screen, screen
        for printed in ('make status ARGS="--config run/demo.yaml"',
                        'make live ARGS="--config run/demo.yaml --base BTC"',
                        ".venv/bin/supervisorctl -c supervisord.conf restart kraken", "tail -f logs/kraken.log"):
            assert printed in screen, screen
        fault = re.search(r"curl '(127\.0\.0\.1:\d+/_sim/fault\?kind=close)'", screen)
        assert fault, screen

        # make status: all ten ok, their metrics on the demo's ports.
        code, rows = wait_until(lambda: (result := status(checkout))[0] == 0 and result, 90, "all ten workers ok",
                                last_seen=lambda: last_status[0])
        assert list(rows) == list(EXCHANGES) and all(cells[-1] == "ok" for cells in rows.values()), rows
        # The demo's broker is new: the producer ids are asked for before the workers start, so no
        # worker logs librdkafka's "Coordinator load in progress" retry.
        for exchange in EXCHANGES:
            assert "Coordinator load in progress" not in (checkout / "logs" / f"{exchange}.log").read_text(), exchange
        # A healthy collector: the simulator's rarer wire shapes are for the tests (Binance's bare
        # error answer put a WARNING in logs/binance.log every 10 s).
        simulated = yaml.safe_load((checkout / "run" / "demo.yaml").read_text())["exchanges"]
        for exchange in EXCHANGES:
            stats_url = f"{simulated[exchange]['rest_url']}/_sim/stats"
            stats = wait_until(lambda: (got := requests.get(stats_url, timeout=10).json())["frames"] >= EDGE_EVERY
                               and got, 60, f"{exchange}: {EDGE_EVERY} ticker frames, one of which an edge shape")
            assert stats["edge_shapes"] == {}, (exchange, stats)
        assert "Invalid request" not in (checkout / "logs" / "binance.log").read_text()

        # make live ARGS="... --base BTC": BTC at its level everywhere, a premium near 0 %.
        live.type('.venv/bin/python -m coinstream live --config run/demo.yaml --base BTC; echo "live exited $?"')
        # Each market ticks on its own clock, so the four USDT-KRW rows may come in a refresh after the BTC rows,
        # and a row whose book record came first shows LAST "-" until its ticker's does.
        all_four = "(median USDT-KRW of bithumb, coinone, korbit, upbit)"

        def btc_rows_of(text: str) -> list[list[str]]:
            return [line.split() for line in text.splitlines() if re.match(r"^\w+ +BTC-", line)]

        view = wait_until(lambda: (text := live.screen()) and all_four in text
                          and len(rows := btc_rows_of(text)) == 10 and all(row[2] != "-" for row in rows) and text,
                          30, "ten BTC rows with a last price and the USDT-KRW median of all four Korean exchanges")
        btc_rows = btc_rows_of(view)
        assert {row[0] for row in btc_rows} == set(EXCHANGES), view
        for row in btc_rows:
            quote = row[1].split("-")[1]
            level = prices.level("BTC", quote)
            assert level is not None, row
            # LAST, and BID and ASK where the book or the ticker gives them
            for cell in [row[2], *(cell for cell in row[3:5] if cell != "-")]:
                assert abs(Decimal(cell) / level - 1) < Decimal("0.01"), row
            if quote == "KRW":
                assert re.fullmatch(r"[+-]\d+\.\d\d%", row[-1]) and abs(Decimal(row[-1][:-1])) < 1, row
        live.interrupt()
        assert live.wait_exit("live", 30) == "0"

        # The simulator's fault URL: every Kraken socket dropped; status counts the reconnect.
        assert requests.get(f"http://{fault.group(1)}", timeout=10).json() == {"ok": "close"}
        wait_until(lambda: (reconnects := status(checkout)[1]["kraken"][5]).isdigit() and int(reconnects) >= 1, 60,
                   "kraken's reconnect in status", last_seen=lambda: last_status[0])
        restarted = subprocess.run([".venv/bin/supervisorctl", "-c", "supervisord.conf", "restart", "kraken"],
                                   cwd=checkout, capture_output=True, text=True, timeout=60)
        assert restarted.stdout.splitlines() == ["kraken: stopped", "kraken: started"], restarted

        # What the workers wrote, read back from Kafka, is what the schemas say.
        bootstrap = f"127.0.0.1:{kafka_port}"
        binance = simulated["binance"]
        requests.get(f"{binance['rest_url']}/_sim/fault", params={"kind": "garbage"}, timeout=10)
        records = [value for _, value in consume(bootstrap, "coinstream.ticker", lambda got: len(got) >= 500)]
        assert {record["exchange"] for record in records} == set(EXCHANGES)
        assert {record["source"] for record in records} == {"ws", "rest"}  # the startup snapshots
        assert {record["symbol"] for record in records if record["exchange"] in KRW_EXCHANGES} >= {"USDT-KRW"}
        letters = [value for _, value in consume(bootstrap, "coinstream.dead-letter", lambda got: len(got) >= 1)]
        for name, values in (("ticker", records), ("dead-letter", letters)):
            schema = Draft202012Validator(json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text()))
            for value in values:
                schema.validate(value)

        # Ctrl-C: the workers, the simulator, supervisord and the broker all stop.
        running = "\n".join(command for pid, command in processes_of(checkout).items() if pid not in shells)
        for part in ("kafka.Kafka", "-m simulator", "supervisord -c", *(f"-m workers.{name}" for name in EXCHANGES)):
            assert part in running, f"{part} is not running:\n{running}"
        started = time.monotonic()
        demo.interrupt()
        assert demo.wait_exit("demo", 120) == "0", demo.screen()
        assert "demo: stopped" in demo.screen()
        assert time.monotonic() - started < 90  # at worst: a worker's 30 s stop, the broker's 30 s
        left = {pid: command for pid, command in processes_of(checkout).items() if pid not in shells}
        assert left == {}, left
        assert BundledBroker(kafka_port, checkout / "run" / "demo-kafka").running_address() is None
        log = (checkout / "logs" / "supervisord.log").read_text()
        # Stopped by supervisord, or before it came to it by stop_together: exit 0 either way.
        assert all(re.search(rf"(stopped: {name} \(exit status 0\)|exited: {name} \(exit status 0;)", log)
                   for name in EXCHANGES), log
    finally:
        for terminal in (demo, live):
            terminal.interrupt()
        time.sleep(1)
        BundledBroker(kafka_port, checkout / "run" / "demo-kafka").stop()
        demo.close()
        live.close()
