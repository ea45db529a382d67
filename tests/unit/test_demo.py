"""What `coinstream demo` prints to try next. With its default ports, the make targets
need no --config: they read the default config, whose Kafka address and /metrics ports
are the demo's. tests/integration/test_demo.py runs the demo, and those commands."""

import subprocess
import sys
from pathlib import Path

from coinstream import demo
from shared import config as configuration
from tests.harness import ROOT, wait_until


def test_default_ports_give_the_plain_make_commands() -> None:
    defaults = configuration.load(None)
    assert defaults.kafka.producer["bootstrap.servers"] == f"127.0.0.1:{demo.DEFAULT_KAFKA_PORT}"
    assert min(defaults.metrics.ports.values()) == configuration.FIRST_METRICS_PORT
    lines = demo.next_steps(True, {"kraken": 40123}).splitlines()
    for command in ("make status", 'make live ARGS="--base BTC"',
                    ".venv/bin/supervisorctl -c supervisord.conf restart kraken",
                    "curl '127.0.0.1:40123/_sim/fault?kind=close'"):
        assert f"    {command}" in lines


def test_other_ports_give_the_demo_config() -> None:
    lines = demo.next_steps(False, {"kraken": 40123}).splitlines()
    assert '    make status ARGS="--config run/demo.yaml"' in lines
    assert '    make live ARGS="--config run/demo.yaml --base BTC"' in lines


def test_what_the_demo_starts_stops_when_the_demo_is_killed() -> None:
    """kill -9 of `coinstream demo` (or of a test run that started one) left its simulator
    and supervisord, and so the ten workers, running as orphans: its handlers never ran.
    A child started as the demo starts them gets SIGTERM when its parent dies (without
    dies_with_the_demo, this child ran on: seen failing)."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, time\n"
         "from coinstream.demo import dies_with_the_demo\n"
         "child = subprocess.Popen(['sleep', '60'], start_new_session=True, preexec_fn=dies_with_the_demo)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert running(child)
    parent.kill()
    parent.wait()
    wait_until(lambda: not running(child), 5, "the demo's child to stop")


def running(pid: int) -> bool:
    """Whether `pid` runs: neither gone nor a zombie nobody reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
