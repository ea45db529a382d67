"""deploy/alerts.yml: valid Prometheus rules (promtool check rules), each alert tested
with Prometheus's own rule tester on series shaped like the workers' (promtool test
rules tests/unit/alerts.test.yml), over metrics a worker really exports."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT
from tests.unit.test_deploy import METRIC_NAME
from tests.unit.test_metrics import exported_names

ALERTS = ROOT / "deploy" / "alerts.yml"
ALERT_TESTS = Path(__file__).parent / "alerts.test.yml"


def promtool(*args: str) -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: the alert rules are checked with Prometheus's own tool "
                    "(apt-get install -y prometheus; .ci/run installs it)")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def alert_rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_rules_are_valid() -> None:
    promtool("check", "rules", str(ALERTS))


def test_rules_pass_their_unit_tests() -> None:
    promtool("test", "rules", str(ALERT_TESTS))


def test_every_alert_is_seen_firing_in_its_tests() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_rules_use_only_exported_metrics() -> None:
    exported = exported_names()
    for rule in alert_rules():
        expression = str(rule["expr"])
        used = set(METRIC_NAME.findall(expression))
        assert used <= exported, f"{rule['alert']} uses {sorted(used - exported)}, not exported"
        assert used or expression.startswith('up{job="coinstream"}'), rule["alert"]
