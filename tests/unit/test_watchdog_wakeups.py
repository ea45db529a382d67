"""A connection's watchdog and REST fallback sleep until their next deadline instead of
waking every second: an idle worker woke twice a second for them. Their contracts stay:
a probe after probe_after of silence, a stall after watchdog_s, the fallback after
rest_fallback_after_s, each from the last frame heard, never later."""

import asyncio
import logging
import time
from typing import Any

import pytest

import shared.worker
from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.worker import Connection, Worker
from workers.binance import Binance

WATCHDOG_S = 0.8
FALLBACK_AFTER_S = 0.6  # the probe comes after half of it: 0.3 s of silence


class CountedSleeps:
    """shared.worker's asyncio, counting its sleeps: a watchdog's or fallback's pass each."""

    def __init__(self) -> None:
        self.sleeps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.sleeps += 1
        await asyncio.sleep(delay)


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> CountedSleeps:
    counted = CountedSleeps()
    monkeypatch.setattr(shared.worker, "asyncio", counted)
    return counted


class Transport:
    aborted_at: float | None = None

    def abort(self) -> None:
        self.aborted_at = time.monotonic()

    def get_write_buffer_size(self) -> int:
        return 0


class Socket:
    """What the watchdog uses of a MessageConnection; each ping is answered `answer_s` later."""

    writes_held = False

    def __init__(self, connection: Connection, answer_s: float | None) -> None:
        self.transport = Transport()
        self.pings: list[float] = []
        self._connection = connection
        self._answer_s = answer_s

    async def ping(self) -> None:
        self.pings.append(time.monotonic())
        if self._answer_s is not None:
            asyncio.get_running_loop().call_later(self._answer_s, self._connection._on_control)


def _connection(fallback_after_s: float = FALLBACK_AFTER_S) -> Connection:
    exchange = ExchangeConfig(ws_url="ws://127.0.0.1:9/stream", rest_url="http://127.0.0.1:9", symbols=["BTC-USDT"])
    runtime = Runtime(watchdog_s=WATCHDOG_S, rest_fallback_after_s=fallback_after_s, rest_refresh_s=0)
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, runtime, StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test.watchdog"))
    return Connection(worker, [worker.venue.market("BTC", "USDT")], 0)


def _watch(connection: Connection, socket: Socket, seconds: float, frames_every_s: float | None) -> Any:
    async def run() -> None:
        watchdog = asyncio.create_task(connection._watchdog(socket, time.monotonic()))  # type: ignore[arg-type]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not watchdog.done():
            await asyncio.sleep(frames_every_s or 0.01)
            if frames_every_s:
                connection.last_heard = time.monotonic()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
    asyncio.run(run())


def test_with_frames_flowing_the_watchdog_wakes_once_a_probe_time(passes: CountedSleeps) -> None:
    connection = _connection()
    socket = Socket(connection, answer_s=0.001)
    _watch(connection, socket, 1.5, frames_every_s=0.02)
    # Once a probe time (0.3 s): 5 passes in 1.5 s. A tick of a quarter of it, as
    # before: 20.
    assert passes.sleeps <= 7, passes.sleeps
    assert not socket.pings and socket.transport.aborted_at is None


def test_a_silent_socket_is_probed_and_an_unanswering_one_is_aborted_on_time() -> None:
    connection = _connection()
    socket = Socket(connection, answer_s=None)
    start = time.monotonic()
    _watch(connection, socket, 2.0, frames_every_s=None)
    [probe] = socket.pings
    # Bounds with room for a loaded machine's late timers: the contract is "not sooner".
    assert FALLBACK_AFTER_S / 2 <= probe - start < FALLBACK_AFTER_S / 2 + 0.15
    assert socket.transport.aborted_at is not None
    assert WATCHDOG_S < socket.transport.aborted_at - start < WATCHDOG_S + 0.2
    assert "stalled" in connection._stalled


def test_an_answering_socket_is_probed_after_each_silence_and_kept() -> None:
    connection = _connection()
    socket = Socket(connection, answer_s=0.01)
    start = time.monotonic()
    _watch(connection, socket, 2.0, frames_every_s=None)
    assert socket.transport.aborted_at is None
    # A probe a probe time after the last answer: ~0.31 s apart (a tick of a quarter of
    # it, as before: 0.38), never a silence of the fallback's 0.6 s.
    gaps = [later - earlier for earlier, later in zip([start, *socket.pings], socket.pings)]
    assert len(socket.pings) >= 4 and all(gap < FALLBACK_AFTER_S for gap in gaps), gaps
    assert sorted(gaps)[len(gaps) // 2] < FALLBACK_AFTER_S / 2 + 0.04, gaps


def test_with_frames_flowing_the_fallback_wakes_once_a_fallback_time(passes: CountedSleeps) -> None:
    connection = _connection(fallback_after_s=2.0)
    connection.worker.snapshot_done.set()

    async def run() -> None:
        fallback = asyncio.create_task(connection.fallback())
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            connection.last_heard = time.monotonic()
        assert not fallback.done()
        fallback.cancel()
        await asyncio.gather(fallback, return_exceptions=True)
    asyncio.run(run())
    # Once a fallback time (2 s): 2 passes in 2.5 s. Every second, as before: 3.
    assert passes.sleeps <= 2, passes.sleeps
    assert connection.worker.stats.rest_polls == 0
