"""Order books end to end: simulator -> worker -> the real broker, checked against the
simulator's true book (simulator/books.py).

Per exchange (BOOKS): the records in Kafka are the true top N, every one of them (a
record with an update_id is the true top N at that id; one without is a true top N, in
the order the book went through them), the last one per market is the book as it stands
once the simulator stops changing it, and the book topic's seq is contiguous
(coinstream verify). Per fault: detected, the resync counted by its reason, the book
right again afterwards, and no record published from a wrong book.

An exchange is added with one BookCase in BOOKS (and its faults in FAULTS); a second
channel of one exchange (Binance's diff stream beyond 20 levels) is a case of its own,
named "<exchange>-<channel>".
"""

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from websockets.sync.client import connect

from shared.venue import Venue
from simulator.coinbase import CoinbaseSim
from tests.harness import ROOT, Simulator, WorkerProcess, audited, consume, free_port, override_file, wait_until
from workers.binance import Binance
from workers.bybit import Bybit
from workers.kraken import Kraken

pytestmark = pytest.mark.integration

PLAIN_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class BookCase(NamedTuple):
    depth: int  # the book_depth the test configures
    sequenced: bool  # records carry update_id
    rest_seeded: bool = False  # books start from REST snapshots: their first records are source "rest"
    timed: bool = True  # the frames carry the exchange's time (Binance's partial depth does not)


BOOKS = {
    "upbit": BookCase(depth=10, sequenced=False),
    "okx": BookCase(depth=10, sequenced=True),
    "binance": BookCase(depth=10, sequenced=True, timed=False),  # @depth10@100ms, whole books
    "binance-diff": BookCase(depth=25, sequenced=True, rest_seeded=True),  # @depth@100ms and REST seeds
    "bithumb": BookCase(depth=10, sequenced=False),
    "coinone": BookCase(depth=10, sequenced=True),
    "korbit": BookCase(depth=10, sequenced=False),
    "gateio": BookCase(depth=10, sequenced=True),
    "coinbase": BookCase(depth=10, sequenced=True),
    "bybit": BookCase(depth=10, sequenced=True),
    "kraken": BookCase(depth=10, sequenced=False),
}
# (exchange, fault, the resync reason it must be counted under). A book asks for a REST
# snapshot only when it starts or is lost: book_stale comes with one book_gap, and the
# snapshots that follow are older than the stream.
FAULTS = [
    ("upbit", "book_crossed", "crossed"),
    ("okx", "book_gap", "gap"),
    ("okx", "book_repeat", "gap"),
    ("okx", "book_reorder", "gap"),
    ("okx", "book_checksum", "checksum"),
    ("okx", "book_crossed", "crossed"),
    ("binance", "book_crossed", "crossed"),
    ("binance-diff", "book_gap", "gap"),
    ("binance-diff", "book_repeat", "gap"),
    ("binance-diff", "book_reorder", "gap"),
    ("binance-diff", "book_crossed", "crossed"),
    ("binance-diff", "book_stale", "snapshot_stale"),
    ("bithumb", "book_crossed", "crossed"),
    ("coinone", "book_crossed", "crossed"),
    ("korbit", "book_crossed", "crossed"),
    # Gate.io spot.obu: a change push's U must follow the last u.
    ("gateio", "book_gap", "gap"),
    ("gateio", "book_repeat", "gap"),
    ("gateio", "book_reorder", "gap"),
    ("gateio", "book_crossed", "crossed"),
    # Coinbase Advanced Trade numbers every message of a connection (sequence_num): a
    # message lost, repeated or sent late breaks that numbering.
    ("coinbase", "book_gap", "gap"),
    ("coinbase", "book_repeat", "gap"),
    ("coinbase", "book_reorder", "gap"),
    ("coinbase", "book_crossed", "crossed"),
    ("bybit", "book_gap", "gap"),
    ("bybit", "book_repeat", "gap"),
    ("bybit", "book_crossed", "crossed"),
    ("kraken", "book_gap", "checksum"),  # Kraken has no sequence: the next checksum shows it
    ("kraken", "book_checksum", "checksum"),
    ("kraken", "book_crossed", "crossed"),
]

# Exchanges whose socket records' update_id numbers the messages of their connection
# (Coinbase's sequence_num), not the book's changes: those records are compared in order,
# like records without an id.
CONNECTION_NUMBERED = {"coinbase"}

Record = dict[str, Any]
Top = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]


def _top(bids: list[list[str]], asks: list[list[str]]) -> Top:
    """A top N by value: an exchange may print a price otherwise than the true book's text."""
    return (tuple((Decimal(price), Decimal(size)) for price, size in bids),
            tuple((Decimal(price), Decimal(size)) for price, size in asks))


def exchange_of(case: str) -> str:
    """The exchange of a case of BOOKS: "binance-diff" -> "binance"."""
    return case.split("-", 1)[0]


def start_books(exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Path, rate: float = 40,
                markets: int = 3, depth: int | None = None,
                runtime: dict[str, Any] | None = None) -> tuple[Simulator, WorkerProcess, str]:
    """The simulator and a worker collecting `exchange`'s books alone (`exchange` may name
    a case of BOOKS, whose depth is the default); the book topic."""
    case, exchange = exchange, exchange_of(exchange)
    sim = simulator(exchange, rate=rate, markets=markets)
    section = {**sim.config["exchanges"][exchange], "channels": ["book"],
               "book_depth": depth or BOOKS[case].depth}
    config = override_file(tmp_path, kafka, {exchange: section}, runtime)
    return sim, worker(exchange, config), yaml.safe_load(config.read_text())["topics"]["book"]


def assert_true_books(sim: Simulator, exchange: str, records: list[Record], depth: int) -> None:
    """Every record is a true top N of its market, in the order the book went through them."""
    by_market: dict[str, list[Record]] = {}
    for record in records:
        by_market.setdefault(record["raw_symbol"], []).append(record)
    for market, published in by_market.items():
        history = sim.control(exchange, "book_history", market=market, depth=depth)["history"]
        tops = [(update_id, _top(bids, asks)) for update_id, bids, asks in history]
        position = 0
        for record in published:
            for side in (record["bids"], record["asks"]):
                assert len(side) <= depth
                for price, size in side:
                    assert PLAIN_DECIMAL.match(price) and PLAIN_DECIMAL.match(size), record
                    assert Decimal(size) > 0, record
            top = _top(record["bids"], record["asks"])
            by_id = record["update_id"] is not None and not (exchange in CONNECTION_NUMBERED
                                                             and record["source"] == "ws")
            if by_id:
                # The true top N at that id: the last change at or before it.
                at = [true for update_id, true in tops if update_id <= record["update_id"]]
                assert at and at[-1] == top, f"{market} record seq {record['seq']} is not the true book " \
                                             f"at update_id {record['update_id']}"
            else:
                later = [index for index in range(position, len(tops)) if tops[index][1] == top]
                assert later, f"{market} record seq {record['seq']} is no true book after the one before it"
                position = later[0]


def assert_numbers_grow(records: list[Record]) -> None:
    """On one connection (no reconnect), each market's socket records number up (a
    connection-numbered exchange's update_id: the message's number on the connection)."""
    for symbol in {record["symbol"] for record in records}:
        numbers = [record["update_id"] for record in records if record["symbol"] == symbol and record["source"] == "ws"]
        assert numbers == sorted(set(numbers)), symbol


def settle_and_compare(sim: Simulator, exchange: str, kafka: str, topic: str, depth: int,
                       markets: int) -> list[Record]:
    """Freeze the books, read the topic until each market's last record is the true top N
    now, and check every record; the records."""
    sim.control(exchange, "book_rate", per_s=0)
    truth: dict[str, Top] = {}

    def caught_up(got: list[tuple[str, Record]]) -> bool:
        last = {record["raw_symbol"]: record for _, record in got}
        if len(last) < markets:
            return False
        for market, record in last.items():
            if market not in truth:
                now = sim.control(exchange, "book", market=market, depth=depth)
                truth[market] = _top(now["bids"], now["asks"])
            if _top(record["bids"], record["asks"]) != truth[market]:
                return False
        return True

    try:
        records = [record for _, record in consume(kafka, topic, caught_up, timeout_s=60)]
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; the simulator's stats: {sim.control(exchange, 'stats')}") from None
    assert_true_books(sim, exchange, records, depth)
    return records


def resyncs(process: WorkerProcess) -> dict[str, int]:
    match = re.search(r" book_resyncs=(\d+)(?:\[([^\]]*)\])?", process.counters())
    assert match, process.counters()
    return {reason: int(count) for reason, count in
            (item.split("=") for item in (match.group(2) or "").split(",") if item)}


def test_a_socket_of_books_alone_counts_as_subscribed(kafka: str, simulator: Any, worker: Any,
                                                      tmp_path: Path) -> None:
    """Coinbase drops a socket that has not subscribed within seconds of connecting; a
    socket that subscribed to books and no ticker has, and is kept."""
    sim, process, topic = start_books("coinbase", kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 20, timeout_s=60)
    time.sleep(CoinbaseSim.subscribe_deadline_s + 2)
    assert sim.control("coinbase", "stats")["connections_total"] == 1
    assert process.stop() == 0
    assert " reconnects=0 " in process.counters()


@pytest.mark.parametrize("case_name", sorted(BOOKS))
def test_book_records_are_the_true_top_n(case_name: str, kafka: str, simulator: Any, worker: Any,
                                         tmp_path: Path) -> None:
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 150, timeout_s=60)
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    for record in records:
        assert record["depth"] == case.depth and (record["source"] == "ws" or case.rest_seeded)
        assert (record["update_id"] is not None) == case.sequenced
    assert sum(record["source"] == "ws" for record in records) > len(records) / 2
    counters = process.counters()
    assert resyncs(process) == {}, counters
    assert " dead_letters=0 " in counters
    # Every exchange time read right (Bithumb's in µs): none out of range, none nulled.
    assert " timestamps_nulled=0 " in counters
    if case.timed:
        assert [record for record in records if record["source"] == "ws" and not record["exchange_ts"]] == []
    else:
        assert all(record["exchange_ts"] is None for record in records)
    if exchange in CONNECTION_NUMBERED:
        assert_numbers_grow(records)
    # Conflation: a change below the top N publishes nothing, and is counted.
    assert int(re.search(r" book_conflated=(\d+)", counters).group(1)) > 0  # type: ignore[union-attr]
    report = audited(kafka, topic)
    assert sum(run.records for run in report.runs) == len(records)


@pytest.mark.parametrize("case_name,fault,reason", FAULTS)
def test_a_book_fault_is_detected_counted_and_never_published(case_name: str, fault: str, reason: str, kafka: str,
                                                             simulator: Any, worker: Any, tmp_path: Path) -> None:
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, fault, count=2 if fault == "book_stale" else 3)
    if fault == "book_stale":
        sim.fault(exchange, "book_gap", count=1)
    wait_until(lambda: not sim.control(exchange, "stats")["book_faults"], 30, f"the simulator to make the {fault}s")
    wait_until(lambda: f"book lost ({reason})" in process.log(), 30, f"the worker to find the {fault}")
    # A gap shows at the market's next message: each market gets a few more before the books freeze.
    frames = sim.control(exchange, "stats")["book_frames"]
    wait_until(lambda: sim.control(exchange, "stats")["book_frames"] >= frames + 10, 10, "book frames")
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    counted = resyncs(process)
    expected = {reason, "gap"} if fault == "book_stale" else {reason}
    assert counted.get(reason, 0) >= 1 and set(counted) <= expected, process.counters()
    if exchange in CONNECTION_NUMBERED:  # the resubscribes' snapshots come on the same connection
        assert_numbers_grow(records)
    audited(kafka, topic)
    assert records


@pytest.mark.parametrize("case_name", sorted(BOOKS))
def test_while_the_book_socket_is_down_rest_books_are_published(case_name: str, kafka: str, simulator: Any,
                                                               worker: Any, tmp_path: Path) -> None:
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, "ws_down", seconds=6)
    # rest_fallback_after_s is 2 in the tests' override: REST polls every 0.5 s after that.
    wait_until(lambda: "polling REST" in process.log(), 20, "the REST fallback")
    wait_until(lambda: "socket answers again" in process.log(), 30, "the socket back")
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    fallback = [record for record in records if record["source"] == "rest" and record["seq"] > 30]
    assert len({record["symbol"] for record in fallback}) == 3, f"REST book records: {len(fallback)}"
    assert records[-1]["source"] == "ws" or case.rest_seeded
    audited(kafka, topic)


@pytest.mark.parametrize("exchange", ["okx", "upbit"])
def test_a_fallback_answer_that_comes_after_the_socket_is_back_is_dropped(exchange: str, kafka: str, simulator: Any,
                                                                         worker: Any, tmp_path: Path) -> None:
    """A REST call of 8 s while the book socket is down for 4 s: the socket comes back while
    it is on its way. Its answer is older than the stream's book: publishing it put a stale book
    after a newer record, and for OKX (a REST book has no seqId) left every later change of
    that market skipped, the book never published again."""
    case = BOOKS[exchange]
    # The first fallback call made slow enough to span the socket's return, whatever the
    # machine's load: asked 2 s into a 4 s outage (rest_fallback_after_s), before the
    # socket can be heard again; answered 8 s later, after the reconnect (backoff at most
    # ~1.3 s) has been heard. Fast polls with slow answers left it to chance: a return in
    # the pause between two calls dropped nothing (CI, stops 28 and 29: book_skipped=0).
    sim, process, topic = start_books(exchange, kafka, simulator, worker, tmp_path,
                                      runtime={"rest_timeout_s": 15})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, "slow_rest", count=1, seconds=8)
    sim.fault(exchange, "ws_down", seconds=4)
    wait_until(lambda: "polling REST" in process.log(), 20, "the REST fallback")
    # Logged once the call on its way has answered: the loop stops at the next look.
    wait_until(lambda: "socket answers again" in process.log(), 30, "the socket back")
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    skipped = re.search(r" book_skipped=(\d+)", process.counters())
    assert skipped and int(skipped.group(1)) >= 1, process.counters()
    audited(kafka, topic)


@pytest.mark.parametrize("exchange", ["upbit", "bithumb"])
def test_no_fallback_book_is_published_while_a_new_subscription_is_answered(
        exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """The socket is back and subscribed, and the exchange's snapshot frames are on their
    way, 1.2 s late (book_late), while the books move on. A fallback book taken meanwhile
    is newer than those frames: published first, it was followed by the older book of the
    snapshot frame, and a whole-book exchange's records carry no id to tell (the record
    stream went back in time: this test failed 10 runs in 10 so). No fallback call is made,
    and no answer published, while the subscription is fresh (sent within
    rest_fallback_after_s, 3 s here: the snapshots come 1.8 s before the fallback would
    resume, whatever the machine's load) and the socket unheard."""
    case = BOOKS[exchange]
    sim, process, topic = start_books(exchange, kafka, simulator, worker, tmp_path,
                                      runtime={"rest_fallback_after_s": 3})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, "book_late", count=1, seconds=1.2)
    sim.fault(exchange, "ws_down", seconds=5)
    wait_until(lambda: "polling REST" in process.log(), 20, "the REST fallback")
    wait_until(lambda: "socket answers again" in process.log(), 30, "the socket back")
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    assert "book_late" not in sim.control(exchange, "stats")["book_faults"]
    assert any(record["source"] == "rest" for record in records), "no fallback book: the outage went unseen"
    audited(kafka, topic)


@pytest.mark.parametrize("exchange", ["okx", "bybit"])
def test_after_a_stall_the_rest_books_give_way_to_the_stream_again(exchange: str, kafka: str, simulator: Any,
                                                                 worker: Any, tmp_path: Path) -> None:
    """The book socket stalls (connected, silent) long enough for the REST fallback, not for
    the watchdog: its books come from REST snapshots without a sequence id, on which the
    stream's changes cannot be placed when the socket speaks again. Each is lost (resync
    gap) and resubscribed, and the records are true books again; before, every later change
    was skipped and the books were never published again."""
    case = BOOKS[exchange]
    sim, process, topic = start_books(exchange, kafka, simulator, worker, tmp_path, runtime={"watchdog_s": 15})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, "stall", seconds=5)
    wait_until(lambda: "polling REST" in process.log(), 20, "the REST fallback")
    wait_until(lambda: "socket answers again" in process.log(), 30, "the socket back")
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    assert " reconnects=0 " in process.counters(), process.counters()
    assert resyncs(process).get("gap", 0) >= 1, process.counters()
    assert {record["source"] for record in records} == {"ws", "rest"}
    assert records[-1]["source"] == "ws"
    audited(kafka, topic)


def streamed_after(got: list[tuple[str, Record]], since_ns: float) -> set[str]:
    """The markets with a record from the stream received after since_ns."""
    return {record["symbol"] for _, record in got if record["received_ns"] > since_ns and record["source"] == "ws"}


# How each case of BOOKS rebuilds a lost book (Venue.book_resync_at).
REBUILT_BY = {"upbit": "frames", "bithumb": "frames", "coinone": "frames", "korbit": "frames", "binance": "frames",
              "binance-diff": "rest", "okx": "resubscribe", "gateio": "resubscribe", "coinbase": "resubscribe",
              "bybit": "resubscribe", "kraken": "resubscribe"}


@pytest.mark.parametrize("case_name", sorted(BOOKS))
def test_quiet_books_are_compared_with_rest_and_a_subscription_dropped_unannounced_is_found(
        case_name: str, kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """Books quiet for rest_refresh_s are compared with REST. Frozen (quiet and right),
    they equal REST's by value: nothing is published, nothing lost. Then the exchange
    forgets the book socket's subscriptions (book_forget): the socket stays open and
    answers its keepalives, the books move on, and nothing of them is sent. Each book is
    found: a whole-book exchange's REST book is published (source "rest"); the others'
    books are lost (gap) and rebuilt (OKX's and Kraken's by a resubscribe, Binance's diff
    book from REST), and the socket's markets are subscribed again, which the exchange
    honours: the stream is back. Before, nothing was published after the fault, and
    nothing showed it."""
    case, exchange, rebuilt_by = BOOKS[case_name], exchange_of(case_name), REBUILT_BY[case_name]
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path, rate=20,
                                      runtime={"rest_refresh_s": 3})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.control(exchange, "book_rate", per_s=0)
    frozen_ns, calls = time.time_ns(), sim.control(exchange, "stats")["rest_calls"]
    wait_until(lambda: sim.control(exchange, "stats")["rest_calls"] >= calls + 2 * 3, 30, "two refresh rounds")
    right_until_ns = time.time_ns()
    assert "book lost" not in process.log()
    sim.control(exchange, "book_rate", per_s=20)
    sim.fault(exchange, "book_forget")
    forgotten_ns = time.time_ns()
    # Quiet for 3 s, then a refresh round (every 3 s) and its grace: each market is found,
    # and its stream subscribed again.
    consume(kafka, topic, lambda got: len(streamed_after(got, forgotten_ns + 1e9)) == 3, timeout_s=30)
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    counters = process.counters()
    assert " reconnects=0 " in counters, counters
    assert not [record for record in records if frozen_ns + 1e9 < record["received_ns"] < right_until_ns]
    # The first book found brings the socket's markets back: the others may never be compared.
    if rebuilt_by == "frames":
        assert resyncs(process) == {}, counters
        assert int(re.search(r" refreshed=(\d+) ", counters).group(1)) >= 1, counters  # type: ignore[union-attr]
    else:
        assert set(resyncs(process)) == {"gap"}, counters
    assert "the stream lost them" in process.log()
    assert records[-1]["source"] == "ws"
    audited(kafka, topic)


@pytest.mark.parametrize("case_name", ["upbit", "okx", "binance-diff"])  # rebuilt by frames, resubscribe, REST
def test_a_streaming_book_socket_that_falls_silent_is_checked_within_seconds(
        case_name: str, kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """The book socket was streaming when the exchange forgot its subscriptions
    (book_forget): silent for rest_fallback_after_s while it answers its keepalives, its
    books are compared with REST at once, found, and the stream is back within seconds.
    Before, they waited for the quiet-book refresh, rest_refresh_s (300 s, the default
    here) on."""
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path, rate=20,
                                      runtime={"rest_fallback_after_s": 3})
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    time.sleep(3.5)  # streaming for longer than rest_fallback_after_s
    sim.fault(exchange, "book_forget")
    forgotten_ns = time.time_ns()
    # Silent for 3 s, a REST round and its grace: each market found, its stream asked for again.
    consume(kafka, topic, lambda got: len(streamed_after(got, forgotten_ns + 1e9)) == 3, timeout_s=20)
    settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    assert " reconnects=0 " in process.counters(), process.counters()
    assert "the stream lost them" in process.log()
    audited(kafka, topic)


@pytest.mark.parametrize("case_name", sorted(BOOKS))
def test_after_a_reconnect_every_book_is_rebuilt_and_right(case_name: str, kafka: str, simulator: Any,
                                                           worker: Any, tmp_path: Path) -> None:
    """The book socket closed abruptly: the worker reconnects and subscribes again; each
    book is rebuilt as the exchange allows (the next frame, the snapshot a subscribe sends,
    a REST snapshot after the first change shows the stream moved on), and no record in
    between is wrong."""
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, "close")
    wait_until(lambda: process.log().count("connected to") >= 2, 30, "the book socket to reconnect")
    time.sleep(1)
    settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    # A REST-seeded book learns of the missed changes from the next one's ids.
    assert set(resyncs(process)) <= ({"gap", "snapshot_stale"} if case.rest_seeded else set()), \
        process.counters()
    audited(kafka, topic)


# Whole-book exchanges (every frame the whole book): a dropped frame is repaired by the
# next, a repeated one changes nothing (conflated; Coinone and Binance skip its id), and
# one sent late is skipped by its older id (Binance's lastUpdateId). Nothing to detect,
# no resync, and no record that is not a true book, in order.
WHOLE_BOOK_FAULTS = [(exchange, fault) for exchange in ("bithumb", "coinone", "korbit", "binance")
                     for fault in ("book_gap", "book_repeat")] + [("binance", "book_reorder")]


@pytest.mark.parametrize("case_name,fault", WHOLE_BOOK_FAULTS)
def test_a_lost_or_repeated_whole_book_frame_leaves_the_book_right(case_name: str, fault: str, kafka: str,
                                                                   simulator: Any, worker: Any,
                                                                   tmp_path: Path) -> None:
    case, exchange = BOOKS[case_name], exchange_of(case_name)
    sim, process, topic = start_books(case_name, kafka, simulator, worker, tmp_path)
    consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
    sim.fault(exchange, fault, count=5)
    wait_until(lambda: not sim.control(exchange, "stats")["book_faults"], 30, f"the simulator to make the {fault}s")
    # The frame after a lost one repairs the book: each market gets a few before the freeze.
    time.sleep(1)
    records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    assert resyncs(process) == {}, process.counters()
    assert " dead_letters=0 " in process.counters()
    audited(kafka, topic)
    assert records


# Exchanges whose REST book fallback is tested, and their Venue: the simulator moves a
# book only while a socket subscribes to it, so the test keeps one of its own.
REST_FALLBACK: dict[str, type[Venue]] = {"bybit": Bybit, "kraken": Kraken}


@contextmanager
def books_moving(sim: Simulator, exchange: str, depth: int) -> Iterator[None]:
    """A book socket of the test's own, subscribed to every market (its frames pile up
    unread: max_queue=None keeps it reading, and answering pings)."""
    section = sim.config["exchanges"][exchange]
    venue = REST_FALLBACK[exchange](section["ws_url"], section["rest_url"])
    markets = [venue.market(*symbol.split("-", 1)) for symbol in section["symbols"]]
    with connect(venue.book_ws_url(markets, depth), max_queue=None) as socket:
        for message in venue.book_subscribe_messages(markets, depth):
            socket.send(message)
        yield


@pytest.mark.parametrize("exchange", sorted(REST_FALLBACK))
def test_rest_fallback_book_records_are_true_books(exchange: str, kafka: str, simulator: Any, worker: Any,
                                                   tmp_path: Path) -> None:
    """The worker's book socket refused from the start (its ws_url a port nobody listens
    on; the simulator's ws_down would close the test's own socket too): every record
    comes from REST."""
    case = BOOKS[exchange]
    sim = simulator(exchange, rate=40, markets=3)
    with books_moving(sim, exchange, case.depth):
        section = sim.config["exchanges"][exchange]
        section = {**section, "ws_url": section["ws_url"].replace(f":{sim.ports[exchange]}/", f":{free_port()}/"),
                   "channels": ["book"], "book_depth": case.depth}
        config = override_file(tmp_path, kafka, {exchange: section})
        topic = yaml.safe_load(config.read_text())["topics"]["book"]
        process = worker(exchange, config)
        consume(kafka, topic, lambda got: len(got) >= 30, timeout_s=60)
        records = settle_and_compare(sim, exchange, kafka, topic, case.depth, markets=3)
    assert process.stop() == 0
    assert {record["source"] for record in records} == {"rest"}
    assert all(record["update_id"] is None for record in records)  # no id of the subscribed stream
    counters = process.counters()
    assert resyncs(process) == {} and " dead_letters=0 " in counters, counters
    audited(kafka, topic)


def rest_call_span(sim: Simulator, exchange: str, made: int, calls: int, timeout_s: float = 30) -> float:
    """Seconds from the simulator's REST call number `made` + 2 to number `made` + `calls`
    (its call count read every few ms, from before the first of them: the second is
    seen within ms of its arrival)."""
    started_at: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answered = sim.control(exchange, "stats")["rest_calls"]
        now = time.monotonic()
        if started_at is None and answered >= made + 2:
            started_at = now
        if started_at is not None and answered >= made + calls:
            return now - started_at
        time.sleep(0.002)
    raise AssertionError(f"{calls} REST calls after the {made} made not made within {timeout_s} s")


def test_a_storm_of_book_snapshots_keeps_the_exchanges_rest_pacing(kafka: str, simulator: Any, worker: Any,
                                                                   tmp_path: Path) -> None:
    """Binance beyond 20 levels seeds each book from a REST snapshot of its own, and every
    market asks at once: at the start and after a reconnect. Those calls keep the pacing of
    every call to the exchange (venue.rest_min_interval_s between one's end and the next's
    start). Seen failing: the calls waiting together started one right after the other,
    the 2nd to the 20th of 20 snapshot calls within 0.13 s (0.17 s after a reconnect)."""
    markets = 20
    least_span_s = (markets - 2) * Binance.rest_min_interval_s
    sim = simulator("binance", rate=0, markets=markets)
    sim.control("binance", "book_rate", per_s=200)
    section = {**sim.config["exchanges"]["binance"], "channels": ["book"], "book_depth": BOOKS["binance-diff"].depth}
    config = override_file(tmp_path, kafka, {"binance": section})
    topic = yaml.safe_load(config.read_text())["topics"]["book"]
    process = worker("binance", config)
    at_start = rest_call_span(sim, "binance", 1, markets)  # after the market list
    consume(kafka, topic, lambda got: len({record["symbol"] for _, record in got}) == markets, timeout_s=60)
    made = sim.control("binance", "stats")["rest_calls"]
    sim.fault("binance", "close")
    after_reconnect = rest_call_span(sim, "binance", made, markets)
    settle_and_compare(sim, "binance", kafka, topic, BOOKS["binance-diff"].depth, markets)
    assert process.stop() == 0
    print(f"{markets} book snapshot calls, the 2nd to the last: {at_start:.3f} s at the start, "
          f"{after_reconnect:.3f} s after a reconnect")
    assert at_start >= least_span_s and after_reconnect >= least_span_s, (at_start, after_reconnect, least_span_s)
    audited(kafka, topic)


def test_a_book_of_a_market_not_subscribed_is_dead_lettered_whole(kafka: str, worker: Any, tmp_path: Path) -> None:
    """A book frame naming a market the worker did not subscribe (an exchange's mistake)
    is no book of its: its raw frame is dead-lettered, counted and logged; the subscribed
    market's book goes on. Fed through --replay, the one path of every frame, live or
    replayed: the simulator sends only the markets subscribed."""
    frame = (ROOT / "tests" / "fixtures" / "upbit" / "book_ws_orderbook_realtime_probe_2026_trimmed.json").read_text()
    frame = frame.strip()
    stranger = frame.replace('"KRW-BTC"', '"KRW-ETH"')
    url, session = "ws://127.0.0.1:1/websocket/v1", "upbit-book#0/1"
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(json.dumps(item) + "\n" for item in [
        {"kind": "markets", "ts": 1_790_134_743_000_000_000,
         "markets": [{"raw": "KRW-BTC", "base": "BTC", "quote": "KRW"}]},
        {"kind": "book", "ts": 1_790_134_743_006_000_000, "url": url, "data": frame, "connection": session},
        {"kind": "book", "ts": 1_790_134_743_007_000_000, "url": url, "data": stranger, "connection": session},
        {"kind": "book", "ts": 1_790_134_743_008_000_000, "url": url, "data": frame.replace("0.06612366", "0.5"),
         "connection": session}]))
    config = override_file(tmp_path, kafka, {"upbit": {"ws_url": url, "rest_url": "http://127.0.0.1:1",
                                                       "symbols": ["BTC-KRW"], "channels": ["book"]}})
    topics = yaml.safe_load(config.read_text())["topics"]
    process = worker("upbit", config, "--replay", str(capture))
    assert process.process.wait(timeout=60) == 0
    [(_, letter)] = consume(kafka, topics["dead_letter"], lambda got: len(got) >= 1)
    assert letter["raw"] == stranger and "'KRW-ETH', not subscribed" in letter["error"], letter
    books = [record for _, record in consume(kafka, topics["book"], lambda got: len(got) >= 2)]
    assert [(record["raw_symbol"], record["seq"]) for record in books] == [("KRW-BTC", 1), ("KRW-BTC", 2)]
    assert process.log().count("not subscribed") == 1, process.log()  # a replay writes no counters line
