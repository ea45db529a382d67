"""Quiet markets, all ten exchanges at once (one simulator process, ten workers): a socket
whose markets send nothing but which answers its keepalives is never reconnected and never
falls back to REST; one that stops answering is still caught within watchdog_s.

The workers keep their exchanges' own keepalive intervals (15 to 30 s): within a watchdog
of a few seconds only the worker's liveness probes, sent when a socket has been silent,
get answers back. (The exchanges' idle rules meet the workers' keepalives in each
exchange's own tests and in test_keepalive_rules.py.)
"""

import re
import time
from typing import Any

import pytest
import yaml

from tests import reference
from tests.harness import consume, override_file, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

EXCHANGES = sorted(reference.PARSERS)
WATCHDOG_S = 3
# The watchdog checks a few times per probe period (shared.worker): a verdict comes within
# watchdog_s and one check; the rest is slack for ten workers on a loaded 2-core machine.
DETECTION_BOUND_S = WATCHDOG_S + 2
COUNTERS = re.compile(r"counters frames=(\d+) .* reconnects=(\d+)\S* host_switches=\d+ rest_polls=(\d+) ")
REFRESHES = re.compile(r" refreshes=(\d+) refreshed=(\d+) ")


def _counters(log: str) -> tuple[int, int, int]:
    """(frames, reconnects, rest_polls) from the worker's last counters line."""
    frames, reconnects, rest_polls = COUNTERS.findall(log)[-1]
    return int(frames), int(reconnects), int(rest_polls)


def _values(messages: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [value for _, value in messages]


def _start(exchange: str, rate: float, runtime: dict[str, Any], kafka: str, simulator: Any, worker: Any,
           tmp_path: Any) -> tuple[Any, Any, str]:
    """The simulator (3 markets at `rate`) and a worker with the quiet tests' watchdog and
    counters every second, `runtime` beside; the ticker topic."""
    sim = simulator(exchange, rate=rate, markets=3)
    config = override_file(tmp_path, kafka, sim.config["exchanges"],
                           {"watchdog_s": WATCHDOG_S, "stats_interval_s": 1, **runtime})
    return sim, worker(exchange, config), yaml.safe_load(config.read_text())["topics"]["ticker"]


def test_quiet_markets_keep_their_sockets_and_silent_dead_ones_are_caught(
        kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator(*EXCHANGES, rate=0, markets=3)
    config = override_file(tmp_path, kafka, sim.config["exchanges"],
                           {"watchdog_s": WATCHDOG_S, "rest_fallback_after_s": WATCHDOG_S, "stats_interval_s": 1})
    workers = {name: worker(name, config) for name in EXCHANGES}
    wait_until(lambda: all(" connected to " in process.log() and " counters " in process.log()
                           for process in workers.values()), 60, "every worker to connect")
    time.sleep(1)  # the startup snapshots end
    before = {name: sim.control(name, "stats") for name in EXCHANGES}
    logged_before = {name: _counters(process.log()) for name, process in workers.items()}

    time.sleep(3 * WATCHDOG_S)  # no ticker on any socket: only keepalives and their answers
    after = {name: sim.control(name, "stats") for name in EXCHANGES}
    time.sleep(1.5)  # one more counters line
    logged_after = {name: _counters(process.log()) for name, process in workers.items()}
    table = {name: {"reconnects": after[name]["connections_total"] - before[name]["connections_total"],
                    "rest_calls": after[name]["rest_calls"] - before[name]["rest_calls"],
                    "logged_reconnects": logged_after[name][1] - logged_before[name][1],
                    "logged_rest_polls": logged_after[name][2] - logged_before[name][2],
                    "frames_heard": logged_after[name][0] - logged_before[name][0]}
             for name in EXCHANGES}
    print(f"\nquiet for {3 * WATCHDOG_S} s (watchdog_s {WATCHDOG_S}):")
    for name, row in table.items():
        print(f"  {name:9} " + " ".join(f"{key}={value}" for key, value in row.items()))
    noisy = {name: row for name, row in table.items()
             if row["reconnects"] or row["rest_calls"] or row["logged_reconnects"] or row["logged_rest_polls"]}
    assert not noisy, f"quiet sockets were reconnected or fell back to REST: {noisy}"
    assert all("polling REST" not in process.log() for process in workers.values())

    # Now every socket stops answering (not even pongs): each is caught within watchdog_s.
    for name in EXCHANGES:
        sim.fault(name, "stall", seconds=DETECTION_BOUND_S + 2)  # over by the end
    stalled_at = time.monotonic()
    caught: dict[str, float] = {}

    def all_caught() -> bool:
        for name, process in workers.items():
            if name not in caught and "stalled: nothing heard for" in process.log():
                caught[name] = time.monotonic() - stalled_at
        return len(caught) == len(workers)

    wait_until(all_caught, DETECTION_BOUND_S + 5, "every stalled socket to be caught", interval_s=0.05)
    print("caught after (s): " + " ".join(f"{name}={seconds:.1f}" for name, seconds in caught.items()))
    late = {name: seconds for name, seconds in caught.items() if seconds > DETECTION_BOUND_S}
    assert not late, f"stalled sockets caught later than {DETECTION_BOUND_S} s: {late}"
    for process in workers.values():
        assert process.stop() == 0


@pytest.mark.parametrize("exchange", ["upbit", "binance"])
def test_quiet_markets_are_refreshed_from_rest_and_a_lost_subscription_is_renewed(
        exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    """Quiet and unchanged, the refreshes read REST and publish nothing. Then the socket's
    subscription is dropped unannounced (the socket answers its pings) while the markets
    trade: the next refresh publishes their new numbers and, their last prices having
    moved without a push, ends the session; the reconnect subscribes again and the stream
    is back. Before, the socket stayed as it was: REST every rest_refresh_s, forever."""
    sim, process, topic = _start(exchange, 0, {"rest_fallback_after_s": WATCHDOG_S, "rest_refresh_s": 2},
                                 kafka, simulator, worker, tmp_path)

    def refreshes() -> tuple[int, int]:
        found = REFRESHES.findall(process.log())
        return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)

    wait_until(lambda: refreshes()[0] >= 2, 30, "two refreshes")
    assert refreshes()[1] == 0
    quiet = _values(consume(kafka, topic, lambda got: len(got) >= 3))  # the REST snapshot, Upbit's socket's too
    assert "subscription lost" not in process.log()

    sim.control(exchange, "rate", per_s=30)
    sim.fault(exchange, "forget")
    forgotten_ns = time.time_ns()
    records = _values(consume(kafka, topic, lambda got: any(
        v["source"] == "ws" and v["received_ns"] > forgotten_ns for _, v in got), timeout_s=20))
    back_ns = min(record["received_ns"] for record in records
                  if record["source"] == "ws" and record["received_ns"] > forgotten_ns)
    assert process.stop() == 0
    last_before = {record["symbol"]: record for record in quiet}
    refreshed = [record for record in records if forgotten_ns < record["received_ns"] < back_ns]
    assert refreshed and all(record["source"] == "rest" for record in refreshed), refreshed
    for record in refreshed:
        assert record["last"] != last_before[record["symbol"]]["last"] or \
            record["volume_24h"] != last_before[record["symbol"]]["volume_24h"], record
    log = process.log()
    assert re.search(r"subscription lost: \d quiet market\(s\) traded without a push", log), log[-2000:]
    assert "polling REST" not in log
    assert (back_ns - forgotten_ns) / 1e9 < 10


@pytest.mark.parametrize("exchange", ["upbit", "binance"])
def test_a_trade_whose_push_is_on_its_way_when_rest_shows_it_keeps_the_socket(
        exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    """A quiet market trades; the refresh's REST call shows the trade before its push
    arrives, 1 s after REST answered (late_push). The refresh publishes REST's ticker and
    waits TRADE_PUSH_GRACE_S (2 s): the push arrives within it, so the subscription is not
    lost and the socket is kept. Without the grace the session is ended for a
    subscription that was never lost."""
    sim, process, topic = _start(exchange, 0, {"rest_fallback_after_s": WATCHDOG_S, "rest_refresh_s": 2},
                                 kafka, simulator, worker, tmp_path)
    wait_until(lambda: len(REFRESHES.findall(process.log())) >= 2, 30, "two refreshes")
    market = _values(consume(kafka, topic, lambda got: len(got) >= 3))[0]["raw_symbol"]
    connections = sim.control(exchange, "stats")["connections_total"]

    sim.fault(exchange, "late_push", market=market, seconds=1)
    traded_ns = time.time_ns()
    records = [record for record in _values(consume(kafka, topic, lambda got: any(
        v["source"] == "ws" and v["received_ns"] > traded_ns for _, v in got), timeout_s=15))
        if record["received_ns"] > traded_ns]
    time.sleep(3)  # the refresh's grace is over
    log = process.log()
    assert process.stop() == 0
    pushed = next(record for record in records if record["source"] == "ws")
    assert pushed["raw_symbol"] == market
    shown = [record for record in records if record["source"] == "rest" and record["received_ns"] < pushed["received_ns"]]
    # The fault staged what it should: REST showed the trade before its push came.
    assert [record["last"] for record in shown if record["raw_symbol"] == market] == [pushed["last"]], records
    assert "subscription lost" not in log, log[-2000:]
    assert sim.control(exchange, "stats")["connections_total"] == connections


@pytest.mark.parametrize("exchange", ["upbit", "binance"])
def test_a_busy_socket_whose_subscription_is_dropped_is_renewed_within_seconds(
        exchange: str, kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    """A streaming socket's subscription is dropped unannounced (forget) while its markets
    trade and it answers its pings: once it has published nothing for
    rest_fallback_after_s, REST shows trades it did not push, and the session is renewed
    within seconds. Before, its markets waited for the next quiet-market refresh,
    rest_refresh_s (300 s here, the default) on."""
    sim, process, topic = _start(exchange, 20, {"rest_fallback_after_s": WATCHDOG_S}, kafka, simulator, worker,
                                 tmp_path)
    wait_until(lambda: " connected to " in process.log(), 30, "the socket to connect")
    time.sleep(WATCHDOG_S + 1)  # streaming for longer than rest_fallback_after_s
    assert "subscription lost" not in process.log()

    sim.fault(exchange, "forget")
    forgotten_ns = time.time_ns()
    records = _values(consume(kafka, topic, lambda got: any(
        v["source"] == "ws" and v["received_ns"] > forgotten_ns + 1e9 for _, v in got), timeout_s=20))
    log = process.log()
    assert process.stop() == 0
    assert re.search(r"subscription lost: \d market\(s\) traded without a push since the socket fell silent", log), \
        log[-2000:]
    assert "polling REST" not in log
    back_ns = min(record["received_ns"] for record in records
                  if record["source"] == "ws" and record["received_ns"] > forgotten_ns + 1e9)
    # What REST showed traded meanwhile is published, newer than the stream's last records.
    assert any(record["source"] == "rest" and forgotten_ns < record["received_ns"] < back_ns for record in records)
    # Silent for rest_fallback_after_s, a REST round, the push's grace (2 s), a reconnect.
    assert (back_ns - forgotten_ns) / 1e9 < WATCHDOG_S + 6


def test_an_exchange_whose_rest_and_stream_disagree_is_renewed_once_a_rest_refresh_s(
        kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    """REST shows a market's price a tick off the stream's, for good (rest_skew): at every
    lull the silent socket's check sees a trade that was never pushed. The first lull ends
    the session; later ones within rest_refresh_s do not, or such an exchange would be
    reconnected at every lull."""
    sim, process, topic = _start("upbit", 20, {"rest_fallback_after_s": 2, "rest_refresh_s": 60}, kafka, simulator,
                                 worker, tmp_path)
    market = _values(consume(kafka, topic, lambda got: len(got) >= 3))[0]["raw_symbol"]
    time.sleep(3)  # streaming for longer than rest_fallback_after_s
    sim.fault("upbit", "rest_skew", market=market)
    sim.control("upbit", "rate", per_s=0)  # a lull: the check finds the skew
    wait_until(lambda: "subscription lost" in process.log(), 20, "the first lull's renewal")
    for _ in range(2):  # a new session streams, then falls silent again
        sim.control("upbit", "rate", per_s=20)
        time.sleep(4)
        sim.control("upbit", "rate", per_s=0)
        time.sleep(5)
    log = process.log()
    assert process.stop() == 0
    assert log.count("subscription lost") == 1, log[-3000:]
    assert " reconnects=1[subscription_lost=1] " in process.counters(), process.counters()
