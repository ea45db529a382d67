"""Hostile WebSocket peers the simulator does not play: a raw server in the test, speaking
just enough RFC 6455 to be one, against the Binance worker (REST from the simulator)."""

import asyncio
import base64
import hashlib
import re
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import fixture_bytes
from tests.harness import WorkerProcess, consume, override_file, wait_until

pytestmark = pytest.mark.integration

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A ping with the largest payload a control frame takes (125 bytes), unmasked (server to client).
PING = bytes([0x89, 125]) + b"p" * 125


class RawPeer(ABC):
    """A WebSocket server on a thread of its own: it completes the opening handshake, then
    `after_handshake` does the rest (reads nothing unless it says so)."""

    def __init__(self) -> None:
        self.connected_at: list[float] = []  # when each connection came (monotonic)
        self.loop = asyncio.new_event_loop()
        self._writers: list[asyncio.StreamWriter] = []
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    @property
    def connections(self) -> int:
        return len(self.connected_at)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected_at.append(time.monotonic())
        self._writers.append(writer)
        request = await reader.readuntil(b"\r\n\r\n")
        key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request).group(1)  # type: ignore[union-attr]
        accept = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        try:
            await self.after_handshake(writer)
        except ConnectionError:
            pass

    @abstractmethod
    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        """What the peer does once the socket is open."""

    def stop(self) -> None:
        def close() -> None:
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()
        self.loop.call_soon_threadsafe(close)
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class PingFlooder(RawPeer):
    """Sends ~20,000 pings a second and reads nothing: every pong the worker writes stays
    unread. stuck(): the server's own writes have waited over a second: the worker reads
    nothing either."""

    _draining_since: float | None = None

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(PING * 100)
            self._draining_since = time.monotonic()
            await writer.drain()
            self._draining_since = None
            await asyncio.sleep(0.005)

    def stuck(self) -> bool:
        since = self._draining_since
        return since is not None and time.monotonic() - since > 1


def rss_mb(process: WorkerProcess) -> float:
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def start_against(peer: RawPeer, kafka: str, simulator: Any, worker: Any, tmp_path: Path,
                  **runtime: Any) -> tuple[WorkerProcess, dict[str, str]]:
    """The Binance worker, its socket at `peer`, its REST at the simulator, and its topics;
    ETH-USDT alone, the market of the ticker fixture."""
    sim = simulator("binance", rate=0, markets=3)
    section = {**sim.config["exchanges"]["binance"], "ws_url": f"ws://127.0.0.1:{peer.port}/stream",
               "symbols": ["ETH-USDT"]}
    config = override_file(tmp_path, kafka, {"binance": section}, runtime)
    return worker("binance", config), yaml.safe_load(config.read_text())["topics"]


MAX_FRAME_BYTES = 4096


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked frame (server to client)."""
    length = (bytes([len(payload)]) if len(payload) < 126 else bytes([126]) + len(payload).to_bytes(2, "big"))
    return bytes([(0x80 if fin else 0) | opcode]) + length + payload


class SendingEdgeFrames(RawPeer):
    """On the first session: a ticker as a text message in three fragments with a ping
    among them, as a binary frame, after bytes that are no UTF-8 in a text frame, padded to
    exactly MAX_FRAME_BYTES; a second later, one a byte over. Later sessions hear nothing."""

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        if self.connections == 1:
            ticker = fixture_bytes("binance", "ws_ticker_combined_1.json").strip()
            writer.write(frame(0x1, ticker[:30], fin=False) + frame(0x9, b"between") +
                         frame(0x0, ticker[30:60], fin=False) + frame(0x0, ticker[60:]) +
                         frame(0x2, ticker) + frame(0x1, b"\xff\xfe" + ticker) +
                         frame(0x1, ticker.ljust(MAX_FRAME_BYTES)))
            await writer.drain()
            await asyncio.sleep(1)
            writer.write(frame(0x1, ticker.ljust(MAX_FRAME_BYTES + 1)))
            await writer.drain()
        await asyncio.sleep(3600)


def test_fragments_binary_frames_bad_utf8_and_the_frame_size_limit(kafka: str, simulator: Any, worker: Any,
                                                                  tmp_path: Path) -> None:
    """A fragmented message (a ping among its fragments), a binary frame and a frame of
    exactly max_frame_bytes are tickers; a text frame that is no UTF-8 is a dead letter
    (its raw with U+FFFD); a frame a byte over closes the socket with 1009, counted."""
    peer = SendingEdgeFrames()
    try:
        process, topics = start_against(peer, kafka, simulator, worker, tmp_path, max_frame_bytes=MAX_FRAME_BYTES,
                                        rest_fallback_after_s=30)
        wait_until(lambda: "closed 1009" in process.log(), 30, "the frame over the limit")
    finally:
        peer.stop()
    assert process.stop() == 0
    tickers = consume(kafka, topics["ticker"],
                      lambda got: sum(value["source"] == "ws" for _, value in got) >= 3)
    assert sum(value["source"] == "ws" for _, value in tickers) == 3
    assert {value["last"] for _, value in tickers if value["source"] == "ws"} == {"1792.84000000"}
    [(_, letter)] = consume(kafka, topics["dead_letter"], lambda got: len(got) >= 1)
    assert letter["raw"].startswith("\ufffd\ufffd{")
    counters = process.counters()
    assert " frames=4 " in counters and " dead_letters=1 " in counters, counters
    assert re.search(r" reconnects=\d+\[[^\]]*\bclosed_1009=1\b", counters), counters


class FragmentingForever(RawPeer):
    """A text message begun and never ended: continuation frames of 1,000 bytes, each
    far under the size limit, a hundred a second."""

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"[" + b" " * 999, fin=False))
        while True:
            writer.write(frame(0x0, b" " * 1000, fin=False))
            await writer.drain()
            await asyncio.sleep(0.01)


def test_a_message_fragmented_without_end_is_refused_at_the_size_limit(kafka: str, simulator: Any, worker: Any,
                                                                       tmp_path: Path) -> None:
    """The size limit bounds a whole message, not each of its fragments: the worker
    assembles fragmented messages itself (MessageConnection), and a message that never
    ends must not grow without bound. The socket is closed with 1009 once its fragments
    pass max_frame_bytes, counted, and the worker's memory stays flat."""
    peer = FragmentingForever()
    try:
        process, _ = start_against(peer, kafka, simulator, worker, tmp_path, max_frame_bytes=MAX_FRAME_BYTES * 4,
                                   rest_fallback_after_s=30)
        wait_until(lambda: "closed 1009" in process.log(), 30, "the message over the limit")
        before = rss_mb(process)
        wait_until(lambda: peer.connections >= 3, 30, "two more sessions")
        assert rss_mb(process) - before < 20
    finally:
        peer.stop()
    assert process.stop() == 0
    counters = process.counters()
    assert " frames=0 " in counters and re.search(r" reconnects=\d+\[[^\]]*\bclosed_1009=\d+", counters), counters


class SendingThenClosing(RawPeer):
    """Sends `frames` as soon as each handshake is done, then closes."""

    def __init__(self, frames: bytes) -> None:
        self._frames = frames
        super().__init__()

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        writer.write(self._frames)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()


def close_frame(code: int, reason: bytes) -> bytes:
    return frame(0x8, code.to_bytes(2, "big") + reason)


def assert_sessions_back_off(peer: RawPeer, kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> str:
    """Six sessions with `peer`, with backoff_initial_s 0.2 and backoff_max_s 3.2: the
    waits are 0.2, 0.4, 0.8, 1.6, 3.2 s, each times 0.5 to 1.5, if none reset it. The
    worker's log, once stopped."""
    try:
        process, _ = start_against(peer, kafka, simulator, worker, tmp_path, backoff_initial_s=0.2, backoff_max_s=3.2)
        wait_until(lambda: peer.connections >= 6, 60, "six sessions")
    finally:
        peer.stop()
    assert process.stop() == 0
    gaps = [later - earlier for earlier, later in zip(peer.connected_at, peer.connected_at[1:])]
    assert gaps[-1] >= 1.5, gaps
    return process.log()


def test_a_peer_that_floods_pings_and_reads_nothing_is_left_unread_and_dropped(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """Before: the pongs piled up in the write buffer, 2 MB a second, and the pings kept the
    socket alive: never reconnected. Now the socket is left unread while the buffer is
    full, so nothing is heard and the watchdog ends the session."""
    flooder = PingFlooder()
    try:
        process, _ = start_against(flooder, kafka, simulator, worker, tmp_path, watchdog_s=3,
                                   rest_fallback_after_s=30)
        wait_until(lambda: flooder.connections >= 1, 30, "the worker to connect")
        peak = 0.0

        def dropped() -> bool:
            nonlocal peak
            peak = max(peak, rss_mb(process))
            return "the peer reads nothing" in process.log()
        wait_until(dropped, 60, "the watchdog to drop the peer that reads nothing", interval_s=0.5)
        wait_until(lambda: flooder.connections >= 2, 30, "the reconnect")
    finally:
        flooder.stop()
    assert process.stop() == 0
    counters = process.counters()
    assert re.search(r" reconnects=\d+\[[^\]]*\bstalled=\d+", counters), counters
    assert peak < 120, f"RSS {peak:.0f} MB"


def test_a_stop_while_the_peer_reads_nothing_ends_within_the_close_timeout(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """websockets' close() waits, unbounded, for our unsent bytes to drain before its close
    timeout starts: a SIGTERM while the peer read nothing hung the worker until its next
    keepalive ping failed (20 s on Binance; never where the exchange takes no protocol ping:
    OKX, Kraken, Coinone), beyond supervisord's stopwaitsecs (30 s) and its SIGKILL, which
    loses librdkafka's queue. Here the keepalive is 600 s."""
    flooder = PingFlooder()
    try:
        process, _ = start_against(flooder, kafka, simulator, worker, tmp_path, watchdog_s=120,
                                   rest_fallback_after_s=60, ping_interval_s=600)
        wait_until(flooder.stuck, 60, "the worker to leave the socket unread, its writes held")
        started = time.monotonic()
        assert process.stop(timeout_s=30) == 0
        stop_s = time.monotonic() - started
    finally:
        flooder.stop()
    assert stop_s < 10, f"the stop took {stop_s:.1f} s"
    assert process.log().rstrip().endswith("stopped")


def test_a_peer_that_closes_every_session_at_once_leaves_the_rest_fallback_polling(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """A completed handshake is no frame heard. Before, each reconnect counted as hearing
    the socket: with reconnects less than rest_fallback_after_s apart the fallback never
    polled (1 REST call, the snapshot, in 20 s), and with longer ones it stopped at each
    handshake, logging that the socket answered again."""
    peer = SendingThenClosing(close_frame(1008, b"policy violation"))
    try:
        process, _ = start_against(peer, kafka, simulator, worker, tmp_path, rest_fallback_after_s=2,
                                   backoff_initial_s=0.2, backoff_max_s=0.5)
        wait_until(lambda: "closed 1008 (policy violation)" in process.log(), 30, "the first close")
        wait_until(lambda: "polling REST every" in process.log(), 20, "the REST fallback")
        connections = peer.connections
        wait_until(lambda: peer.connections >= connections + 5, 30, "five more sessions")
    finally:
        peer.stop()
    assert process.stop() == 0
    log = process.log()
    assert "socket answers again" not in log
    counters = [line for line in log.splitlines() if " counters " in line][-1]
    assert int(re.search(r" rest_polls=(\d+)", counters).group(1)) >= 5, counters  # type: ignore[union-attr]
    assert re.search(r" reconnects=\d+\[closed_1008=\d+", counters), counters


class Dripping(RawPeer):
    """After the handshake, a ticker whole on the first session, then a frame one byte a
    second (one every 5 s on the wire is the same, slower): it takes minutes to complete,
    and its bytes keep coming."""

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        ticker = fixture_bytes("binance", "ws_ticker_combined_1.json").strip()
        if self.connections == 1:
            writer.write(frame(0x1, ticker))
        for byte in frame(0x1, ticker):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)


def test_a_peer_that_drips_a_frame_byte_by_byte_is_left_and_the_rest_fallback_polls(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """Bytes that complete no frame are no sign of life: the watchdog ends the session
    after watchdog_s (5 s here), however many of them come, and the REST fallback polls
    after rest_fallback_after_s (2 s) meanwhile; each new session drips as well."""
    peer = Dripping()
    try:
        process, topics = start_against(peer, kafka, simulator, worker, tmp_path, rest_fallback_after_s=2)
        consume(kafka, topics["ticker"], lambda got: any(value["source"] == "ws" for _, value in got))
        wait_until(lambda: "polling REST every" in process.log(), 20, "the REST fallback")
        wait_until(lambda: "stalled: nothing heard for 5 s" in process.log(), 20, "the stalled session ended")
        wait_until(lambda: peer.connections >= 2, 20, "a new session")
        rest = consume(kafka, topics["ticker"], lambda got: sum(value["source"] == "rest" for _, value in got) >= 3)
    finally:
        peer.stop()
    assert process.stop() == 0
    counters = process.counters()
    assert re.search(r" reconnects=\d+\[(\w+=\d+,)*stalled=\d+", counters), counters
    assert sum(value["source"] == "ws" for _, value in rest) == 1


class DrippingHandshake(RawPeer):
    """Answers the opening handshake one byte a second: its 129 bytes would take minutes."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected_at.append(time.monotonic())
        self._writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        try:
            for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        except ConnectionError:
            pass

    async def after_handshake(self, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("the handshake never completes")


def test_a_handshake_answered_byte_by_byte_is_abandoned_and_the_rest_fallback_polls(
        kafka: str, simulator: Any, worker: Any, tmp_path: Path) -> None:
    """The opening handshake is bounded as a whole (rest_timeout_s, 3 s here), however
    many bytes of it come: each attempt ends, is counted, and the next backs off, while
    the REST fallback publishes from rest_fallback_after_s (2 s) on."""
    peer = DrippingHandshake()
    try:
        process, topics = start_against(peer, kafka, simulator, worker, tmp_path, rest_fallback_after_s=2)
        consume(kafka, topics["ticker"], lambda got: sum(value["source"] == "rest" for _, value in got) >= 3)
        wait_until(lambda: peer.connections >= 3, 30, "three attempts")
    finally:
        peer.stop()
    assert process.stop() == 0
    counters = process.counters()
    assert re.search(r" reconnects=\d+\[(\w+=\d+,)*TimeoutError=\d+", counters), counters


def test_restarts_announced_at_once_on_every_session_back_off(kafka: str, simulator: Any, worker: Any,
                                                               tmp_path: Path) -> None:
    """A restart announced after records reconnects after the initial backoff; one
    announced before any record must not reset it. Before: every session reset it, and the
    worker reconnected every 0.2 s (backoff_initial_s here; every second with the
    defaults, Binance's limit being 300 connections in 5 minutes) for as long as it lasted."""
    log = assert_sessions_back_off(SendingThenClosing(frame(0x1, b'{"e":"serverShutdown","E":1778000000000}')),
                                   kafka, simulator, worker, tmp_path)
    assert re.search(r" reconnects=\d+\[restart_announced=\d+\]", log), log[-2000:]


def test_sessions_that_deliver_a_record_and_close_at_once_back_off(kafka: str, simulator: Any, worker: Any,
                                                                  tmp_path: Path) -> None:
    """The backoff resets after a session that delivered records and lasted the backoff
    before it. Before, one record was enough: a peer that sent a ticker and closed each
    time was reconnected to every 0.5 to 1.5 s (26 times in 30 s with the defaults), forever."""
    ticker = fixture_bytes("binance", "ws_ticker_combined_1.json").strip()
    log = assert_sessions_back_off(SendingThenClosing(frame(0x1, ticker) + close_frame(1011, b"try again")),
                                   kafka, simulator, worker, tmp_path)
    assert re.search(r" reconnects=\d+\[closed_1011=\d+", log), log[-2000:]
