"""Starting the collector as the README and docs/operations.md show it, in a fresh checkout (the `checkout`
fixture): the user's own `supervisord -c supervisord.conf`, and `coinstream run`
end to end (it starts the bundled broker, creates the topics, runs supervisord in the
foreground, and a Ctrl-C stops the workers but leaves the broker running).

Both start two of the ten workers (the others set to autostart=false in the copy, as
docs/configuration.md's scaling-out section does), against the exchange simulator.
"""

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinstream.broker import BundledBroker
from coinstream.status import supervisor_states
from tests.harness import consume, free_port_run, free_ports, override_file, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

STARTED = ("binance", "upbit")


def start_only(conf: Path, programs: Collection[str]) -> None:
    text = re.sub(r"^\[program:(\w+)\]\n(?:.+\n)*?autostart=true$",
                  lambda m: m[0] if m[1] in programs else m[0].replace("autostart=true", "autostart=false"),
                  conf.read_text(), flags=re.MULTILINE)
    conf.write_text(text)


def all_running(conf: Path, programs: Collection[str]) -> bool:
    states = supervisor_states(conf)
    return isinstance(states, dict) and all(states.get(name) == "RUNNING" for name in programs)


def records_from_each(programs: Collection[str]) -> Any:
    def until(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return {value["exchange"] for _, value in got if value["source"] == "ws"} >= set(programs)
    return until


def test_supervisord_runs_as_the_readme_shows_in_a_fresh_checkout(kafka: str, simulator: Any, checkout: Path,
                                                                  tmp_path: Path) -> None:
    # Nothing has made logs/ or run/: they come with the checkout, empty.
    assert sorted(path.name for path in (checkout / "logs").iterdir()) == [".gitignore"]
    assert sorted(path.name for path in (checkout / "run").iterdir()) == [".gitignore"]
    start_only(checkout / "supervisord.conf", STARTED)
    sim = simulator(*STARTED, rate=20, markets=3)
    override = override_file(tmp_path, kafka, sim.config["exchanges"])
    topic = yaml.safe_load(override.read_text())["topics"]["ticker"]
    supervisord = subprocess.Popen([".venv/bin/supervisord", "-c", "supervisord.conf"], cwd=checkout,
                                   env=dict(os.environ, COINSTREAM_CONFIG=str(override)),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: supervisord.poll() is not None or all_running(checkout / "supervisord.conf", STARTED),
                   60, "supervisord to run the workers")
        assert supervisord.poll() is None, supervisord.communicate()[0]
        consume(kafka, topic, records_from_each(STARTED), timeout_s=60)
    finally:
        subprocess.run([".venv/bin/supervisorctl", "-c", "supervisord.conf", "shutdown"], cwd=checkout,
                       capture_output=True, timeout=60)
        supervisord.wait(timeout=60)


def run_override(workdir: Path, port: int, sim: Any) -> Path:
    """An override for `coinstream run`: the bundled broker on `port`, the simulator, free metrics ports."""
    tag = uuid.uuid4().hex[:8]
    override = {
        "kafka": {"producer": {"bootstrap.servers": f"127.0.0.1:{port}"}, "local_broker": True,
                  "spool": {"dir": str(workdir / "spool")}},
        "topics": {"ticker": f"test.{tag}.ticker", "dead_letter": f"test.{tag}.dead-letter"},
        "exchanges": sim.config["exchanges"],
        "metrics": {"ports": dict(zip(sim.config["exchanges"], free_ports(len(sim.config["exchanges"]))))},
    }
    path = workdir / f"run-{tag}.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def test_coinstream_run_end_to_end(simulator: Any, checkout: Path, tmp_path: Path) -> None:
    conf = checkout / "supervisord.conf"
    start_only(conf, STARTED)
    sim = simulator(*STARTED, rate=20, markets=3)
    port = free_port_run(2)  # the broker's and its controller's
    override = run_override(tmp_path, port, sim)
    # A broker data directory of the test's own (`make run` keeps its own in ~/.cache).
    env = dict(os.environ, KAFKA_RUN_DIR=str(tmp_path / "kafka-run"))
    broker = BundledBroker(port, tmp_path / "kafka-run")
    output = tmp_path / "run.out"
    with open(output, "w") as out:
        # Its own process group, which a Ctrl-C in its terminal would signal.
        run = subprocess.Popen([".venv/bin/python", "-m", "coinstream", "run", "--config", str(override)],
                               cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: run.poll() is not None or all_running(conf, STARTED), 180, "coinstream run's workers")
        assert run.poll() is None, output.read_text()
        printed = output.read_text()
        assert f"kafka: local broker started on 127.0.0.1:{port}" in printed
        topic = yaml.safe_load(override.read_text())["topics"]["ticker"]
        assert f"topics: created {topic} partitions=3 replication=1" in printed
        consume(f"127.0.0.1:{port}", topic, records_from_each(STARTED), timeout_s=60)

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        assert run.wait(timeout=60) == 0
        log = (checkout / "logs" / "supervisord.log").read_text()
        for name in STARTED:
            # Stopped by supervisord, or before it came to it by stop_together: exit 0 either way.
            assert re.search(rf"(stopped: {name} \(exit status 0\)|exited: {name} \(exit status 0;)", log), log
        # The broker keeps running for the next `make run`, as documented...
        assert broker.running_address() == f"127.0.0.1:{port}"

        # ...and a config that names another port is refused in one line, not served by it.
        elsewhere = tmp_path / "elsewhere.yaml"
        elsewhere.write_text(f"kafka: {{producer: {{bootstrap.servers: '127.0.0.1:{port + 2}'}}}}\n")
        refused = subprocess.run([".venv/bin/python", "-m", "coinstream", "run", "--config", str(elsewhere)],
                                 cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 69
        assert refused.stderr.splitlines() == [
            f"coinstream run: error: the bundled Kafka broker runs on 127.0.0.1:{port}, but "
            f"kafka.producer.bootstrap.servers says 127.0.0.1:{port + 2}: stop it (make kafka-stop) "
            "or point the config at it"]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(timeout=60)
        broker.stop()
