"""The shipped supervisord.conf, run for real: every enabled worker delivers to Kafka,
`supervisorctl restart <one>` restarts only that one, and a bad config stops its worker
for good (FATAL, or EXITED with code 78) after one clear line per start.

The conf is used as shipped except that its logs/ and run/ directories are moved into
the test's temporary directory (so a developer's running collector is not touched).
"""

import configparser
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, audited, consume, override_file, run_sizes, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

SUPERVISORD = Path(sys.executable).parent / "supervisord"
SUPERVISORCTL = Path(sys.executable).parent / "supervisorctl"
# A signalled worker stops reading its sockets within a turn of its loop: this long at most.
STOPS_READING_S = 0.5


def enabled_workers() -> list[str]:
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    return [section.split(":", 1)[1] for section in parser.sections()
            if section.startswith("program:") and parser.getboolean(section, "autostart", fallback=True)]


class Supervisor:
    def __init__(self, workdir: Path, override: Path, autostart: Collection[str] | None = None,
                 startsecs: int | None = None) -> None:
        """autostart: start only these programs (the others stay configured, not started);
        startsecs: this instead of the shipped value, for every program."""
        text = (ROOT / "supervisord.conf").read_text()
        if startsecs is not None:
            assert "startsecs=5\n" in text
            text = text.replace("startsecs=5\n", f"startsecs={startsecs}\n")
        if autostart is not None:
            text = re.sub(r"^\[program:(\w+)\]\n(?:.+\n)*?autostart=true$",
                          lambda m: m[0] if m[1] in autostart else m[0].replace("autostart=true", "autostart=false"),
                          text, flags=re.MULTILINE)
        text = text.replace("%(here)s/run", str(workdir / "run")).replace("%(here)s/logs", str(workdir / "logs"))
        text = text.replace("%(here)s", str(ROOT))
        # exist_ok: a second supervisord may take over the first one's directories.
        (workdir / "run").mkdir(exist_ok=True)
        (workdir / "logs").mkdir(exist_ok=True)
        self.conf = workdir / "supervisord.conf"
        self.conf.write_text(text)
        self.logs = workdir / "logs"
        env = dict(os.environ, COINSTREAM_CONFIG=str(override))
        self.process = subprocess.Popen([str(SUPERVISORD), "-c", str(self.conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.socket = workdir / "run" / "supervisor.sock"

    def ctl(self, *args: str) -> str:
        done = subprocess.run([str(SUPERVISORCTL), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60)
        return done.stdout

    def log(self) -> str:
        """supervisord's own log: what it spawned, and how each process exited."""
        return (self.logs / "supervisord.log").read_text()

    def states(self) -> dict[str, tuple[str, str]]:
        """program -> (state, pid or '')"""
        result = {}
        for line in self.ctl("status").splitlines():
            match = re.match(r"^(\S+)\s+(\S+)\s*(?:pid (\d+))?", line)
            if match:
                result[match.group(1)] = (match.group(2), match.group(3) or "")
        return result

    def stop(self) -> None:
        self.ctl("shutdown")
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_all_enabled_workers_deliver_and_restart_one(kafka: str, simulator: Any, tmp_path: Path) -> None:
    exchanges = enabled_workers()
    assert {"binance", "upbit"} <= set(exchanges)
    sim = simulator(*exchanges, rate=20, markets=3)
    override = override_file(tmp_path, kafka, sim.config["exchanges"])
    topic = yaml.safe_load(override.read_text())["topics"]["ticker"]
    supervisor = Supervisor(tmp_path, override)
    try:
        # supervisorctl's socket is its owner's only.
        wait_until(lambda: supervisor.socket.exists(), 30, "supervisord's socket")
        assert stat.S_IMODE(supervisor.socket.stat().st_mode) == 0o700

        wait_until(lambda: all(supervisor.states().get(name, ("",))[0] == "RUNNING" for name in exchanges),
                   60, "every enabled worker RUNNING")

        def every_exchange(got: list[tuple[str, dict[str, Any]]]) -> bool:
            return {value["exchange"] for _, value in got if value["source"] == "ws"} >= set(exchanges)

        consume(kafka, topic, every_exchange, timeout_s=90)

        target = "kraken" if "kraken" in exchanges else "binance"
        before = supervisor.states()
        assert target + ": stopped" in supervisor.ctl("restart", target)
        after = wait_until(lambda: (s := supervisor.states()) and s[target][0] == "RUNNING" and s, 30,
                           f"{target} RUNNING again")
        assert after[target][1] != before[target][1], "restarted worker has a new pid"
        for name in exchanges:
            if name != target:
                assert after[name] == before[name], f"{name} was touched by restarting {target}"

        # The restarted worker continues under a new run, numbered from 1 again.
        restarted_at = time.time_ns()

        def new_run_flows(got: list[tuple[str, dict[str, Any]]]) -> bool:
            return sum(1 for _, v in got if v["exchange"] == target and v["received_ns"] > restarted_at
                       and v["source"] == "ws") >= 5

        consume(kafka, topic, new_run_flows, timeout_s=60)
        # Every worker still runs: the newest runs' tails may be on their way.
        runs = run_sizes(audited(kafka, topic, ended=False), target)
        assert len(runs) == 2, f"{target}: expected the first and the restarted run, got {runs}"
        for name in exchanges:
            assert "Traceback" not in (supervisor.logs / f"{name}.log").read_text()
    finally:
        supervisor.stop()


def _broken_override(kafka: str, tmp_path: Path) -> tuple[Path, str]:
    """An override with a misspelt key, and the one line a worker must log for it."""
    override = tmp_path / "broken.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '{kafka}'}}}}\n"
                        "exchanges: {binance: {symbol: [BTC-USDT]}}\n")
    return override, f"coinstream binance: error: {override}: exchanges.binance.symbol: unknown key"


def test_bad_config_stops_the_worker_with_one_clear_line(kafka: str, tmp_path: Path) -> None:
    override, expected = _broken_override(kafka, tmp_path)
    supervisor = Supervisor(tmp_path, override, autostart={"binance"})
    try:
        ended = wait_until(lambda: (s := supervisor.states().get("binance", ("",))[0]) in ("FATAL", "EXITED") and s,
                           60, "binance FATAL or EXITED")
        # Nothing restarts it any more: the state and its log stay as they are.
        time.sleep(5)
        assert supervisor.states()["binance"][0] == ended
        log = (supervisor.logs / "binance.log").read_text().splitlines()
        assert log and set(log) == {expected}, log
        if ended == "FATAL":
            # Every start exited within startsecs: the first start and its three retries.
            assert len(log) == 4, log
        else:
            # One start outlasted startsecs (a loaded machine): its exit code 78 ended it.
            assert "exited: binance (exit status 78; expected)" in supervisor.log()
            assert len(log) <= 4, log
    finally:
        supervisor.stop()


def test_a_config_error_after_startsecs_is_not_restarted(kafka: str, tmp_path: Path) -> None:
    """startsecs=0 makes every start count as RUNNING, as a slow start on a loaded machine
    would: only the exit code (78, listed in exitcodes) keeps supervisord from looping."""
    override, expected = _broken_override(kafka, tmp_path)
    supervisor = Supervisor(tmp_path, override, autostart={"binance"}, startsecs=0)
    try:
        wait_until(lambda: supervisor.states().get("binance", ("",))[0] == "EXITED", 60, "binance EXITED")
        time.sleep(5)
        assert supervisor.states()["binance"][0] == "EXITED"
        assert "exited: binance (exit status 78; expected)" in supervisor.log()
        assert (supervisor.logs / "binance.log").read_text().splitlines() == [expected]
    finally:
        supervisor.stop()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaps has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _workers_of(override: Path) -> dict[str, list[int]]:
    """exchange -> pids of the live worker processes configured by `override`."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"COINSTREAM_CONFIG={override}".encode() in environment:
            for part in command:
                if part.startswith(b"workers."):
                    found.setdefault(part.decode().split(".", 1)[1], []).append(int(entry.name))
    return found


def test_workers_stop_when_supervisord_is_killed_and_the_next_one_runs_one_set(
        kafka: str, simulator: Any, tmp_path: Path) -> None:
    exchanges = ("binance", "upbit")
    sim = simulator(*exchanges, rate=20, markets=3)
    override = override_file(tmp_path, kafka, sim.config["exchanges"])
    topic = yaml.safe_load(override.read_text())["topics"]["ticker"]
    first = Supervisor(tmp_path, override, autostart=set(exchanges))
    orphans: list[int] = []
    second = None
    try:
        wait_until(lambda: all(first.states().get(name, ("",))[0] == "RUNNING" for name in exchanges),
                   60, "both workers RUNNING")
        consume(kafka, topic, lambda got: {v["exchange"] for _, v in got if v["source"] == "ws"} >= set(exchanges),
                timeout_s=60)
        orphans = [pid for pids in _workers_of(override).values() for pid in pids]
        assert len(orphans) == len(exchanges)

        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        killed_ns = time.time_ns()
        # Each worker stops as on SIGTERM: flushed within stop_timeout_s (10 s here), then gone.
        wait_until(lambda: not any(map(_alive, orphans)), 15, "the orphaned workers to stop")

        second = Supervisor(tmp_path, override, autostart=set(exchanges))
        wait_until(lambda: all(second.states().get(name, ("",))[0] == "RUNNING" for name in exchanges),
                   60, "both workers RUNNING under the new supervisord")
        restarted_ns = time.time_ns()

        def new_runs_flow(got: list[tuple[str, dict[str, Any]]]) -> bool:
            return all(sum(1 for _, v in got if v["exchange"] == name and v["received_ns"] > restarted_ns) >= 5
                       for name in exchanges)

        messages = consume(kafka, topic, new_runs_flow, timeout_s=60)
        assert {name: len(pids) for name, pids in _workers_of(override).items()} == dict.fromkeys(exchanges, 1)
        report = audited(kafka, topic, ended=False)  # the killed supervisord's runs were flushed whole
        for name in exchanges:
            records = [v for _, v in messages if v["exchange"] == name]
            runs = run_sizes(report, name)
            assert len(runs) == 2, f"{name}: {runs}"
            # One run at a time: the orphan stopped reading as supervisord died. Its SIGTERM
            # (PDEATHSIG) arrives as supervisord dies, before killed_ns, but the loop handles
            # it at its next turn: a read taken meanwhile is still published (one was, 3 ms
            # after killed_ns, in a CI run). Not a frame later than STOPS_READING_S.
            old, new = sorted(runs, key=lambda run: min(v["received_ns"] for v in records if v["run"] == run))
            assert max(v["received_ns"] for v in records if v["run"] == old) < killed_ns + STOPS_READING_S * 1e9
            assert min(v["received_ns"] for v in records if v["run"] == new) > killed_ns
    finally:
        for pid in orphans:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        (second or first).stop()
