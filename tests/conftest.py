"""Fixtures: one real Kafka broker per test session, simulators and workers per test.

The broker comes from kafka/kafka-local.sh on free ports with a fresh data directory.
COINSTREAM_TEST_BOOTSTRAP=host:port reuses a broker that is already running instead
(handy while developing; CI always starts its own).
"""

import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.book_channel import BookChannel
from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.venue import Market, Venue
from shared.worker import Worker
from simulator.core import LISTEN_PORTS_ENV, listening_port_range
from tests.harness import Broker, Simulator, WorkerProcess, fresh_checkout, processes_of

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def own_listening_ports() -> None:
    """Under xdist, each test process picks listening ports (brokers, simulators) from a
    share of the range of its own, inherited by the processes it starts: a test that
    stops its broker for an outage restarted it on a port another process's simulator
    had taken meanwhile ("port already in use")."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return
    first, last = listening_port_range()
    share = (last - first) // count
    start = first + int(worker[2:]) * share
    # Short of the share's end by a run of ports (harness.free_port_run: the demo's ten).
    os.environ[LISTEN_PORTS_ENV] = f"{start}-{start + share - 32}"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reuse = os.environ.get("COINSTREAM_TEST_BOOTSTRAP")
    if reuse:
        yield reuse
        return
    broker = Broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(*exchanges: str, rate: float = 20, markets: int = 5, journal: bool = True,
              edge_shapes: bool = True) -> Simulator:
        workdir = tmp_path / f"sim{len(started)}"
        workdir.mkdir()
        sim = Simulator(workdir, list(exchanges), rate, markets, journal, edge_shapes)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(exchange: str, config_path: Path, *extra: str) -> WorkerProcess:
        process = WorkerProcess(exchange, config_path, tmp_path, *extra)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def fixture_bytes(exchange: str, name: str) -> bytes:
    return (FIXTURES / exchange / name).read_bytes()


def book_worker(venue: Venue, symbols: list[str]) -> tuple[Worker, BookChannel, list[Market]]:
    """A worker collecting the top-1 books of `symbols` on `venue` to stdout, its book
    channel and their markets; its loop, made here, runs only when the test runs it (the
    timers a resubscribe schedules). The caller closes the loop and the sink."""
    exchange = ExchangeConfig(ws_url=venue.ws_base, rest_url=venue.rest_base, symbols=symbols[:1], channels=["book"])
    stats = Stats()
    worker = Worker(venue, exchange, Runtime(), StdoutSink(stats), stats, logging.getLogger("coinstream.test"))
    markets = [venue.market(*symbol.split("-")) for symbol in symbols]
    books = worker.books = BookChannel(worker, markets, 1)
    worker.loop = asyncio.new_event_loop()
    return worker, books, markets


def json_shape(payload: str | bytes) -> object:
    """The keys of a JSON payload in their order, nested, and the JSON type of each
    value (of a list, its first item's): what a simulated frame must share with a real one."""
    def shape(node: object) -> object:
        if isinstance(node, dict):
            return [(key, shape(value)) for key, value in node.items()]
        if isinstance(node, list):
            return [shape(node[0])] if node else []
        return "number" if isinstance(node, (int, float)) and not isinstance(node, bool) else type(node).__name__
    return shape(json.loads(payload))


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A fresh checkout (tests.harness.fresh_checkout) at a short path: supervisord's unix
    socket, run/supervisor.sock, needs one under 108 bytes, which pytest's tmp_path under
    xdist is not. Afterwards, whatever a failed test left running in it is killed."""
    top = Path(tempfile.mkdtemp(prefix="coinstream-"))
    try:
        yield fresh_checkout(top / "coinstream")
    finally:
        for pid in processes_of(top):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(top, ignore_errors=True)
