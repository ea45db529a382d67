"""The sink's way out of a stuck librdkafka producer (shared.sink, STUCK_AFTER_S).

What gets a producer stuck (librdkafka issue #5430, after a broker restart that left a
partition leaderless) cannot be brought about on demand: 8 of 128 restarts of a worker
here. So its two parts are driven against the real broker one by one: the probe that tells
a stuck producer from a Kafka outage, and the replacement, which must neither lose,
repeat nor reorder a record.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared import config as configuration
from shared.log import KeptLines
from shared.record import DeadLetter, Ticker
from shared.sink import PROBE_TIMEOUT_S, KafkaSink
from shared.stats import Stats
from simulator.core import free_listening_port
from tests.harness import audited, override_file, run_sizes, wait_until

pytestmark = pytest.mark.integration

RECORDS = 20_000


def _sink(tmp_path: Path, bootstrap: str, producer: dict[str, Any] | None = None,
          ticker_topic: str | None = None) -> tuple[KafkaSink, str, KeptLines]:
    endpoints = {"binance": {"ws_url": "ws://127.0.0.1/x", "rest_url": "http://127.0.0.1"}}
    path = override_file(tmp_path, bootstrap, endpoints)
    config = configuration.load(path)
    lines = KeptLines()
    log = logging.getLogger(f"test.replacement.{path.stem}")
    log.addHandler(lines)
    topic = ticker_topic or config.ticker_topic("binance")
    sink = KafkaSink({**config.kafka.producer, **(producer or {})}, topic, config.topics.dead_letter,
                     config.kafka.spool, "binance", Stats(), log)
    return sink, topic, lines


def _ticker(number: int) -> Ticker:
    return Ticker("binance", f"C{number % 20}-USDT", f"C{number % 20}USDT", f"{number}.5", None, None, None, None,
                  None, None, None, None, None, None, time.time_ns(), "ws")


def test_the_probe_tells_a_led_cluster_from_an_unreachable_one_or_a_missing_topic(kafka: str, tmp_path: Path) -> None:
    sink, _, _ = _sink(tmp_path, kafka)
    # The topics were just created: on a loaded machine their leaders may take a moment.
    wait_until(sink._every_partition_led, 20, "a leader for every partition")
    missing, _, _ = _sink(tmp_path, kafka, ticker_topic="test.no-such-topic")
    assert not missing._every_partition_led()
    unreachable, _, _ = _sink(tmp_path, kafka, {"bootstrap.servers": f"127.0.0.1:{free_listening_port()}"})
    started = time.monotonic()
    assert not unreachable._every_partition_led()
    assert time.monotonic() - started < PROBE_TIMEOUT_S + 5


def test_a_replaced_producer_delivers_every_record_once_in_order(kafka: str, tmp_path: Path) -> None:
    # A long linger keeps most records queued when the producer is replaced.
    sink, topic, lines = _sink(tmp_path, kafka, {"linger.ms": 500})
    published_while_replacing = 0

    async def replace_while_publishing_then_serve() -> None:
        nonlocal published_while_replacing
        for number in range(RECORDS // 2):
            sink.publish([_ticker(number)])
        replacing = asyncio.create_task(sink._replace_producer(standing_s=0))
        # The loop is not held while the stuck producer's records are taken back: publishing goes on.
        for number in range(RECORDS // 2, RECORDS):
            if number % 500 == 0:
                await asyncio.sleep(0.01)
            published_while_replacing += sink._replacing
            sink.publish([_ticker(number)])
        await replacing
        serving = asyncio.create_task(sink.serve())
        deadline = time.monotonic() + 60
        while sink.stats.delivered < RECORDS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        serving.cancel()

    asyncio.run(replace_while_publishing_then_serve())
    sink.close(timeout_s=10)
    assert published_while_replacing > 0
    assert sink.stats.producer_replacements == 1
    [line] = [line for line in lines.lines if "librdkafka is stuck" in line]
    assert "could not be read" not in line
    assert sink.stats.delivered == RECORDS, line
    # Once each (a record sent by the old producer is found in Kafka, not sent again), and
    # in publish order within each partition.
    assert run_sizes(audited(kafka, topic)) == {sink.run: RECORDS}, line


def test_a_stop_during_the_replacement_keeps_every_record(kafka: str, tmp_path: Path) -> None:
    sink, topic, lines = _sink(tmp_path, kafka, {"linger.ms": 500})

    async def stop_while_replacing() -> None:
        for number in range(RECORDS):
            sink.publish([_ticker(number)])
        replacing = asyncio.create_task(sink._replace_producer(standing_s=0))
        await asyncio.sleep(0.05)
        assert sink._replacing
        replacing.cancel()  # as Worker.run cancels the sink's task on SIGTERM
        with pytest.raises(asyncio.CancelledError):
            await replacing

    asyncio.run(stop_while_replacing())
    assert not sink._replacing
    sink.close(timeout_s=20)
    assert sink.stats.delivered == RECORDS, lines.lines
    assert run_sizes(audited(kafka, topic)) == {sink.run: RECORDS}


def test_records_kafka_holds_already_are_found_by_run_and_seq(kafka: str, tmp_path: Path) -> None:
    sink, _, _ = _sink(tmp_path, kafka)
    for number in range(300):
        sink.publish([_ticker(number)])
    sink.close(timeout_s=10)
    assert sink.stats.delivered == 300

    def sent(seq: int) -> tuple[str, bytes, bytes]:
        ticker = _ticker(seq)
        ticker.run, ticker.seq = sink.run, seq
        return sink._ticker_topic, b"key", msgspec.json.encode(ticker)

    # As the stuck producer would hold them: the last 50 it had sent, answers lost, and 50 never sent.
    held = [sent(seq) for seq in range(251, 351)]
    letter = DeadLetter("binance", "FrameError: bad", 1, "ws", "ws://x", "{", sink.run)
    held.append((sink._dead_letter_topic, b"binance", msgspec.json.encode(letter)))
    found, complete = sink._written_already(held)
    assert complete
    assert found == {(sink._ticker_topic, sink.run, seq) for seq in range(251, 301)}
    # Another run's record with the same seq is another record.
    other = msgspec.json.encode(msgspec.structs.replace(_ticker(260), run="another-run", seq=260))
    assert sink._written_already([(sink._ticker_topic, b"key", other)]) == (set(), True)
