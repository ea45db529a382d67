"""What `coinstream demo` prints to try next. With its default ports, the make targets
need no --config: they read the default config, whose Kafka address and /metrics ports
are the demo's. tests/integration/test_demo.py runs the demo, and those commands."""

from coinstream import demo
from shared import config as configuration


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
