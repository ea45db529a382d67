"""The sink's loop polls librdkafka every POLL_INTERVAL_S only while records are
pending: with none it rests, so that an idle worker does not wake ten times a second
for it, and a record handed while it rests still has its report served within
POLL_INTERVAL_S."""

import asyncio
import logging
import time
from pathlib import Path

from shared.config import Spool
from shared.record import Ticker
from shared.sink import IDLE_POLL_INTERVAL_S, POLL_INTERVAL_S, KafkaSink
from shared.stats import Stats
from tests.harness import free_port


def _sink(tmp_path: Path) -> tuple[KafkaSink, list[float]]:
    """A sink whose broker is nowhere (its records stay pending), and the times its loop polled."""
    sink = KafkaSink({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "t", "d", Spool(dir=str(tmp_path)),
                     "binance", Stats(), logging.getLogger("coinstream.test.sink-idle"))
    polled: list[float] = []
    serve_deliveries = sink.serve_deliveries

    def counted() -> None:
        polled.append(time.monotonic())
        serve_deliveries()
    sink.serve_deliveries = counted  # type: ignore[method-assign]
    return sink, polled


def _ticker() -> Ticker:
    return Ticker("binance", "BTC-USDT", "BTCUSDT", "1", None, None, None, None, None, None, None, None, None, None,
                  time.time_ns(), "rest")


def test_an_idle_sink_rests_and_a_record_handed_meanwhile_is_polled_for_within_the_interval(tmp_path: Path) -> None:
    sink, polled = _sink(tmp_path)

    async def watch() -> tuple[int, float]:
        serving = asyncio.create_task(sink.serve())
        # librdkafka's own first events (connection refused) may keep it polling a moment.
        await asyncio.sleep(IDLE_POLL_INTERVAL_S * 1.5)
        start = len(polled)
        await asyncio.sleep(IDLE_POLL_INTERVAL_S * 0.8)
        idle_polls = len(polled) - start
        # Just after a poll, so that its rest has nearly all of IDLE_POLL_INTERVAL_S to run.
        while len(polled) == start + idle_polls:
            await asyncio.sleep(0.005)
        handed_at = time.monotonic()
        sink.publish([_ticker()])
        while polled[-1] < handed_at:
            await asyncio.sleep(0.005)
        waited = polled[-1] - handed_at
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        return idle_polls, waited

    try:
        idle_polls, waited = asyncio.run(watch())
    finally:
        sink.close(timeout_s=0.5)
    # Every POLL_INTERVAL_S, as before this rest, would be 8 in that time.
    assert idle_polls <= 2, idle_polls
    assert waited < POLL_INTERVAL_S + 0.15, waited


class Producer:
    """librdkafka's producer as _count_deliveries sees it: `held` records not yet delivered."""

    def __init__(self) -> None:
        self.held = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.held += 1

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return self.held


def _reads(sink: KafkaSink, polled: list[float], delivering: bool) -> tuple[int, float]:
    """1.2 s of socket reads every 20 ms, each publishing a record and counting the
    deliveries (all of them if `delivering`, else none); then the reads stop with the
    last record pending. The loop's passes during the reads, and how long after the last
    read its next pass came."""
    producer = Producer()
    sink._producer = producer  # type: ignore[assignment]

    async def run() -> tuple[int, float]:
        serving = asyncio.create_task(sink.serve())
        await asyncio.sleep(0.05)
        start = len(polled)
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if delivering:
                producer.held = 0
            KafkaSink.serve_deliveries(sink)  # a read (uncounted): the reports ready meanwhile...
            sink.publish([_ticker()])  # ...and its records (served by the next read)
        passes = len(polled) - start
        last_read = time.monotonic()
        while polled[-1] < last_read:
            await asyncio.sleep(0.005)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        return passes, polled[-1] - last_read

    return asyncio.run(run())


def test_while_reads_count_deliveries_the_loop_is_put_off_and_comes_once_they_stop(tmp_path: Path) -> None:
    sink, polled = _sink(tmp_path)
    passes, after_last_read = _reads(sink, polled, delivering=True)
    # Every POLL_INTERVAL_S, as before: 12.
    assert passes <= 2, passes
    assert after_last_read < POLL_INTERVAL_S + 0.15, after_last_read


def test_while_reads_see_no_delivery_the_loop_keeps_its_cadence(tmp_path: Path) -> None:
    """A producer that delivers nothing: the loop's passes run its stuck check."""
    sink, polled = _sink(tmp_path)
    passes, after_last_read = _reads(sink, polled, delivering=False)
    assert passes >= 8, passes
    assert after_last_read < POLL_INTERVAL_S + 0.15, after_last_read
