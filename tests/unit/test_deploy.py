"""deploy/: the Prometheus scrape config, the Grafana dashboard and the systemd unit load,
and agree with the code: scrape targets are the configured metrics ports, and every
dashboard expression names only metrics a worker exports."""

import configparser
import json
import re

import yaml

from shared import config as configuration
from tests.harness import ROOT
from tests.unit.test_metrics import exported_names

DEPLOY = ROOT / "deploy"
# Metric names in PromQL: ours and the process collector's (functions, labels and
# keywords have other names).
METRIC_NAME = re.compile(r"\b(?:coinstream|process)_[a-z0-9_]+\b")


def test_prometheus_scrapes_every_worker_at_its_configured_port() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    metrics = configuration.load(None).metrics
    targets = {group["labels"]["exchange"]: group["targets"] for group in job["static_configs"]}
    assert targets == {name: [f"{metrics.host}:{port}"] for name, port in metrics.ports.items()}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["panels"] and dashboard["uid"] and dashboard["title"]
    # A row panel (the book row's title) has no query.
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_uses_only_exported_metrics() -> None:
    exported = exported_names()
    for expression in dashboard_expressions():
        used = set(METRIC_NAME.findall(expression))
        assert used, f"no coinstream or process metric in {expression!r}"
        assert used <= exported, f"{expression!r} uses {sorted(used - exported)}, not exported"


def test_dashboard_covers_the_operating_questions() -> None:
    expressions = "\n".join(dashboard_expressions())
    for needed in ("rate(coinstream_records_total", "coinstream_ws_connected", "coinstream_seconds_since_last_record",
                   "sum by (exchange, reason) (increase(coinstream_reconnects_total", "coinstream_kafka_queue_depth",
                   "coinstream_kafka_delivery_failures_total",
                   "coinstream_kafka_ack_latency_seconds",
                   "histogram_quantile(0.99, sum by (exchange, le) "
                   "(rate(coinstream_kafka_delivery_report_latency_seconds_bucket",
                   "coinstream_spool_bytes", "process_resident_memory_bytes", "rate(process_cpu_seconds_total",
                   "increase(coinstream_spool_dropped_total", "increase(coinstream_kafka_producer_replacements_total",
                   "increase(coinstream_host_switches_total",
                   "rate(coinstream_book_records_total", "sum by (exchange, reason) (increase(coinstream_book_resyncs_total",
                   "coinstream_seconds_since_last_book", "rate(coinstream_book_conflated_total"):
        assert needed in expressions, needed


def test_systemd_unit_runs_supervisord_as_its_own_user() -> None:
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(DEPLOY / "coinstream.service")
    service = unit["Service"]
    assert service["User"] == "coinstream"
    assert service["WorkingDirectory"] == "/opt/coinstream"
    assert service["ExecStart"] == "/opt/coinstream/.venv/bin/supervisord -c /opt/coinstream/supervisord.conf"
    assert service["Environment"] == "COINSTREAM_CONFIG=/etc/coinstream/site.yaml"
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/coinstream/")
    assert (service["Restart"], service["LimitNOFILE"], service["KillMode"]) == ("on-failure", "65536", "control-group")
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    # systemd must wait longer than supervisord waits for a worker to stop, or it
    # would SIGKILL workers still flushing Kafka; and supervisord must stay in front.
    supervisor = configparser.RawConfigParser()
    supervisor.read(ROOT / "supervisord.conf")
    stop_waits = {int(supervisor[section]["stopwaitsecs"]) for section in supervisor.sections()
                  if section.startswith("program:")}
    assert int(service["TimeoutStopSec"]) > max(stop_waits)
    assert supervisor["supervisord"].getboolean("nodaemon")

