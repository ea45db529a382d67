"""What the sink's stop counts: every record Kafka took, even one acknowledged between
the flush loop's last count and its own look at librdkafka's queue (CI, stop 31: a
worker's final counters said delivered=131700 of the 131,701 records Kafka held)."""

import logging
import time
from pathlib import Path

from shared.config import Spool
from shared.record import Ticker
from shared.sink import KafkaSink
from shared.stats import Stats
from tests.harness import free_port


class Producer:
    """librdkafka's producer as the stop sees it: flush() leaves the last record in flight,
    and it is acknowledged (no report: only failures have one) just after the next look
    at len(), as the broker's thread may do between the count and the loop's check."""

    def __init__(self) -> None:
        self.held = 0
        self.last_in_flight = False

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.held += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        if self.held:
            self.held, self.last_in_flight = 1, True
        return self.held

    def __len__(self) -> int:
        held = self.held
        if self.last_in_flight:
            self.held, self.last_in_flight = 0, False
        return held


def test_a_record_acknowledged_after_the_last_count_of_the_stop_is_counted_delivered(tmp_path: Path) -> None:
    stats = Stats()
    sink = KafkaSink({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "t", "d", Spool(dir=str(tmp_path)),
                     "binance", stats, logging.getLogger("coinstream.test.sink-close"))
    sink._producer = Producer()  # type: ignore[assignment]
    sink.publish([Ticker("binance", "BTC-USDT", "BTCUSDT", str(price), None, None, None, None, None, None, None,
                         None, None, None, time.time_ns(), "ws") for price in range(1, 6)])
    sink.close(timeout_s=5)
    assert (stats.records, stats.delivered, sink.queue_depth()) == (5, 5, 0)
