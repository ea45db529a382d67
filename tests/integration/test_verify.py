"""coinstream verify against a real broker: records written with known holes, repeats and
reorderings, and what the audit says of each; the command line's table, JSON, start
points and exit codes."""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream import verify
from tests.harness import ROOT

pytestmark = pytest.mark.integration

NS = 1_800_000_000_000_000_000


def new_topic(kafka: str, partitions: int = 3) -> str:
    name = f"test.verify.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka})  # held: the future fails if the client goes first
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def write(kafka: str, topic: str, records: list[tuple[int, str, str, int]], foreign: bool = True) -> None:
    """(partition, exchange, run, seq) in this order; received_ns grows with each record.
    With `foreign`, then a record without seq (a dead letter) and one that is no JSON."""
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "linger.ms": 5})
    for index, (partition, exchange, run, seq) in enumerate(records):
        value = msgspec.json.encode({"exchange": exchange, "symbol": "BTC-USDT", "run": run, "seq": seq,
                                     "received_ns": NS + index * 1000, "last": "1"})
        producer.produce(topic, value, f"{exchange}:BTC-USDT".encode(), partition=partition)
    if foreign:
        producer.produce(topic, b'{"exchange":"okx","error":"bad frame","raw":"x","run":"r"}', b"okx", partition=0)
        producer.produce(topic, b"not json", b"okx", partition=0)
    assert producer.flush(30) == 0


def spread(exchange: str, run: str, seqs: list[int]) -> list[tuple[int, str, str, int]]:
    """Round-robin over three partitions, as keys hash over them."""
    return [(seq % 3, exchange, run, seq) for seq in seqs]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coinstream", "verify", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_every_kind_of_finding(kafka: str) -> None:
    topic = new_topic(kafka)
    killed = [seq for seq in range(1, 301) if seq not in (298, 299)]  # in flight when killed
    records = (spread("binance", "whole", list(range(1, 1001)))
               + spread("binance", "middle", [*range(1, 48), *range(60, 101)])
               + spread("okx", "repeats", [*range(1, 51), 10, 11])
               + [(0, "okx", "reordered", seq) for seq in (1, 2, 4, 3, 5)]
               + spread("kraken", "killed", killed) + spread("kraken", "after", list(range(1, 101)))
               + spread("upbit", "open", [seq for seq in range(1, 101) if seq not in (98, 99)]))
    write(kafka, topic, records)
    report = verify.audit({"bootstrap.servers": kafka}, [topic])
    runs = {run.run: run for run in report.runs}
    assert report.records == len(records) + 2 and report.without_seq == 1 and report.undecodable == 1
    assert runs["whole"].ok and runs["whole"].records == 1000 and runs["whole"].last_seq == 1000
    assert runs["middle"].missing == [(48, 59)] and runs["middle"].lost == 12 and not runs["middle"].ok
    assert runs["repeats"].repeats == 2 and runs["repeats"].missing == [] and not runs["repeats"].ok
    assert runs["reordered"].out_of_order == 1 and runs["reordered"].repeats == 0
    # Killed: its holes lie above the lowest last seq of its partitions (295), and a later
    # run of the same exchange exists, so the tail is lost for good.
    assert runs["killed"].missing == [] and runs["killed"].tail == [(298, 299)]
    assert runs["killed"].tail_ended and not runs["killed"].ok
    assert runs["after"].ok
    # The newest run of its exchange: the holes at its tail may still be on their way.
    assert runs["open"].tail == [(98, 99)] and not runs["open"].tail_ended and runs["open"].ok
    assert runs["whole"].first_received_ns == NS and runs["whole"].last_received_ns == NS + 999_000
    assert [run.exchange for run in report.runs] == ["upbit", "okx", "okx", "binance", "binance",
                                                     "kraken", "kraken"]
    assert not report.ok
    ended = verify.audit({"bootstrap.servers": kafka}, [topic], ended=True)
    assert not next(run for run in ended.runs if run.run == "open").ok


def test_a_runs_ticker_and_book_records_are_audited_each_on_their_own(kafka: str) -> None:
    """A run numbers its ticker records and its book records each from 1, on two topics:
    read together, they are two complete sequences, not one with repeats."""
    tickers, books = new_topic(kafka), new_topic(kafka)
    write(kafka, tickers, spread("okx", "both", list(range(1, 101))))
    write(kafka, books, spread("okx", "both", [*range(1, 40), *range(41, 61)]))
    report = verify.audit({"bootstrap.servers": kafka}, [tickers, books], ended=True)
    [ticker_run, book_run] = report.runs
    assert (ticker_run.topic, ticker_run.records, ticker_run.repeats, ticker_run.ok) == (tickers, 100, 0, True)
    assert (book_run.topic, book_run.missing, book_run.repeats) == (books, [(40, 40)], 0)
    assert not report.ok
    text = "\n".join(report.text())
    assert text.startswith("TOPIC") and f"{books} okx both: seq 40–40 missing (1)" in text


def test_killed_runs_middle_holes_are_not_its_tail(kafka: str) -> None:
    topic = new_topic(kafka)
    # Partition 0 holds 3, 6, ... 300, partition 1 up to 298, partition 2 up to 296 (299 is
    # missing): the bound is 296, so 150 is in the middle and 299 in the tail.
    seqs = [seq for seq in range(1, 301) if seq not in (150, 299)]
    write(kafka, topic, spread("bybit", "killed", seqs) + spread("bybit", "next", [1, 2, 3]))
    run = verify.audit({"bootstrap.servers": kafka}, [topic]).runs_of("bybit")[0]
    assert run.missing == [(150, 150)] and run.tail == [(299, 299)]
    assert run.problems()[:2] == ["seq 150–150 missing (1)", "tail: seq 299–299 missing (1); the run ended (SIGKILL?)"]


def test_the_command_line(kafka: str, tmp_path: Path) -> None:
    topic = new_topic(kafka)
    write(kafka, topic, spread("coinbase", "gappy", [*range(1, 47901), *range(97876, 100_001)]))
    done = cli(topic, "--bootstrap", kafka)
    assert done.returncode == 1, done.stderr
    assert "coinbase gappy: seq 47901–97875 missing (49,975)" in done.stdout
    assert "FAILED" in done.stdout and "verdict: records missing" in done.stdout
    as_json = cli(topic, "--bootstrap", kafka, "--json")
    document = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and document["ok"] is False
    assert document["runs"][0]["missing"] == [[47901, 97875]] and document["runs"][0]["records"] == 50_025
    # From offset 10,000 of each partition, seqs 1..30,000 are not read: not missing.
    later = json.loads(cli(topic, "--bootstrap", kafka, "--json", "--offset", "10000").stdout)["runs"][0]
    assert later["head_unread"] == 30_000 and later["missing"] == [[47901, 97875]]
    # Since a minute from now: nothing to read, nothing wrong.
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    nothing = cli(topic, "--bootstrap", kafka, "--since", future, "--json")
    assert nothing.returncode == 0 and json.loads(nothing.stdout)["records"] == 0
    recent = cli(topic, "--bootstrap", kafka, "--since", "1h")
    assert recent.returncode == 1 and "50,027 records" in recent.stdout

    clean = new_topic(kafka)
    write(kafka, clean, spread("gateio", "fine", list(range(1, 101))), foreign=False)
    assert cli(clean, "--bootstrap", kafka).returncode == 0
    # Every run whole, but a record no consumer of coinstream's can read: not ok (before: exit 0).
    foreign = new_topic(kafka)
    write(kafka, foreign, spread("gateio", "fine", list(range(1, 101))))
    found = cli(foreign, "--bootstrap", kafka)
    assert found.returncode == 1 and "verdict: 1 records that are no coinstream record" in found.stdout, found.stdout

    for args, message in [(("no.such.topic",), "no such topic: no.such.topic"),
                          ((topic, "--since", "yesterday"), "--since 'yesterday': not a duration"),
                          ((topic, "--since", "1h", "--offset", "3"), "not both")]:
        bad = cli(*args, "--bootstrap", kafka)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    assert cli(topic, "--bogus").returncode == 2
    override = tmp_path / "bad.yaml"
    override.write_text("topics: {partitions: 0}\n")
    assert cli(topic, "--config", str(override)).returncode == 78


def test_since_parses_durations_and_times() -> None:
    now = 1_800_000_000.0
    assert verify.parse_since("90s", now) == (now - 90) * 1000
    assert verify.parse_since("1h", now) == (now - 3600) * 1000
    assert verify.parse_since("2026-12-04T10:00Z") == 1796378400000
    assert verify.parse_since("2026-12-04T10:00") == 1796378400000  # UTC when no zone is named
    assert verify.parse_since("2026-12-04T19:00+09:00") == 1796378400000
    with pytest.raises(verify.UsageError):
        verify.parse_since("an hour")
