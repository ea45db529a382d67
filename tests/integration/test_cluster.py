"""Failover on a real three-node Kafka cluster (kafka-local.sh cluster): replication factor
3, min.insync.replicas 2, acks=all with the idempotent producer, as users run it.

Each test runs the Binance worker from the simulator at RATE msg/s into a topic of its own
whose partitions all prefer one node as leader, injects one fault, waits until the worker
has caught up, stops it (SIGTERM) and audits the whole topic with coinstream verify:
nothing lost, nothing repeated, nothing out of order. The worker's /metrics, read every
SAMPLE_S, give the longest time no delivery came and the records/s through the fault;
verify gives the longest any record waited from its receipt to the log (the topics use
LogAppendTime). One cluster serves them all; they run one after another (xdist group
"cluster").
"""

import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests

from coinstream import topic_health, topics, verify
from coinstream.status import parse_metrics
from shared import config as configuration
from shared.sink import KafkaSink
from shared.stats import Stats
from tests.harness import ROOT, Cluster, WorkerProcess, override_file, wait_until
from tests.integration.test_kafka_outage import final_counters

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("cluster")]

EXCHANGE = "binance"
RATE = 3000.0
MARKETS = 20
SAMPLE_S = 0.2
LEADER_DOWN_S = 30.0
BELOW_MIN_ISR_S = 20.0
REPLACEMENTS = re.compile(r"producer_replacements=(\d+)")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the whole group, for the session: the xdist worker that runs the
    group runs other tests between them, and a module's fixture would start anew each time."""
    own = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        own.start(fresh=True)
        yield own
    finally:
        own.stop()


@dataclass
class Sample:
    at: float
    records: float
    delivered: float
    queued: float
    spool_bytes: float


class Sampler(threading.Thread):
    """The worker's counters every SAMPLE_S, from its /metrics."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            try:
                scrape = parse_metrics(requests.get(self.url, timeout=1).text, time.monotonic())
            except (requests.RequestException, ValueError):
                continue  # a slow answer: the next sample tells
            self.samples.append(Sample(scrape.at, scrape.total("coinstream_records_total") or 0,
                                       scrape.total("coinstream_kafka_delivered_total") or 0,
                                       scrape.total("coinstream_kafka_queue_depth") or 0,
                                       scrape.total("coinstream_spool_bytes") or 0))

    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def caught_up(self) -> bool:
        """Nothing spooled, and no more queued than 0.1 s of the feed (a flowing producer
        always has a few batches on their way)."""
        last = self.last()
        return last is not None and last.spool_bytes == 0 and last.queued <= RATE / 10

    def between(self, start: float, end: float) -> list[Sample]:
        return [sample for sample in self.samples if start <= sample.at <= end]

    def longest_stall_s(self, start: float, end: float) -> float:
        """The longest stretch in [start, end] over which the delivered count stood still."""
        window = self.between(start, end)
        longest, since = 0.0, window[0].at if window else start
        for earlier, later in zip(window, window[1:]):
            if later.delivered > earlier.delivered:
                longest = max(longest, later.at - since)
                since = later.at
        return max(longest, (window[-1].at - since) if window else 0.0)

    def resumed_s(self, at: float) -> float:
        """Seconds from `at` until deliveries moved again; 0 when they were moving then."""
        before = [sample for sample in self.samples if sample.at <= at][-2:]
        if len(before) == 2 and before[1].delivered > before[0].delivered:
            return 0.0
        standing = before[-1].delivered if before else 0.0
        moved = next((sample.at for sample in self.samples if sample.at > at and sample.delivered > standing), at)
        return moved - at

    def delivered_per_s(self, start: float, end: float) -> float:
        window = self.between(start, end)
        if len(window) < 2:
            return 0.0
        return (window[-1].delivered - window[0].delivered) / (window[-1].at - window[0].at)


@dataclass
class Through:
    """What a fault did to one worker's delivery."""

    fault: str
    records: int
    lost: int
    repeats: int
    out_of_order: int
    stall_s: float  # longest time with no delivery at all
    max_wait_ms: float  # longest a record waited from receipt to the log
    fault_per_s: float  # records/s delivered while the fault lasted
    through_per_s: float  # from the fault's start until the worker caught up
    resumed_s: float  # from the fault's end until deliveries moved again (0: they were moving)
    catch_up_s: float  # from the fault's end until nothing was queued or spooled
    spooled: int
    replacements: int

    def line(self) -> str:
        return (f"{self.fault}: {self.records:,} records, lost {self.lost}, repeated {self.repeats}, "
                f"out of order {self.out_of_order}; longest stall {self.stall_s:.1f} s, longest wait "
                f"{self.max_wait_ms / 1000:.1f} s; {self.fault_per_s:,.0f} records/s during the fault, "
                f"{self.through_per_s:,.0f} through it (offered {RATE:,.0f}); deliveries resumed "
                f"{self.resumed_s:.1f} s and all caught up {self.catch_up_s:.1f} s after its end; "
                f"spooled {self.spooled:,}; producer replacements (#5430) {self.replacements}")


def not_controller(cluster: Cluster) -> int:
    """A node other than the active controller: a leader's fault then stays the leader's alone."""
    cluster.await_healthy([])
    controller = cluster.controller()
    return next(node for node in Cluster.NODES if node != controller)


def through_fault(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path, leader: int, name: str,
                  fault: Callable[[configuration.Config], None],
                  expect_no_acks: tuple[float, float] | None = None) -> Through:
    """Run the worker, `fault(the test's config)`, catch up, stop, audit. expect_no_acks=(a, b):
    no record may be acknowledged from a to b seconds after the fault began."""
    sim = simulator(EXCHANGE, rate=RATE, markets=MARKETS, journal=False)
    # No REST fallback and no watchdog: the exchange side stays steady, only Kafka fails.
    config_path = override_file(tmp_path, cluster.bootstrap, sim.config["exchanges"],
                                {"stats_interval_s": 1, "rest_fallback_after_s": 3600, "watchdog_s": 3600},
                                topic_settings={"replication_factor": 3, "min_insync_replicas": 2},
                                create_topics=False)
    config = configuration.load(config_path)
    ticker, dead_letter = config.topics.ticker, config.topics.dead_letter
    assert config.topics.min_insync_replicas == 2
    # The ticker topic from the config's settings with its partitions' leader chosen, and
    # LogAppendTime so that verify measures each record's wait; the rest as users create it.
    cluster.create_topic(ticker, leader, config.topics.partitions, config.topics.min_insync_replicas,
                         {"message.timestamp.type": "LogAppendTime"})
    created = topics.ensure(config, timeout_s=90)
    assert f"created {dead_letter} partitions=3 replication=3 min.insync=2" in created, created
    cluster.await_healthy([ticker, dead_letter])
    assert {leader_now for leader_now, _, _ in cluster.partitions(ticker).values()} == {leader}

    process: WorkerProcess = worker(EXCHANGE, config_path)
    sampler = Sampler(f"http://127.0.0.1:{config.metrics.ports[EXCHANGE]}/metrics")
    sampler.start()
    try:
        wait_until(lambda: (last := sampler.last()) is not None and last.delivered >= RATE, 60,
                   "the worker delivering")
        began = time.monotonic()
        fault(config)
        ended = time.monotonic()
        assert process.process.poll() is None, "the worker exited during the fault"
        wait_until(sampler.caught_up, 180, "the worker to catch up")
        caught_up = time.monotonic()
    finally:
        sampler.done.set()
        sampler.join()
    assert process.process.poll() is None, "the worker exited"
    sim.control(EXCHANGE, "rate", per_s=0)
    try:
        # Within supervisord's stopwaitsecs (30 s), as in production.
        assert process.stop() == 0
    except subprocess.TimeoutExpired:
        events = [line for line in process.log().splitlines() if " counters " not in line]
        raise AssertionError("the worker did not stop within 30 s of SIGTERM; its last events:\n"
                             + "\n".join(events[-20:])) from None
    counters = final_counters(process.log())
    replacements = int(REPLACEMENTS.findall(process.log())[-1])
    if expect_no_acks:
        quiet = sampler.between(began + expect_no_acks[0], began + expect_no_acks[1])
        assert quiet and quiet[-1].delivered == quiet[0].delivered, \
            f"records acknowledged below min.insync.replicas: {quiet[0].delivered:.0f} -> {quiet[-1].delivered:.0f}"

    report = verify.audit({"bootstrap.servers": cluster.bootstrap}, [ticker], ended=True)
    runs = report.runs_of(EXCHANGE)
    assert len(runs) == 1, [run.run for run in runs]
    run = runs[0]
    through = Through(
        name, run.records, run.lost, run.repeats, run.out_of_order, sampler.longest_stall_s(began, caught_up),
        run.max_wait_ms or 0.0, sampler.delivered_per_s(began, ended), sampler.delivered_per_s(began, caught_up),
        sampler.resumed_s(ended), caught_up - ended, counters["spooled"], replacements)
    print(f"\n{through.line()}")
    assert report.ok, "\n".join(report.text())
    assert counters["failures"] == 0 and counters["dropped"] == 0, counters
    assert run.records == counters["records"] == counters["delivered"], counters
    assert run.first_seq == 1 and run.last_seq == run.records
    return through


def test_leader_killed_and_back_after_30_s(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path) -> None:
    leader = not_controller(cluster)

    def fault(config: configuration.Config) -> None:
        killed_at = time.monotonic()
        cluster.kill(leader)
        # Once the controller has fenced the node, status shows every partition with 2 of 3 in sync.
        health = wait_until(lambda: next((topic for topic in topic_health.collect(config)  # type: ignore[union-attr]
                                          if topic.topic == config.topics.ticker and topic.under_replicated == 3),
                                         None), 25, "the ticker topic under-replicated")
        assert health.row()[1:] == ["3", "2/3", "2", "3", "0", "0", "3 under-replicated"], health.row()
        shown = subprocess.run([sys.executable, "-m", "coinstream", "status", "--config", str(config.source_files[-1]),
                                "--window", "0.1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 1 and re.search(rf"^{re.escape(config.topics.ticker)} .*3 under-replicated$",
                                                   shown.stdout, re.MULTILINE), shown.stdout
        unhealthy = re.search(r"^unhealthy topics: (.*)$", shown.stdout, re.MULTILINE)
        assert unhealthy and {config.topics.dead_letter, config.topics.ticker} <= set(unhealthy.group(1).split(", ")), \
            shown.stdout  # the book topic too, where it was created
        time.sleep(max(0.0, LEADER_DOWN_S - (time.monotonic() - killed_at)))
        cluster.start(leader)

    through = through_fault(cluster, simulator, worker, tmp_path, leader, "leader SIGKILLed, back after 30 s", fault)
    # The controller fences a silent broker after broker.session.timeout.ms (9 s) and
    # elects new leaders from the in-sync followers; the worker resumes there.
    assert through.stall_s < LEADER_DOWN_S


def test_leader_frozen_for_30_s(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path) -> None:
    leader = not_controller(cluster)

    def fault(_: configuration.Config) -> None:
        cluster.freeze(leader)
        time.sleep(LEADER_DOWN_S)
        cluster.thaw(leader)

    through_fault(cluster, simulator, worker, tmp_path, leader, "leader SIGSTOPped 30 s, then SIGCONT", fault)


def test_active_controller_killed(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path) -> None:
    # The partitions' leader is another node: this fault is the controller's alone.
    leader = not_controller(cluster)
    controller = cluster.controller()
    elected: list[float] = []

    def fault(_: configuration.Config) -> None:
        killed_at = time.monotonic()
        cluster.kill(controller)
        wait_until(lambda: cluster.controller() != controller, 60, "a new active controller", interval_s=0.2)
        elected.append(time.monotonic() - killed_at)
        time.sleep(2)  # the worker goes on under the new controller
        cluster.start(controller)

    through_fault(cluster, simulator, worker, tmp_path, leader, "active controller SIGKILLed", fault)
    print(f"new controller elected {elected[0]:.1f} s after the kill")


def test_rolling_restart_of_all_three_nodes(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path) -> None:
    def fault(config: configuration.Config) -> None:
        for node in Cluster.NODES:
            cluster.stop(node)
            cluster.start(node)
            cluster.await_healthy(config.all_topics())  # back, and in sync again, before the next goes

    through_fault(cluster, simulator, worker, tmp_path, 1, "rolling restart (SIGTERM, start, in sync; x3)", fault)


def test_two_of_three_nodes_down_for_20_s(cluster: Cluster, simulator: Any, worker: Any, tmp_path: Path) -> None:
    leader = not_controller(cluster)
    other = next(node for node in Cluster.NODES if node != leader)
    probed: list[bool] = []

    def fault(config: configuration.Config) -> None:
        killed_at = time.monotonic()
        cluster.kill(leader)
        cluster.kill(other)
        time.sleep(5)
        # The sink's stuck-producer probe must see the outage: the survivor's metadata still
        # names the dead leaders (no controller is left to elect others). It used to take
        # that for a led cluster and replace the producer mid-outage, then resend records
        # it could not check against Kafka: 409 and 165 repeats in two of three runs.
        probe = KafkaSink(config.kafka.producer, config.topics.ticker, config.topics.dead_letter,
                          msgspec.structs.replace(config.kafka.spool, dir=str(tmp_path / "probe-spool")),
                          EXCHANGE, Stats(), logging.getLogger("test.cluster.probe"))
        probed.append(probe._every_partition_led())
        probe.close(1)
        time.sleep(max(0.0, BELOW_MIN_ISR_S - (time.monotonic() - killed_at)))
        cluster.start()  # both, together: alone, neither has a quorum of controllers

    # From 3 s in (acks of what was in flight) to the end of the 20 s: nothing acknowledged.
    through = through_fault(cluster, simulator, worker, tmp_path, leader, "two of three nodes SIGKILLed for 20 s",
                            fault, expect_no_acks=(3.0, BELOW_MIN_ISR_S))
    assert probed == [False], "the stuck-producer probe took a cluster without a quorum for a led one"
    assert through.spooled > 0, "the wait outgrew librdkafka's queue and went on in the spool"
