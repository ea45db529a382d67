"""The audit's speed: `coinstream verify` reading a topic of real-sized ticker records.

A topic of RECORDS records is written once (ten exchanges, one run each, keyed by
symbol over three partitions, lz4 as the workers send them), then read whole by
coinstream.verify.audit AUDIT_PASSES times; records/s is what one pass reads and audits,
by the wall clock and per CPU second of this process (librdkafka's threads included),
which a busy shared machine changes less.
"""

import resource
import statistics
import time
import uuid

import msgspec
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream import verify
from shared.config import EXCHANGES
from shared.record import Ticker

RECORDS = 1_000_000
AUDIT_PASSES = 3
SYMBOLS = 50


def write_topic(bootstrap: str, records: int) -> str:
    """A new topic holding `records` tickers: seq 1..n in each of ten runs."""
    topic = f"bench.verify.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20, "compression.type": "lz4", "queue.buffering.max.messages": 200_000})
    encode = msgspec.json.Encoder().encode
    runs = {exchange: uuid.uuid4().hex[:16] for exchange in EXCHANGES}
    for number in range(records):
        exchange = EXCHANGES[number % len(EXCHANGES)]
        symbol = f"C{number % SYMBOLS}-USDT"
        value = encode(Ticker(exchange, symbol, symbol.replace("-", ""), "67012.34000000", "67012.33000000",
                              "67012.34000000", "1.62740000", "20.29140000", "66104.61000000", "67808.98000000",
                              "65748.94000000", "4717.53110000", "316180761.51358100", 1_795_501_532_843,
                              time.time_ns(), "ws", runs[exchange], number // len(EXCHANGES) + 1))
        while True:
            try:
                producer.produce(topic, value, f"{exchange}:{symbol}".encode())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"could not write {records:,} records to {topic}")
    return topic


def verify_scenario(bootstrap: str, records: int = RECORDS) -> list[str]:
    topic = write_topic(bootstrap, records)
    rates, per_cpu_s = [], []
    for _ in range(AUDIT_PASSES):
        cpu_before = _cpu_s()
        report = verify.audit({"bootstrap.servers": bootstrap}, [topic])
        per_cpu_s.append(records / (_cpu_s() - cpu_before))
        if not report.ok or report.records != records:
            raise RuntimeError(f"the audit of the written topic is wrong: {report.text()[-2:]}")
        rates.append(records / report.read_s)
    lines = [f"## coinstream verify: one pass over {records:,} ticker records (10 runs, 3 partitions, lz4), "
             f"median [min–max] of {AUDIT_PASSES} passes", "",
             "| records/s read and audited | seconds per pass | records per CPU second |", "|---|---|---|",
             f"| {statistics.median(rates):,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] | "
             f"{records / statistics.median(rates):.2f} | "
             f"{statistics.median(per_cpu_s):,.0f} [{min(per_cpu_s):,.0f}–{max(per_cpu_s):,.0f}] |"]
    print("\n".join(lines), flush=True)
    return lines


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
