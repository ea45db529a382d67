"""REST calls with requests, run in a thread so the event loop never blocks on them.

Every outcome is defined: a 2xx body is returned; 429/418 waits for Retry-After (or
the backoff) and tries again; 5xx, connection errors and calls that miss their deadline
back off and try again (the wait holds for the next call, whichever it is); any other
status is the exchange's answer and is reported as an ExchangeError. After `attempts` tries the call gives up with RestUnavailable; the caller
decides whether to try again later (the fallback loop does, every poll interval).

A kept-alive connection that ends before any answer to a request sent on it (the
server closed it as idle while the request was on its way: urllib3 checks a pooled
connection only before sending) is no failure of the exchange: the GET, idempotent, is
sent again at once on a new connection, within the same deadline, counted in
rest_resent and logged (throttled). A second such end, or one on a new connection, is
an ordinary connection error.

A body is read up to MAX_BODY_BYTES: a server that sends more (an endless body, a broken
proxy) fails the call as a connection error would (BodyTooLarge), and its connection is
closed; read whole, gigabytes within the deadline would have gone into memory.

The deadline (runtime.rest_timeout_s) is for the whole call: connect, headers and body.
requests' own timeout bounds each read, and a server that sends one byte every few
seconds never trips it. So the loop stops waiting at the deadline and cuts the call's
sockets (shutdown), which ends the read its thread is blocked in. Calls run one at a
time, each on a daemon thread of its own: a thread still unwinding from a cut call
never delays the next one, nor the exit of the process (a ThreadPoolExecutor's threads
are joined at interpreter exit, so one stuck read kept a stopped worker alive).
"""

import asyncio
import logging
import math
import random
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from shared.log import Throttled, cause
from shared.record import ExchangeError
from shared.stats import Stats

USER_AGENT = "coinstream/0.1"
# requests' timeout for each connect and read: past the deadline, so that the loop's
# deadline decides, and a thread whose sockets could not be cut still ends.
READ_TIMEOUT_MARGIN_S = 1.0
# The longest body read: many times the longest answer a worker asks for, a market list
# of a few megabytes (Binance's exchangeInfo was under 1.9 MB in a 2021 capture; a
# 5,000-level book is ~0.3 MB).
MAX_BODY_BYTES = 64 * 1024 * 1024
BODY_CHUNK_BYTES = 64 * 1024


class BodyTooLarge(requests.RequestException):
    """A body longer than MAX_BODY_BYTES: the call fails, and is tried again, as on a
    connection error."""


class RestUnavailable(Exception):
    """The exchange's REST API did not answer usefully after every attempt."""


class DeadlineMissed(Exception):
    """No complete answer within the deadline: the call was abandoned."""


class RestClient:
    def __init__(
        self,
        headers: dict[str, str],
        timeout_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        stats: Stats,
        log: logging.Logger,
        min_interval_s: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        """`min_interval_s`: the least time from a call's end to the next call's start
        (the exchange's request-rate limit, venue.rest_min_interval_s)."""
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, _CuttableAdapter())
        self._timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stats = stats
        self._throttled = Throttled(log)
        # One call at a time: calls to one exchange are sequential anyway (rate limits).
        self._one_at_a_time = asyncio.Lock()
        self._resume_at = 0.0  # monotonic: no call before, after a failure (backoff, Retry-After)
        self._min_interval_s = min_interval_s
        self._last_call_ended = -math.inf  # monotonic
        self._max_body_bytes = max_body_bytes

    async def get(self, url: str, attempts: int = 4) -> tuple[bytes, int]:
        """The body of a successful GET and the wall-clock ns when it arrived."""
        delay = self._backoff_initial_s
        problem = ""
        for attempt in range(1, attempts + 1):
            self._stats.rest_polls += 1
            try:
                response = await self._call(url)
            except DeadlineMissed:
                problem = f"no complete answer within {self._timeout_s:g} s"
                wait = delay
            except requests.RequestException as error:
                problem = cause(error)
                wait = delay
            else:
                received_ns = time.time_ns()
                status = response.status_code
                if 200 <= status < 300:
                    return response.content, received_ns
                problem = f"HTTP {status}: {response.text[:200]}"
                if status in (418, 429):
                    self._stats.rate_limit_waits += 1
                    wait = _retry_after(response, delay)
                elif status < 500:
                    self._stats.rest_errors += 1
                    raise ExchangeError(f"GET {url}: {problem}")
                else:
                    wait = delay
            self._stats.rest_errors += 1
            # The next call waits, whichever it is: a 429's Retry-After is for every call.
            self._resume_at = time.monotonic() + wait
            if attempt == attempts:
                break
            self._throttled.warning("rest errors", "GET %s: %s; retrying in %.1f s", url, problem, wait)
            delay = min(delay * 2, self._backoff_max_s)
        raise RestUnavailable(f"GET {url}: gave up after {attempts} attempt(s); last: {problem}")

    async def _call(self, url: str) -> requests.Response:
        """One GET on a thread of its own, abandoned (and its sockets cut) at the deadline
        or when the awaiting task is cancelled (a stop)."""
        async with self._one_at_a_time:
            # Paced here, in turn: calls that waited for the lock together (every book's
            # REST snapshot after a reconnect) would otherwise go back to back.
            start_at = max(self._resume_at, self._last_call_ended + self._min_interval_s)
            if (pause := start_at - time.monotonic()) > 0:
                await asyncio.sleep(pause)
            call = _Call(self._session, url, self._timeout_s + READ_TIMEOUT_MARGIN_S, self._max_body_bytes,
                         asyncio.get_running_loop())
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await call.answer
            except TimeoutError:
                call.abandon()
                raise DeadlineMissed from None
            except asyncio.CancelledError:
                call.abandon()
                raise
            finally:
                self._last_call_ended = time.monotonic()
                if call.resent_after is not None:
                    self._stats.rest_resent += 1
                    self._throttled.warning("rest resends", "GET %s: a kept-alive connection ended before answering "
                                            "(%s); sent again on a new one", url, cause(call.resent_after))

    def close(self) -> None:
        self._session.close()


class _Call:
    """One GET on its own daemon thread, and the sockets it uses, so that the loop can cut them."""

    def __init__(self, session: requests.Session, url: str, timeout_s: float, max_body_bytes: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[requests.Response] = loop.create_future()
        self._sockets: list[socket.socket] = []
        self._abandoned = False
        # Set on the call's thread: how a kept-alive connection ended before answering,
        # and the same once the GET was sent again for it.
        self.stale_end: ConnectionResetError | None = None
        self.resent_after: ConnectionResetError | None = None
        self._loop = loop
        self._max_body_bytes = max_body_bytes
        threading.Thread(target=self._run, args=(session, url, timeout_s), name="rest", daemon=True).start()

    def _run(self, session: requests.Session, url: str, timeout_s: float) -> None:
        _current.call = self
        try:
            try:
                response = self._get(session, url, timeout_s)
            except requests.ConnectionError:
                if self.stale_end is None or self._abandoned:
                    raise
                # A GET is idempotent and no answer had begun: send it once more, on a
                # new connection (the pool closed the stale one), within the same deadline.
                self.resent_after = self.stale_end
                response = self._get(session, url, timeout_s)
        except BaseException as error:  # noqa: BLE001 - handed to the loop, which decides
            self._settle(None, error)
        else:
            self._settle(response, None)
        finally:
            _current.call = None

    def _get(self, session: requests.Session, url: str, timeout_s: float) -> requests.Response:
        """session.get(), its body read here up to max_body_bytes (BodyTooLarge past it)."""
        response = session.get(url, timeout=timeout_s, stream=True)
        chunks: list[bytes] = []
        try:
            size = 0
            for chunk in response.iter_content(BODY_CHUNK_BYTES):
                size += len(chunk)
                if size > self._max_body_bytes:
                    raise BodyTooLarge(f"a body of more than {self._max_body_bytes} bytes; not read further")
                chunks.append(chunk)
            response._content = b"".join(chunks)  # what response.content returns
        except BaseException:
            # The exception's traceback keeps this frame, in a cycle with the call's future
            # that only the collector breaks: the next attempt held 64 MiB more meanwhile.
            chunks.clear()
            raise
        finally:
            # Read whole: the connection goes back to the pool, kept alive. Not: it is closed.
            response.close()
        return response

    def _settle(self, response: requests.Response | None, error: BaseException | None) -> None:
        def settle() -> None:
            if self.answer.done():
                return  # abandoned meanwhile
            if error is not None:
                self.answer.set_exception(error)
            else:
                self.answer.set_result(response)  # type: ignore[arg-type]

        try:
            self._loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: the worker has stopped, nobody waits for the answer

    def hold(self, sock: socket.socket) -> None:
        """Note a socket this call uses (called on the call's thread)."""
        self._sockets.append(sock)
        if self._abandoned:
            _cut(sock)

    def abandon(self) -> None:
        """Stop waiting for this call: cut its sockets, so that its thread's read ends now."""
        self._abandoned = True
        if not self.answer.done():
            self.answer.cancel()
        for sock in self._sockets:
            _cut(sock)


_current = threading.local()  # .call: the _Call whose thread this is


def _cut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would
        # tear down the TLS state under the thread that is reading.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already


class _Held:
    """An urllib3 connection that tells the current call about its socket: when it is
    made (before a TLS handshake) and before each answer is read (a reused connection);
    and when a connection that answered before ends before answering the next request."""

    sock: Any
    answers_on_socket = 0

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self.answers_on_socket = 0
        if (call := getattr(_current, "call", None)) is not None:
            call.hold(sock)
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None and (call := getattr(_current, "call", None)) is not None:
            call.hold(self.sock)
        try:
            response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        except ConnectionResetError as error:  # RemoteDisconnected too: no status line
            if self.answers_on_socket and (call := getattr(_current, "call", None)) is not None:
                call.stale_end = error
            raise
        self.answers_on_socket += 1
        return response


class _HeldHTTPConnection(_Held, HTTPConnection):
    pass


class _HeldHTTPSConnection(_Held, HTTPSConnection):
    pass


class _HeldHTTPPool(HTTPConnectionPool):
    ConnectionCls = _HeldHTTPConnection


class _HeldHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HeldHTTPSConnection


class _CuttableAdapter(HTTPAdapter):
    """requests' adapter, with connections whose sockets a call can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HeldHTTPPool, "https": _HeldHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _HeldHTTPPool, "https": _HeldHTTPSPool}
        return manager


def _retry_after(response: requests.Response, fallback_s: float) -> float:
    """Seconds the exchange asked us to wait; the backoff (with jitter) if it did not say."""
    header = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        return fallback_s * random.uniform(1.0, 1.5)
