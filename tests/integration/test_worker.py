"""Each worker process against the exchange simulator and the real local broker.

Every test is parametrized over the exchanges that have a worker and a simulator
mode; the checks read back from Kafka what the worker produced.
"""

import re
import signal
import time
from decimal import Decimal
from typing import Any, Callable

import pytest
import yaml

from simulator.__main__ import mode
from simulator.core import BULK_RATE_PER_S, BULK_RING
from tests import reference
from tests.harness import (Simulator, WorkerProcess, audited, consume, override_file, run_sizes, topic_size,
                           wait_until)

pytestmark = pytest.mark.integration

EXCHANGES = sorted(reference.PARSERS)
PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _setup(exchange: str, kafka: str, simulator: Callable[..., Simulator], worker: Callable[..., WorkerProcess],
           tmp_path: Any, rate: float = 50, markets: int = 5, runtime: dict[str, Any] | None = None,
           journal: bool = True) -> tuple[Simulator, WorkerProcess, dict[str, str]]:
    sim = simulator(exchange, rate=rate, markets=markets, journal=journal)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], runtime)
    topics = yaml.safe_load(config.read_text())["topics"]
    process = worker(exchange, config)
    return sim, process, {"ticker": topics["ticker"], "dead_letter": topics["dead_letter"]}


def _values(messages: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [value for _, value in messages]


def _ws_count(messages: list[tuple[str, dict[str, Any]]]) -> int:
    return sum(1 for _, value in messages if value["source"] == "ws")


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_records_are_exact_keyed_and_contiguous(exchange: str, kafka: str, simulator: Any, worker: Any,
                                                tmp_path: Any) -> None:
    sim, process, topics = _setup(exchange, kafka, simulator, worker, tmp_path)
    messages = consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 150, timeout_s=60)
    records = _values(messages)

    # Keyed "<exchange>:<symbol>", unified symbols, one run, seq 1..n without gaps.
    symbols = set(sim.config["exchanges"][exchange]["symbols"])
    for key, record in messages:
        assert key == f"{exchange}:{record['symbol']}"
        assert record["exchange"] == exchange
        assert record["symbol"] in symbols
    assert len(audited(kafka, topics["ticker"], ended=False).runs) == 1

    # The startup REST snapshot, beside the socket: one record per market (the socket
    # delivers throughout, so no fallback adds more). Coinone drops a ticker whose id is
    # not newer than the one it published: a REST row the socket beat is such a repeat.
    snapshot = [record for record in records if record["source"] == "rest"]
    assert len(snapshot) == len({record["symbol"] for record in snapshot}), snapshot
    covered = {record["symbol"] for record in snapshot}
    if exchange == "coinone":
        # (If the socket beat the snapshot for every market, nothing is left of it.)
        last = max((record["seq"] for record in snapshot), default=len(records) + 1)
        covered |= {record["symbol"] for record in records if record["source"] == "ws" and record["seq"] < last}
    assert covered == symbols

    # Every number equals what the simulator sent, digit for digit, in plain notation.
    # Frames sent in the same millisecond at the same price can differ in other fields:
    # a record must match one of the frames that share its key.
    expected: dict[tuple[str, int, Decimal], list[dict[str, Any]]] = {}
    for line in sim.journal(exchange):
        parsed = reference.PARSERS[exchange](line)
        if parsed is not None:
            expected.setdefault((parsed["raw_symbol"], parsed["exchange_ts"], parsed["last"]), []).append(parsed)

    def matches(record: dict[str, Any], want: dict[str, Any]) -> bool:
        for field in reference.NUMBER_FIELDS:
            got = record[field]
            if want[field] is None:
                if got is not None:
                    return False
                continue
            assert isinstance(got, str) and PLAIN_DECIMAL.match(got), (field, got)
            if Decimal(got) != want[field]:
                return False
        return record["exchange_ts"] == want["exchange_ts"]

    checked = 0
    for record in records:
        if record["source"] != "ws":
            continue
        candidates = expected[(record["raw_symbol"], record["exchange_ts"], Decimal(record["last"]))]
        assert any(matches(record, want) for want in candidates), (record, candidates)
        checked += 1
    assert checked >= 150

    # The simulator's edge shapes were among them, none became a dead letter, and the
    # counters add up: once the simulator stops sending, every frame it journaled is a
    # record or an exchange error (Binance's bare error form). Coinone drops a ticker
    # whose id it published already (the repeat on subscribe): at most as many records.
    assert set(sim.control(exchange, "stats")["edge_shapes"]) == set(mode(exchange).edge_kinds)
    sim.control(exchange, "rate", per_s=0)
    time.sleep(1)
    assert process.stop() == 0
    final = dict(re.findall(r" (dead_letters|exchange_errors)=(\d+)", process.log().split(" counters ")[-1]))
    assert final["dead_letters"] == "0" and topic_size(kafka, topics["dead_letter"]) == 0
    published = topic_size(kafka, topics["ticker"])
    ws_records = _ws_count(consume(kafka, topics["ticker"], lambda got: len(got) >= published))
    journaled = len(sim.journal(exchange))
    if exchange == "coinone":
        assert ws_records <= journaled
    else:
        assert journaled == ws_records + int(final["exchange_errors"]), (journaled, ws_records, final)


@pytest.mark.parametrize("exchange", [name for name in EXCHANGES if mode(name).repeatable_frames])
def test_bulk_frames_of_the_benchmark_rates_are_the_exchange_s_protocol(
        exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    """Without a journal, at BULK_RATE_PER_S and above, the simulator writes pre-rendered
    frames in bulk (the benchmark's load; the edge shapes among them): the worker must
    read them as it reads the frames socket.send() writes, every ticker a record, none a
    dead letter, past the point where the ring comes round again."""
    sim, process, topics = _setup(exchange, kafka, simulator, worker, tmp_path, rate=BULK_RATE_PER_S,
                                  markets=8, journal=False)
    messages = consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= BULK_RING + 500, timeout_s=60)
    assert process.stop() == 0
    records = _values(messages)
    assert len(audited(kafka, topics["ticker"]).runs) == 1
    assert {record["symbol"] for record in records} == set(sim.config["exchanges"][exchange]["symbols"])
    assert all(PLAIN_DECIMAL.match(record["last"]) for record in records)
    assert topic_size(kafka, topics["dead_letter"]) == 0
    counters = process.counters()
    assert " dead_letters=0 " in counters, counters
    # Only Binance's edge shapes include an error (its bare {"code","msg"} form).
    assert (" exchange_errors=0 " in counters) == (exchange != "binance"), counters


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_rest_fallback_while_socket_is_down(exchange: str, kafka: str, simulator: Any, worker: Any,
                                            tmp_path: Any) -> None:
    sim, process, topics = _setup(exchange, kafka, simulator, worker, tmp_path)
    consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 20, timeout_s=60)
    down_at = time.time_ns()
    sim.fault(exchange, "ws_down", seconds=8)

    def rest_after_fault(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return sum(1 for _, v in got if v["source"] == "rest" and v["received_ns"] > down_at) >= 10

    messages = consume(kafka, topics["ticker"], rest_after_fault, timeout_s=60)
    first_rest = min(v["received_ns"] for _, v in messages if v["source"] == "rest" and v["received_ns"] > down_at)
    # Fallback starts within rest_fallback_after_s (2 s) plus one poll and some slack.
    assert (first_rest - down_at) / 1e9 < 6

    # The socket comes back, delivers again, and polling stops.
    wait_until(lambda: "REST polling stopped" in process.log(), 60, "the socket to deliver again")
    consume(kafka, topics["ticker"],
            lambda got: any(v["source"] == "ws" and v["received_ns"] > down_at + 8e9 for _, v in got))
    assert process.stop() == 0
    audited(kafka, topics["ticker"])
    log = process.log()
    assert "handshake refused: HTTP 503" in log
    assert "polling REST" in log


def test_a_socket_s_fallback_publishes_only_its_own_markets(kafka: str, simulator: Any, worker: Any,
                                                           tmp_path: Any) -> None:
    """OKX answers one REST call with every market's ticker. 210 markets take two sockets
    (200 a socket): while one of them is stalled, its fallback polls, and publishes its
    own markets only. The other socket streams on: a REST ticker of its markets, older
    than their last records, took them back in time (a quiet one kept it as its latest)."""
    sim, process, topics = _setup("okx", kafka, simulator, worker, tmp_path, rate=40, markets=210,
                                  runtime={"watchdog_s": 60, "ping_interval_s": 600})
    wait_until(lambda: "210 markets on 2 connection(s)" in process.log(), 30, "two sockets")
    consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 40, timeout_s=60)
    stalled_at = time.time_ns()
    stalled = set(sim.fault("okx", "stall", seconds=8, market="BTC-USDT")["markets"])
    assert 0 < len(stalled) < 210, stalled
    wait_until(lambda: "polling REST" in process.log(), 20, "the stalled socket's REST fallback")
    time.sleep(3)  # a few polls, every 0.5 s
    messages = consume(kafka, topics["ticker"],
                       lambda got: sum(1 for _, v in got if v["source"] == "rest" and v["received_ns"] > stalled_at)
                       >= 2 * len(stalled))
    assert process.stop() == 0
    polled = {record["raw_symbol"] for record in _values(messages)
              if record["source"] == "rest" and record["received_ns"] > stalled_at}
    assert polled == stalled, f"{len(polled - stalled)} markets of the streaming socket polled: {sorted(polled - stalled)[:5]}"
    audited(kafka, topics["ticker"])


def test_a_fallback_ticker_answered_after_the_socket_is_back_is_dropped(kafka: str, simulator: Any, worker: Any,
                                                                       tmp_path: Any) -> None:
    """A REST call of 8 s while the socket is down for 4 s: the socket is back, subscribed
    and publishing while the call is on its way. Its answer is older than the stream's
    records: published, the market's ticker went back in time after the stream's first
    records (a quiet market kept the older one as its latest). It is dropped, counted in
    rest_skipped. Upbit: its subscription is answered with every market's snapshot."""
    sim, process, topics = _setup("upbit", kafka, simulator, worker, tmp_path, runtime={"rest_timeout_s": 15})
    consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 20, timeout_s=60)
    down_at = time.time_ns()
    # Asked 2 s into the outage (rest_fallback_after_s), answered 8 s later, after the
    # reconnect (4 s, plus a backoff of at most ~1.3 s) has been heard.
    sim.fault("upbit", "slow_rest", count=1, seconds=8)
    sim.fault("upbit", "ws_down", seconds=4)
    wait_until(lambda: "polling REST" in process.log(), 20, "the REST fallback")
    # Logged once the call on its way has answered: the loop stops at the next look.
    wait_until(lambda: "socket answers again" in process.log(), 30, "the socket back")
    answered_at = time.time_ns()
    messages = consume(kafka, topics["ticker"],
                       lambda got: any(v["source"] == "ws" and v["received_ns"] > answered_at for _, v in got))
    assert process.stop() == 0
    records = _values(messages)
    back_at = min(record["received_ns"] for record in records if record["source"] == "ws"
                  and record["received_ns"] > down_at + 4e9)
    late = [record for record in records if record["source"] == "rest" and record["received_ns"] > back_at]
    assert not late, f"{len(late)} REST records after the stream's first one back"
    counters = process.counters()
    skipped = re.search(r" rest_skipped=(\d+)", counters)
    assert skipped and int(skipped.group(1)) >= 1, counters
    audited(kafka, topics["ticker"])


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_garbage_frame_is_dead_lettered_raw(exchange: str, kafka: str, simulator: Any, worker: Any,
                                            tmp_path: Any) -> None:
    sim, process, topics = _setup(exchange, kafka, simulator, worker, tmp_path)
    consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 10, timeout_s=60)
    sim.fault(exchange, "garbage", count=1)
    letters = consume(kafka, topics["dead_letter"], lambda got: len(got) >= 1)
    key, letter = letters[0]
    assert key == exchange
    assert letter["exchange"] == exchange
    assert letter["raw"] == "\x00\x01garbage{not json"
    assert letter["source"] == "ws"
    assert "DecodeError" in letter["error"]
    # The worker goes on.
    after = time.time_ns()
    consume(kafka, topics["ticker"], lambda got: any(v["received_ns"] > after for _, v in got))
    assert process.stop() == 0


@pytest.mark.xdist_group("heavy")
@pytest.mark.parametrize("exchange", EXCHANGES)
def test_sigterm_under_load_loses_nothing(exchange: str, kafka: str, simulator: Any, worker: Any,
                                          tmp_path: Any) -> None:
    sim, process, topics = _setup(exchange, kafka, simulator, worker, tmp_path, rate=3000, markets=20)
    consume(kafka, topics["ticker"], lambda got: _ws_count(got) >= 1000, timeout_s=60)
    time.sleep(2)
    assert process.stop(signal.SIGTERM) == 0
    final = re.findall(r"counters frames=\d+ records=(\d+) .* delivered=(\d+) delivery_failures=(\d+)",
                       process.log())[-1]
    published, delivered, failures = map(int, final)
    assert published == delivered and failures == 0, final
    assert list(run_sizes(audited(kafka, topics["ticker"])).values()) == [published]
    assert published > 3000
