"""coinstream demo: the whole collector on this machine, against the exchange simulator.

A first look without exchange access, in one command:
1. the bundled Kafka broker on 127.0.0.1:19092, with a data directory of its own
   (run/demo-kafka, emptied at each start), so that simulated records never reach the
   topics of a real collector;
2. the exchange simulator (python -m simulator --real-prices --no-edge-shapes) for all
   ten exchanges at a gentle rate, with prices near the real market's and a USDT-KRW
   market on the four KRW exchanges; without the real wire's rarer shapes, which are for
   the tests (Binance's bare error answer alone logs a WARNING every 10 s), so that the
   demo shows a healthy collector;
3. supervisord -c supervisord.conf with the ten workers pointed at the simulator
   (run/demo.yaml, which also keeps their disk spool in run/demo-spool), each serving
   /metrics on its usual port, so that `make status` and `make live` work as they are.
Then it prints what to try. Ctrl-C stops it all, in order: the workers (each flushes
Kafka), the simulator, the broker. The demo ignores $COINSTREAM_CONFIG and
$COINSTREAM_KAFKA_BOOTSTRAP_SERVERS: simulated prices must never reach a real cluster.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from coinstream import topics
from coinstream.broker import BrokerError, BundledBroker
from coinstream.run import ROOT, SUPERVISOR_CONF, SUPERVISORD, make_directories, producer_ids_ready
from coinstream.status import supervisor_states
from shared import config as configuration
from shared.arguments import OneLineParser, number
from shared.cli import stop_with_parent

RUN_DIR = ROOT / "run"
DEMO_CONFIG = RUN_DIR / "demo.yaml"
SIMULATOR_CONFIG = RUN_DIR / "demo-simulator.yaml"
SIMULATOR_LOG = RUN_DIR / "demo-simulator.log"
DEFAULT_KAFKA_PORT = 19092
RUNNING_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0  # supervisord waits up to stopwaitsecs (30 s) for each worker
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78


class DemoError(Exception):
    """A part of the demo did not start or ended early; one line."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def dies_with_the_demo() -> None:
    """In a child of the demo, before its program starts: SIGTERM to it when the demo dies
    however it dies (kill -9, the OOM killer, a killed test run), which its own handlers
    cannot see. Before, the simulator and supervisord, and so the ten workers, ran on as
    orphans; supervisord now stops the workers as on Ctrl-C. (The broker, a daemon of
    kafka/kafka-local.sh, stays: the next demo's start stops it, and empties its data.)"""
    if not stop_with_parent():
        os._exit(1)  # the demo is gone already


def start_simulator(rate: float, markets: int,
                    stops: list[Callable[[], None]]) -> tuple[dict[str, int], dict[str, Any]]:
    """The simulator for every exchange; (exchange -> port, its override's exchanges section)."""
    exchanges = [argument for name in configuration.EXCHANGES for argument in ("--exchange", name)]
    with open(SIMULATOR_LOG, "w") as log:
        # A session of its own: the terminal's Ctrl-C reaches the demo alone, which stops
        # the simulator after the workers.
        simulator = subprocess.Popen(
            [sys.executable, "-m", "simulator", *exchanges, "--rate", f"{rate:g}", "--markets", str(markets),
             "--real-prices", "--no-edge-shapes", "--write-config", str(SIMULATOR_CONFIG)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
            preexec_fn=dies_with_the_demo)
    stops.append(lambda: _stop_process(simulator, "simulator", 10))
    assert simulator.stdout is not None
    for line in simulator.stdout:
        if line.startswith("simulator: ready "):
            ports: dict[str, int] = json.loads(line.split("ready ", 1)[1])
            break
    else:
        raise DemoError(f"the simulator exited at start (see {relative(SIMULATOR_LOG)})")
    # It prints nothing more; a closed pipe can never fill up and block it.
    simulator.stdout.close()
    return ports, yaml.safe_load(SIMULATOR_CONFIG.read_text())["exchanges"]


def write_config(kafka_address: str, first_metrics_port: int, exchanges: dict[str, Any]) -> configuration.Config:
    """run/demo.yaml: the simulator's endpoints, the demo's broker and spool, /metrics on."""
    override = {
        "kafka": {"producer": {"bootstrap.servers": kafka_address},
                  # Not the collector's spool: a real run sends what it finds there first.
                  "spool": {"dir": str(RUN_DIR / "demo-spool")}},
        "metrics": {"ports": {name: first_metrics_port + index for index, name in enumerate(configuration.EXCHANGES)}},
        "exchanges": exchanges,
    }
    DEMO_CONFIG.write_text("# Written by coinstream demo; rewritten at each start.\n" + yaml.safe_dump(override))
    return configuration.load(DEMO_CONFIG)


def wait_running(supervisord: subprocess.Popen[bytes]) -> list[str]:
    """Wait until every worker is RUNNING; the ones that are not, with their state."""
    deadline = time.monotonic() + RUNNING_TIMEOUT_S
    while True:
        if supervisord.poll() is not None:
            raise DemoError(f"supervisord exited with {supervisord.returncode} (see above and logs/supervisord.log)")
        states = supervisor_states(SUPERVISOR_CONF)
        if isinstance(states, dict):
            waiting = {name: state for name, state in states.items() if state != "RUNNING"}
            if not waiting:
                return []
            if time.monotonic() > deadline or all(state in ("FATAL", "EXITED") for state in waiting.values()):
                return [f"{name} ({state}; see logs/{name}.log)" for name, state in waiting.items()]
        elif time.monotonic() > deadline:
            raise DemoError(states)
        time.sleep(0.5)


def next_steps(default_ports: bool, simulator_ports: dict[str, int]) -> str:
    """What to try, one command a line (to copy) under what it shows."""
    # The make targets read the default config; other ports need the demo's.
    options = "" if default_ports else f"--config {relative(DEMO_CONFIG)} "
    return "\n".join([
        "",
        "coinstream demo is running: ten workers collect from the simulator into Kafka.",
        "In another terminal, in this directory:",
        "  the ten workers' health:",
        f'    make status ARGS="{options.strip()}"' if options else "    make status",
        "  BTC on every exchange, with the KRW premium (about 0 %):",
        f'    make live ARGS="{options}--base BTC"',
        "  restart one worker, read its log:",
        f"    .venv/bin/supervisorctl -c {relative(SUPERVISOR_CONF)} restart kraken",
        "    tail -f logs/kraken.log",
        "  a fault: the simulator drops every Kraken socket (see RECONNECTS in make status):",
        f"    curl '127.0.0.1:{simulator_ports['kraken']}/_sim/fault?kind=close'",
        "    (other kinds: stall, garbage, ws_down, http_500 ...: docs/simulator.md)",
        "Ctrl-C here stops it all.",
        "",
    ])


def say(line: str, file: TextIO = sys.stdout) -> None:
    """Print, unless the terminal is gone (closed): stopping goes on regardless."""
    try:
        print(line, file=file, flush=True)
    except OSError:
        pass


def _stop_process(process: subprocess.Popen[Any], name: str, timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        say(f"demo: {name} did not stop within {timeout_s:g} s; killing it", sys.stderr)
        process.kill()
        process.wait()


def run_demo(arguments: argparse.Namespace, stops: list[Callable[[], None]]) -> None:
    """Start everything, appending how to stop each part to `stops`, then wait for Ctrl-C
    (KeyboardInterrupt); DemoError when a part does not start or supervisord ends."""
    broker = BundledBroker(arguments.kafka_port, RUN_DIR / "demo-kafka")
    if broker.running_address() is not None:
        # A demo killed with kill -9 left it (see dies_with_the_demo); its data goes anyway.
        print("demo: kafka: stopping the broker a killed demo left running", flush=True)
        broker.stop()
    stops.append(broker.stop)  # before start(): a Ctrl-C during the start leaves a broker to stop
    try:
        broker.start(fresh=True)
    except BrokerError as error:
        stops.pop()  # none started
        raise DemoError(f"{error}; if `make run` left its broker running, `make kafka-stop` stops it, "
                        "or choose another --kafka-port") from None
    print(f"demo: kafka: the demo's own broker on {broker.address} (data in run/demo-kafka)", flush=True)

    simulator_ports, exchanges = start_simulator(arguments.rate, arguments.markets, stops)
    print(f"demo: simulator: ten exchanges at {arguments.rate:g} tickers/s a connection "
          f"(log: {relative(SIMULATOR_LOG)})", flush=True)

    config = write_config(broker.address, arguments.metrics_port, exchanges)
    for line in topics.ensure(config):
        print(f"demo: topics: {line}", flush=True)
    if not producer_ids_ready(config):
        print("demo: kafka: no producer id within 30 s; the workers keep asking", flush=True)

    # Its own session too; its log is logs/supervisord.log.
    supervisord = subprocess.Popen([str(SUPERVISORD), "-c", str(SUPERVISOR_CONF)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=dies_with_the_demo)
    stops.append(lambda: _stop_process(supervisord, "supervisord", STOP_TIMEOUT_S))
    not_running = wait_running(supervisord)
    if not_running:
        print(f"demo: warning: not RUNNING: {', '.join(not_running)}", file=sys.stderr, flush=True)
    else:
        print("demo: supervisord: all ten workers RUNNING (logs in logs/)", flush=True)
    default_ports = (arguments.kafka_port == DEFAULT_KAFKA_PORT
                     and arguments.metrics_port == configuration.FIRST_METRICS_PORT)
    print(next_steps(default_ports, simulator_ports), flush=True)
    while supervisord.poll() is None:
        time.sleep(0.5)
    raise DemoError(f"supervisord exited with {supervisord.returncode} (see logs/supervisord.log)")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=number(float, at_least=0), default=5.0, metavar="N",
                        help="ticker frames per second on each connection (default: 5)")
    parser.add_argument("--markets", type=number(int, at_least=1), default=6, metavar="N",
                        help="markets per exchange, BTC first (default: 6; KRW exchanges add USDT-KRW)")
    # Checked before anything starts: the broker's controller takes PORT+1, the ten
    # workers' /metrics PORT to PORT+9.
    parser.add_argument("--kafka-port", type=number(int, at_least=1, at_most=65534), default=DEFAULT_KAFKA_PORT,
                        metavar="PORT",
                        help=f"the demo broker's port; its controller takes PORT+1 (default: {DEFAULT_KAFKA_PORT})")
    parser.add_argument("--metrics-port", type=number(int, at_least=1, at_most=65536 - len(configuration.EXCHANGES)),
                        default=configuration.FIRST_METRICS_PORT, metavar="PORT",
                        help="the first of the ten workers' /metrics ports "
                             f"(default: {configuration.FIRST_METRICS_PORT}, as in config/coinstream.yaml)")
    arguments = parser.parse_args(argv)

    states = supervisor_states(SUPERVISOR_CONF)
    if isinstance(states, dict):
        print("coinstream demo: error: supervisord already runs from supervisord.conf (make run?); stop it first: "
              f".venv/bin/supervisorctl -c {relative(SUPERVISOR_CONF)} shutdown", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    make_directories(SUPERVISOR_CONF)
    # What the demo loads and starts reads the demo's config, never the user's.
    os.environ.pop(configuration.ENV_BOOTSTRAP, None)
    os.environ[configuration.ENV_OVERRIDE_FILE] = str(DEMO_CONFIG)
    # A kill, or the terminal closed (whose hangup reaches the demo alone: what it
    # started runs in sessions of its own), stops it all as Ctrl-C does.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    stops: list[Callable[[], None]] = []
    code = 0
    try:
        run_demo(arguments, stops)
    except KeyboardInterrupt:
        pass
    except (DemoError, topics.KafkaUnreachable) as error:
        print(f"coinstream demo: error: {error}", file=sys.stderr, flush=True)
        code = EXIT_UNAVAILABLE
    except configuration.ConfigError as error:
        print(f"coinstream demo: error: {error}", file=sys.stderr, flush=True)
        code = EXIT_CONFIG
    finally:
        # Stopping takes up to half a minute (the workers flush Kafka): not cut short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if stops:
            say("demo: stopping the workers, the simulator and the broker ...")
        for stop in reversed(stops):
            stop()
    if stops:
        say("demo: stopped")
    sys.exit(code)
