"""SIGKILL under the shipped supervisord.conf: a worker at ~2,000 ticker msg/s and 500
book updates/s is killed with `kill -9`; supervisord restarts it under a new run numbered
from 1; the killed run's records in Kafka, tickers and books each on their topic, are
1..N without a gap, and what it had published but Kafka had not yet taken is measured.
`supervisorctl stop/start <one>` leaves the other workers alone.
"""

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinstream import verify
from tests.harness import override_file, wait_until
from tests.integration.test_sink_faults import counters
from tests.integration.test_supervisord import Supervisor, enabled_workers

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

TARGET = "binance"
RATE_PER_S = 2000
BOOK_RATE_PER_S = 500
RUN_STARTED = re.compile(r" run ([0-9a-f]+): ")


def runs_in_log(log: str) -> list[tuple[str, str]]:
    """(run id, that run's part of the log), oldest first: runs of one program share its log file.
    A run names itself on more than one line (its tickers' connections, its books')."""
    parts = RUN_STARTED.split(log)
    runs: list[tuple[str, str]] = []
    for run, part in zip(parts[1::2], parts[2::2]):
        if runs and runs[-1][0] == run:
            runs[-1] = (run, runs[-1][1] + part)
        else:
            runs.append((run, part))
    return runs


def test_sigkill_loses_only_what_kafka_had_not_taken(kafka: str, simulator: Any, tmp_path: Path) -> None:
    exchanges = enabled_workers()
    assert TARGET in exchanges
    sim = simulator(*exchanges, rate=5, markets=3)
    sim.control(TARGET, "rate", per_s=RATE_PER_S)
    sim.control(TARGET, "book_rate", per_s=BOOK_RATE_PER_S)
    # A counters line every second, so the killed run's last one is at most 1 s old.
    sections = {**sim.config["exchanges"]}
    sections[TARGET] = {**sections[TARGET], "channels": ["ticker", "book"]}
    override = override_file(tmp_path, kafka, sections, {"stats_interval_s": 1})
    topic, book_topic = (yaml.safe_load(override.read_text())["topics"][name] for name in ("ticker", "book"))
    supervisor = Supervisor(tmp_path, override)
    target_log = supervisor.logs / f"{TARGET}.log"
    try:
        wait_until(lambda: all(supervisor.states().get(name, ("",))[0] == "RUNNING" for name in exchanges),
                   90, "every enabled worker RUNNING")

        def killed_run_flowing() -> bool:
            runs = runs_in_log(target_log.read_text())
            return (len(runs) == 1 and "counters" in runs[0][1]
                    and counters(runs[0][1])["records"] > 3 * RATE_PER_S
                    and counters(runs[0][1])["book_records"] > BOOK_RATE_PER_S)

        wait_until(killed_run_flowing, 60, f"{TARGET} publishing at full rate")
        before = supervisor.states()
        # Kill just after a counters line is written, so that it is as fresh as can be.
        lines_now = target_log.read_text().count(" counters ")
        wait_until(lambda: target_log.read_text().count(" counters ") > lines_now, 5, "a fresh counters line",
                   interval_s=0.002)
        os.kill(int(before[TARGET][1]), signal.SIGKILL)
        killed_at = time.monotonic()

        restarted = wait_until(
            lambda: (s := supervisor.states()) and s[TARGET][0] == "RUNNING" and s[TARGET][1] != before[TARGET][1]
            and s, 60, f"supervisord to restart {TARGET}")
        restart_s = time.monotonic() - killed_at
        for name in exchanges:
            if name != TARGET:
                assert restarted[name] == before[name], f"{name} was touched by killing {TARGET}"
        wait_until(lambda: len(runs := runs_in_log(target_log.read_text())) == 2 and "counters" in runs[1][1],
                   30, "the new run's first counters line")

        # stop <one>: SIGTERM flushes the new run completely; the others keep their pids.
        assert f"{TARGET}: stopped" in supervisor.ctl("stop", TARGET)
        stopped = supervisor.states()
        assert stopped[TARGET][0] == "STOPPED"
        for name in exchanges:
            if name != TARGET:
                assert stopped[name] == before[name], f"{name} was touched by stopping {TARGET}"

        # Every record of both runs is in the topic now; the other workers keep adding theirs.
        (killed_run, killed_log), (new_run, new_log) = runs_in_log(target_log.read_text())
        report = verify.audit({"bootstrap.servers": kafka}, [topic, book_topic])
        audit = "\n".join(report.text())
        assert all(run.ok for run in report.runs if run.exchange != TARGET), audit
        for audited, counted in ((topic, "records"), (book_topic, "book_records")):
            runs = {run.run: run for run in report.runs_of(TARGET) if run.topic == audited}
            assert set(runs) == {killed_run, new_run}, audit
            killed, new = runs[killed_run], runs[new_run]
            assert new.ok and (new.first_seq, new.records) == (1, counters(new_log)[counted]), \
                f"SIGTERM delivered all of the new run's {counted}, numbered from 1"
            # Nothing of the killed run twice, and no hole in its middle: partitions are sent
            # independently, so its tail may hold holes, but only above the lowest last seq of
            # its partitions; a later run exists, so verify counts that tail as lost.
            assert (killed.repeats, killed.out_of_order, killed.missing) == (0, 0, []), audit
            assert killed.tail_ended and (killed.ok == (not killed.tail)), audit
            complete_to = killed.tail[0][0] - 1 if killed.tail else killed.last_seq
            published = counters(killed_log)[counted]  # the last counters line, written just before the kill
            published_at_least = max(published, killed.last_seq)
            print(f"\nSIGKILL at {RATE_PER_S} msg/s, {BOOK_RATE_PER_S} book updates/s, {audited}: killed run's "
                  f"last counters line: {counted}={published}; in Kafka: {killed.records}, seq 1..{complete_to} "
                  f"complete, highest seq {killed.last_seq}, {killed.tail_count} holes in the tail; "
                  f"lost at least: {published_at_least - killed.records}; restarted in {restart_s:.1f} s; "
                  f"new run seq 1..{new.records} complete")

        # start <one>: a third run; the others still untouched.
        assert f"{TARGET}: started" in supervisor.ctl("start", TARGET)
        started = supervisor.states()
        assert started[TARGET][0] == "RUNNING" and started[TARGET][1] not in ("", before[TARGET][1])
        for name in exchanges:
            if name != TARGET:
                assert started[name] == before[name], f"{name} was touched by starting {TARGET}"
        assert "Traceback" not in target_log.read_text()
    finally:
        supervisor.stop()
