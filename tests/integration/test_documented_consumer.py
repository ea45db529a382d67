"""The documented Python consumer (docs/record.md, "Reading it in Python", which the
README's "Reading the data" links to), run as a reader would run it, on
what a worker published from the simulator into the real broker: two runs of the
Binance worker, then one repeated record and one record that skips two seqs. It must
name each run with its records and its missing seqs, as `coinstream verify` counts them,
and end while records keep arriving, as beside a running collector (it read until 10 s
passed without a record: never, with a record every 0.1 s)."""

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from tests.harness import ROOT, Simulator, WorkerProcess, audited, consume, override_file, run_sizes

pytestmark = pytest.mark.integration

README_BOOTSTRAP = "127.0.0.1:19092"
README_TOPIC = "coinstream.ticker"
REPORT_LINE = re.compile(r"^(\w+) (\w+): (\d+) records, (\d+) missing$")
FLOWING_RUN = "flowing"


def documented_consumer(bootstrap: str, topic: str) -> str:
    """The documented consumer, pointed at the test's broker and topic (it names the default ones)."""
    section = (ROOT / "docs" / "record.md").read_text().split("## Reading it in Python", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert code.count(f'"{README_BOOTSTRAP}"') == 1 and code.count(f'"{README_TOPIC}"') == 1, code
    return code.replace(f'"{README_BOOTSTRAP}"', f'"{bootstrap}"').replace(f'"{README_TOPIC}"', f'"{topic}"')


def run_consumer(code: str, workdir: Path) -> dict[str, tuple[str, int, int]]:
    """run -> (exchange, records, missing), from the consumer's output."""
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = {}
    for line in done.stdout.splitlines():
        match = REPORT_LINE.match(line)
        assert match, f"not a report line: {line!r}\n{done.stdout}"
        exchange, run, records, missing = match.groups()
        report[run] = (exchange, int(records), int(missing))
    return report


@contextmanager
def records_flowing(kafka: str, topic: str, template: dict[str, Any], before: int) -> Iterator[None]:
    """`before` records of a run of their own in `topic`, then one more every 10 ms until
    the block ends, as a running collector writes them."""
    producer = Producer({"bootstrap.servers": kafka})
    key = f"{template['exchange']}:{template['symbol']}".encode()

    def write(seq: int) -> None:
        producer.produce(topic, json.dumps({**template, "run": FLOWING_RUN, "seq": seq}).encode(), key)

    for seq in range(1, before + 1):
        write(seq)
    assert producer.flush(30) == 0
    stop = threading.Event()

    def keep_writing() -> None:
        seq = before
        while not stop.wait(0.01):
            seq += 1
            write(seq)
            producer.poll(0)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        producer.flush(30)


def test_documented_consumer_reports_each_run(kafka: str, simulator: Callable[..., Simulator],
                                          worker: Callable[..., WorkerProcess], tmp_path: Path) -> None:
    sim = simulator("binance", rate=50, markets=5)
    config = override_file(tmp_path, kafka, {"binance": sim.config["exchanges"]["binance"]})
    topic = yaml.safe_load(config.read_text())["topics"]["ticker"]
    for wanted in (200, 400):  # two runs, each stopped as supervisorctl stops it
        process = worker("binance", config)
        consume(kafka, topic, lambda messages: len(messages) >= wanted, timeout_s=60)
        assert process.stop() == 0, process.log()
    sizes = run_sizes(audited(kafka, topic))
    assert len(sizes) == 2

    code = documented_consumer(kafka, topic)
    assert run_consumer(code, tmp_path) == {run: ("binance", records, 0) for run, records in sizes.items()}

    # A record delivered twice, and one whose two predecessors never arrived.
    [(_, first), *_] = consume(kafka, topic, lambda messages: len(messages) >= 1)
    last = {**first, "seq": sizes[first["run"]] + 3}
    producer = Producer({"bootstrap.servers": kafka})
    for record in (first, last):
        producer.produce(topic, json.dumps(record).encode(), f"binance:{record['symbol']}".encode())
    assert producer.flush(30) == 0
    expected = {run: ("binance", records, 0) for run, records in sizes.items()}
    expected[first["run"]] = ("binance", sizes[first["run"]] + 1, 2)
    assert run_consumer(code, tmp_path) == expected

    # Records still arriving: it reads what the topic held at its start, and ends.
    with records_flowing(kafka, topic, first, before=100):
        report = run_consumer(code, tmp_path)
    exchange, records, missing = report.pop(FLOWING_RUN)
    assert (exchange, missing) == ("binance", 0) and records >= 100
    assert report == expected
