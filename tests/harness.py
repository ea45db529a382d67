"""Real parts for integration tests: the local Kafka broker, the exchange simulator in
its own process, worker processes, and a consumer that reads what they produced."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from shared import config as configuration
from coinstream import topics, verify
from simulator.core import free_listening_port

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = ROOT / "kafka" / "kafka-local.sh"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different free ports: all held at once while chosen, since a port closed
    again may be the kernel's very next answer."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (the demo's ten /metrics ports, a
    broker's port and its controller's), from below the kernel's ephemeral range."""
    while True:
        first = free_listening_port()
        probes = [socket.socket() for _ in range(count)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1,
               last_seen: Callable[[], str] | None = None) -> Any:
    """condition()'s first true value; on timeout, an AssertionError naming `what` and, with
    last_seen, what it returns then (the state that was never right)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; last seen:\n{last_seen()}" if last_seen else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{seen}")
        time.sleep(interval_s)


class Broker:
    """A single-node KRaft broker from kafka/kafka-local.sh, on free ports; with
    sasl_password, also a SASL_PLAINTEXT listener (PLAIN, user "coinstream") at sasl_bootstrap."""

    def __init__(self, run_dir: Path, sasl_password: str | None = None) -> None:
        self.env = dict(os.environ, KAFKA_PORT=str(free_listening_port()),
                        KAFKA_CONTROLLER_PORT=str(free_listening_port()),
                        KAFKA_RUN_DIR=str(run_dir))
        self.bootstrap = ""
        self.sasl_bootstrap = ""
        if sasl_password is not None:
            self.env.update(KAFKA_SASL_PORT=str(free_listening_port()), KAFKA_SASL_PASSWORD=sasl_password)
            self.sasl_bootstrap = f"127.0.0.1:{self.env['KAFKA_SASL_PORT']}"

    def start(self, fresh: bool = True) -> str:
        out = subprocess.run([str(KAFKA_LOCAL), "start", *(["--fresh"] if fresh else [])], env=self.env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise AssertionError(f"kafka-local.sh start failed ({out.returncode}): {out.stderr[-3000:]}")
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        subprocess.run([str(KAFKA_LOCAL), "stop"], env=self.env, capture_output=True, timeout=120)

    def configs(self, *args: str) -> None:
        """Kafka's kafka-configs tool against this broker (quotas, dynamic configs)."""
        out = subprocess.run([str(KAFKA_LOCAL), "configs", *args], env=self.env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise AssertionError(f"kafka-configs {' '.join(args)} failed ({out.returncode}): {out.stderr[-3000:]}")


class Cluster:
    """Three KRaft nodes (broker and controller each) from `kafka/kafka-local.sh cluster`, on free ports.

    Nodes are numbered 1, 2, 3, as Kafka's node ids are."""

    NODES = (1, 2, 3)

    def __init__(self, run_dir: Path) -> None:
        ports = free_ports(2 * len(self.NODES))
        clients, controllers = ports[:len(self.NODES)], ports[len(self.NODES):]
        self.env = dict(os.environ, KAFKA_CLUSTER_DIR=str(run_dir),
                        KAFKA_CLUSTER_PORTS=",".join(map(str, clients)),
                        KAFKA_CLUSTER_CONTROLLER_PORTS=",".join(map(str, controllers)))
        self.bootstrap = ",".join(f"127.0.0.1:{port}" for port in clients)
        # Its connection errors while nodes are down go to logging, not to the test output.
        self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": logging.getLogger("tests.cluster")})

    def _run(self, *args: str) -> str:
        out = subprocess.run([str(KAFKA_LOCAL), "cluster", *args], env=self.env, capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            raise AssertionError(f"kafka-local.sh cluster {' '.join(args)} failed ({out.returncode}): "
                                 f"{out.stderr[-3000:]}")
        return out.stdout.strip()

    def start(self, node: int | None = None, fresh: bool = False) -> str:
        """Start every node not running (or one), and wait until each started is ready."""
        self._run("start", *(["--fresh"] if fresh else []), *([str(node)] if node else []))
        return self.bootstrap

    def stop(self, node: int | None = None) -> None:
        """SIGTERM: controlled shutdown (leadership handed over first), then exit."""
        self._run("stop", *([str(node)] if node else []))

    def kill(self, node: int) -> None:
        self._run("kill", str(node))

    def freeze(self, node: int) -> None:
        self._run("freeze", str(node))

    def thaw(self, node: int) -> None:
        self._run("thaw", str(node))

    def controller(self) -> int:
        """The active KRaft controller's node."""
        return int(self._run("controller"))

    def partitions(self, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
        """partition -> (leader, replicas, in-sync replicas), as the cluster's metadata says now."""
        metadata = self._admin.list_topics(topic, timeout=10).topics[topic]
        return {number: (partition.leader, list(partition.replicas), list(partition.isrs))
                for number, partition in metadata.partitions.items()}

    def create_topic(self, name: str, leader: int, partitions: int, min_insync: int,
                     topic_config: dict[str, str] | None = None) -> None:
        """A topic replicated on every node whose partitions all prefer `leader`, so that one
        fault on that node takes the leader of every partition a producer writes to."""
        others = [node for node in self.NODES if node != leader]
        assignment = [[leader, *(others if number % 2 == 0 else others[::-1])] for number in range(partitions)]
        topic = NewTopic(name, num_partitions=partitions, replication_factor=-1, replica_assignment=assignment,
                         config={"min.insync.replicas": str(min_insync), **(topic_config or {})})
        self._admin.create_topics([topic], operation_timeout=60, request_timeout=60)[name].result(90)

    def await_healthy(self, topics: list[str], timeout_s: float = 90) -> None:
        """Every node up, and every partition of `topics` led with all its replicas in sync.
        (Its leader may not be the preferred one: a restarted node takes leadership back only
        at the cluster's next leader rebalance, in up to 5 minutes.)"""
        def healthy() -> bool:
            if subprocess.run([str(KAFKA_LOCAL), "cluster", "status"], env=self.env,
                              capture_output=True).returncode != 0:
                return False
            try:
                return all(leader >= 0 and sorted(isrs) == sorted(replicas)
                           for topic in topics for leader, replicas, isrs in self.partitions(topic).values())
            except KafkaException:
                return False
        wait_until(healthy, timeout_s, f"the cluster healthy (every node up, {topics} fully in sync)", interval_s=0.5)


class Simulator:
    """`python -m simulator` in its own process, as a user would run it."""

    def __init__(self, workdir: Path, exchanges: list[str], rate: float, markets: int, journal: bool = True,
                 edge_shapes: bool = True) -> None:
        """edge_shapes False: the common ticker shape only (the benchmarks' load)."""
        self.config_path = workdir / "simulator.yaml"
        self.journal_dir = workdir / "journal"
        self.log_path = workdir / "simulator.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulator", *[arg for name in exchanges for arg in ("--exchange", name)],
             "--rate", str(rate), "--markets", str(markets), "--write-config", str(self.config_path),
             *(["--journal-dir", str(self.journal_dir)] if journal else []),
             *([] if edge_shapes else ["--no-edge-shapes"])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("simulator: ready "):
                self.ports: dict[str, int] = json.loads(line.split("ready ", 1)[1])
                break
        else:
            raise AssertionError(f"simulator did not start: {self.log_path.read_text()}")
        self.config: dict[str, Any] = yaml.safe_load(self.config_path.read_text())

    def control(self, exchange: str, command: str, **params: Any) -> dict[str, Any]:
        response = requests.get(f"http://127.0.0.1:{self.ports[exchange]}/_sim/{command}", params=params, timeout=10)
        return dict(response.json())

    def fault(self, exchange: str, kind: str, **params: Any) -> dict[str, Any]:
        result = self.control(exchange, "fault", kind=kind, **params)
        assert result.get("ok") == kind, result
        return result

    def journal(self, exchange: str) -> list[str]:
        path = self.journal_dir / f"{exchange}.jsonl"
        return path.read_text().splitlines() if path.exists() else []

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def override_file(workdir: Path, bootstrap: str, exchange_sections: dict[str, Any],
                runtime: dict[str, Any] | None = None, topic_settings: dict[str, Any] | None = None,
                create_topics: bool = True) -> Path:
    """An override file: the simulator's endpoints, the test broker, and topics of its own
    (created unless create_topics is false; topic_settings adds to the `topics:` section)."""
    tag = uuid.uuid4().hex[:8]
    runtime = {"watchdog_s": 5, "rest_fallback_after_s": 2, "rest_poll_interval_s": 0.5,
               "backoff_initial_s": 0.2, "backoff_max_s": 1, "stats_interval_s": 5,
               "stop_timeout_s": 10, "rest_timeout_s": 3, **(runtime or {})}
    # Also under each exchange: a shipped per-exchange runtime (Korbit's watchdog_s)
    # would otherwise win over the test's. Tickers only, unless the section asks for
    # books (tests/integration/test_books.py): the ticker tests count the ticker's records.
    exchange_sections = {name: {"channels": ["ticker"], **section, "runtime": runtime}
                         for name, section in exchange_sections.items()}
    override = {
        "kafka": {"producer": {"bootstrap.servers": bootstrap, "linger.ms": 5},
                  "spool": {"dir": str(workdir / f"spool-{tag}")}},
        "topics": {"ticker": f"test.{tag}.ticker", "dead_letter": f"test.{tag}.dead-letter",
                   "book": f"test.{tag}.book", "partitions": 3,
                   **(topic_settings or {})},
        "runtime": runtime,
        "exchanges": exchange_sections,
        # Ports of its own: tests (and a developer's collector) run side by side.
        "metrics": {"ports": dict(zip(exchange_sections, free_ports(len(exchange_sections))))},
    }
    path = workdir / f"coinstream-{tag}.yaml"
    path.write_text(yaml.safe_dump(override))
    # Patient: on this 2-core VM the test brokers' controllers have been seen to stall for
    # 10 s and more, all at once, while other tests load the machine; creating a test's
    # topics is its setup, not what it tests.
    if create_topics:
        topics.ensure(configuration.load(path), timeout_s=90)
    return path


class WorkerProcess:
    """`python -m workers.<exchange>`, exactly as supervisord runs it.

    `module` runs another program with the same arguments instead (bench.ceiling).
    """

    def __init__(self, exchange: str, config_path: Path, workdir: Path, *extra: str, module: str = "") -> None:
        self.exchange = exchange
        self.log_path = workdir / f"{exchange}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module or f"workers.{exchange}", "--config", str(config_path), *extra],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def counters(self) -> str:
        """The last counters line the worker logged: its final one, once it has stopped."""
        return [line for line in self.log().splitlines() if " counters " in line][-1]

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout_s)
        self._log.close()
        return code


def consume(bootstrap: str, topic: str, until: Callable[[list[tuple[str, dict[str, Any]]]], bool],
            timeout_s: float = 30) -> list[tuple[str, dict[str, Any]]]:
    """Read `topic` from the beginning until `until(messages)` holds; (key, value) pairs.

    What the records are, not whether every run is whole: that is audited().
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s reading {topic}: {len(messages)} messages")
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error():
                    continue
                messages.append(((message.key() or b"").decode(), json.loads(message.value())))
    finally:
        consumer.close()
    return messages


def audited(bootstrap: str, topic: str, ended: bool = True) -> verify.Report:
    """`coinstream verify` over the whole topic, as a user runs it: every run complete from
    seq 1, nothing repeated or out of order. ended False while a worker still runs: the
    newest run's tail may be on its way."""
    report = verify.audit({"bootstrap.servers": bootstrap}, [topic], ended=ended)
    assert report.ok, "\n".join(report.text())
    return report


def run_sizes(report: verify.Report, exchange: str | None = None) -> dict[str, int]:
    """Records per run (of one exchange), as audited."""
    return {run.run: run.records for run in report.runs if exchange in (None, run.exchange)}


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages in `topic` now (sum of high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"size-{uuid.uuid4().hex}"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


def fresh_checkout(destination: Path) -> Path:
    """This working tree's files as a fresh clone would have them (tracked, or new and
    not ignored), with the .venv linked in: `supervisord -c supervisord.conf`,
    `coinstream run` and `coinstream demo` run there as a user runs them, without
    touching this checkout's logs/, run/ or a collector running from it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination


def processes_of(path: Path) -> dict[int, str]:
    """pid -> command line of every process running in `path` or naming it in its command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if str(path) in command or Path(cwd).is_relative_to(path):
            found[int(proc.name)] = command
    return found
