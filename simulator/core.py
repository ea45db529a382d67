"""The simulator's machinery: one server per exchange on 127.0.0.1, WebSocket and HTTP
on the same port, a ticker generator at a controllable rate, and fault injection.

Each exchange mode (simulator/<exchange>.py) subclasses `ExchangeSim` and speaks that
exchange's protocol: which paths upgrade to WebSocket, how subscriptions and acks
look, how a ticker frame is shaped, and which REST endpoints exist.

Control, on every exchange's port (plain GET, answers JSON):
  /_sim/stats                          frames sent, connections, REST calls, edge shapes made
  /_sim/rate?per_s=N                   ticker frames per second on each connection
  /_sim/idle?seconds=S                 keepalive rule: close clients silent for S s (0: off)
  /_sim/fault?kind=K[&code=C][&seconds=S][&count=N]
      close       abrupt TCP close of every open socket (no close frame)
      close_code  close frame with code C (default 1011) on every socket
      stall       open sockets stay open but send nothing (and answer no ping) for S s;
                  new connections work. With &market=M (the exchange's id), only the
                  sockets subscribed to M; the answer lists their markets
      mute        for S s no socket gets a ticker while the markets keep moving, but
                  every socket answers its pings: a subscription dropped unannounced
      forget      every open socket's ticker subscription is dropped unannounced, for
                  good: it gets no ticker while the markets keep moving, and answers
                  its pings, until it subscribes again (or a new socket does)
      rest_skew   REST shows market M's (&market=M) price a tick above the stream's, for
                  good: an exchange whose REST and stream disagree
      late_push   market M (&market=M) trades once now at a new price, and REST shows it; its
                  ticker reaches the sockets subscribed to M S s after the next REST
                  call is answered (a push on its way while REST already knows)
      garbage     the next N frames on each socket are garbage bytes
      wrong_shape the next N frames are valid JSON of the wrong shape
      unknown_symbol  the next N tickers carry a symbol nobody subscribed to
      http_429    the next N REST calls answer 429 with Retry-After: S
      http_500    the next N REST calls answer 500
      slow_rest   the next N REST calls answer after S s
      drip_rest   the next N REST calls answer one byte every S s (status line, headers
                  and body): no single read waits long, the whole answer takes hours
      refuse      stop listening for S s: new connections are refused
      ws_down     refuse WebSocket upgrades (HTTP 503) for S s; REST keeps working
      delist      market M (&market=M, the exchange's id) is delisted: gone from the
                  market list, unknown to REST (answered as the exchange answers an
                  unknown code), no more frames
  Order books (exchanges with a book channel): /_sim/book, /_sim/book_history,
  /_sim/book_rate and the book_* faults, see simulator/books.py.
"""

import asyncio
import json
import logging
import os
import random
import socket
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event

if TYPE_CHECKING:
    from simulator.books import BookFeed, BookUpdate

log = logging.getLogger("simulator")


# Before its first move in a run, a market last changed this long before the simulator
# started: the time a snapshot of a quiet market carries.
QUIET_BEFORE_START_MS = 90_000


@dataclass
class Quote:
    """One market's moving state, in integer ticks so that no float touches a price."""

    base: str
    quote: str
    ticks: int  # price = ticks * 10**-scale
    scale: int
    volume_ticks: int = 10**12
    # When it last changed (ms epoch): what snapshots of it say, as on the exchanges.
    changed_ms: int = field(default_factory=lambda: int(time.time() * 1000) - QUIET_BEFORE_START_MS)

    def step(self, rng: random.Random) -> None:
        self.ticks = max(1, self.ticks + rng.randint(-3, 3))
        self.volume_ticks += rng.randint(0, 10**6)
        self.changed_ms = int(time.time() * 1000)

    def price(self, offset: int = 0) -> Decimal:
        return Decimal(self.ticks + offset).scaleb(-self.scale)

    def volume(self) -> Decimal:
        return Decimal(self.volume_ticks).scaleb(-8)


def fixed(value: Decimal, places: int = 8) -> str:
    """Decimal text with exactly `places` decimals, as exchanges print prices."""
    return f"{value:.{places}f}"


def shortest(value: Decimal) -> str:
    """Plain decimal text without trailing zeros: 116506000, 0.00499."""
    return format(value.normalize(), "f")


def java_big_decimal(value: Decimal) -> str:
    """How Java's BigDecimal.toString() may print a value: 1.16539E8, 0E-8."""
    if value == 0:
        return "0E-8"
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    coefficient = "".join(map(str, digits))
    adjusted = exponent + len(digits) - 1
    mantissa = coefficient[0] + ("." + coefficient[1:] if len(coefficient) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}E{adjusted}"


@dataclass
class Faults:
    garbage: int = 0
    wrong_shape: int = 0
    unknown_symbol: int = 0
    http_429: int = 0
    retry_after_s: float = 1.0
    http_500: int = 0
    slow_rest: int = 0
    slow_rest_s: float = 0.0
    drip_rest: int = 0
    drip_rest_s: float = 5.0
    # Sockets that stay open but send nothing, until the time given (monotonic).
    stalled: dict[ServerConnection, float] = field(default_factory=dict)
    ws_down_until: float = 0.0
    muted_until: float = 0.0
    # rest_skew: markets whose REST answers show the price a tick above the stream's.
    rest_skewed: set[str] = field(default_factory=set)
    # late_push: (seconds, [(socket, frame)]) sent that long after the next REST answer.
    late_pushes: list[tuple[float, list[tuple[ServerConnection, str]]]] = field(default_factory=list)


@dataclass
class Counters:
    frames: int = 0
    connections: int = 0
    rest_calls: int = 0
    subscriptions: dict[str, int] = field(default_factory=dict)
    # Edge shapes made, by kind (at benchmark rates, into the ring of bulk frames).
    edge_shapes: Counter[str] = field(default_factory=Counter)


# Narrows where free_listening_port() looks, "FIRST-LAST": parallel test processes each
# take a share of their own (tests/conftest.py), so that a broker one of them stopped for
# a fault never finds, at its restart, its port taken by another's simulator or broker.
LISTEN_PORTS_ENV = "COINSTREAM_LISTEN_PORTS"


def listening_port_range() -> tuple[int, int]:
    """Where free_listening_port() looks: [first, last), below the kernel's ephemeral range."""
    narrowed = os.environ.get(LISTEN_PORTS_ENV)
    if narrowed:
        first, last = narrowed.split("-")
        return int(first), int(last)
    return 10_000, int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def free_listening_port() -> int:
    """A free port below the kernel's ephemeral range, for a server that must bind it
    again after a stop (the refuse fault, a broker restart): an ephemeral port may
    meanwhile become the local port of some outgoing connection, and the rebind fails."""
    first, last = listening_port_range()
    rng = random.Random()
    while True:
        port = rng.randrange(first, last)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


# At or above this rate (frames/s per socket) frames are written in bulk: see _send_bulk.
BULK_RATE_PER_S = 500
BULK_RING = 2048
BULK_HIGH_WATER = 1 << 20
# One ticker frame in this many is an edge shape (ExchangeSim.edge_kinds), unless off.
EDGE_EVERY = 50
# Frames or updates sent in one go at most: BURST_S of the rate (a slow rate's feed
# delayed by a busy loop still sends all it owes), and never more than the feed's own
# bound. The loop serves nothing else meanwhile.
BURST_S = 0.25
MAX_TICKER_BURST = 5000


def paced(started: float, sent: int, rate_per_s: float, now: float, most: int) -> tuple[float, int, int]:
    """(started, sent, due): what is due `now` at `rate_per_s`, `sent` sent since
    `started`, at most a burst (BURST_S of the rate, `most` at the most). A feed further
    behind (its process starved of CPU) forgets the rest and starts its clock again:
    catching up in the largest bursts held a starved simulator's loop for seconds on end,
    and the workers' handshakes and REST calls to it timed out (the fleet's books were
    never all live). What a simulator offers is then what it renders, which the frames
    the workers count show."""
    burst = max(1, min(int(rate_per_s * BURST_S), most))
    due = int((now - started) * rate_per_s) - sent
    if due > burst:
        return now, 0, burst
    return started, sent, due


BASES = ("BTC", "ETH", "XRP", "SOL", "DOGE", "ADA", "TRX", "LINK", "DOT", "AVAX", "SHIB", "BCH")


def universe(quote: str, count: int) -> list[tuple[str, str]]:
    """`count` markets quoted in `quote`: well-known bases first, then made-up ones."""
    bases = list(BASES[:count]) + [f"SIM{index:04d}" for index in range(count - len(BASES))]
    return [(base, quote) for base in bases]


class ExchangeSim(ABC):
    name: ClassVar[str]
    # The quote currency of the simulated universe (USDT on Binance, KRW on Upbit).
    default_quote: ClassVar[str]
    # Paths that upgrade to WebSocket.
    ws_paths: ClassVar[tuple[str, ...]]
    # The path of the book sockets' endpoint, where the exchange serves books on another
    # endpoint than its tickers (Coinbase's Advanced Trade feed): the config's book_ws_url.
    book_ws_path: ClassVar[str | None] = None
    # Server-side protocol pings (Binance pings every 20 s); None: the server never pings.
    server_ping_interval_s: ClassVar[float | None] = None
    # Frames sent as binary (opcode 2) rather than text.
    binary_frames: ClassVar[bool] = False
    # How far one book message advances a market's sequence id (least, most): Bybit's `u`
    # counts messages (1, 1); most exchanges count changes.
    book_id_steps: ClassVar[tuple[int, int]] = (1, 3)
    # The exchange's idle rule, as its notes document it: close a socket on which no
    # traffic that counts was seen for this long; None: never. Tests shorten it with
    # /_sim/idle?seconds=S. The client's messages always count; these add:
    client_idle_timeout_s: ClassVar[float | None] = None
    # the client's RFC 6455 pings (Upbit, Bithumb, Gate.io, Coinbase...),
    client_pings_count: ClassVar[bool] = False
    # the server's own pushes: data, acks, pongs, heartbeats (OKX's "no data pushed").
    server_pushes_count: ClassVar[bool] = False
    # Close a client that has not subscribed this long after connecting; None: never.
    subscribe_deadline_s: ClassVar[float | None] = None
    # At benchmark rates, frames may come round again from the bulk ring (_send_bulk);
    # False where a client rightly drops a repeated frame (Coinone's ticker id).
    repeatable_frames: ClassVar[bool] = True
    # Shapes the real wire carries now and then and a client must take (a "" price on an
    # empty book, a frame from an older server...): one ticker frame in EDGE_EVERY is
    # one of these, in turn (edge_frame), unless the simulator runs with edge_shapes off.
    edge_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, markets: list[tuple[str, str]], rate_per_s: float, seed: int = 1,
                 edge_shapes: bool = True) -> None:
        self.rng = random.Random(seed)
        self.quotes = {self.market_id(base, quote): self._new_quote(base, quote, index)
                       for index, (base, quote) in enumerate(markets)}
        self.rate_per_s = rate_per_s
        self.faults = Faults()
        self.counters = Counters()
        self.sockets: set[ServerConnection] = set()
        self.server: Server | None = None
        self.port = 0
        self.idle_timeout_s = self.client_idle_timeout_s
        self.edge_shapes = edge_shapes
        self._ticker_frames = 0  # made so far: every EDGE_EVERY-th is an edge shape
        self._journal: Any = None
        self._rings: dict[tuple[str, ...], list[bytes]] = {}  # see _send_bulk
        self._late_pushing: set[asyncio.Task[None]] = set()  # the late_push fault's sends
        # The order books, for an exchange mode with a book channel (simulator/books.py).
        self.book_feed: "BookFeed | None" = None

    # (digits, scale) pairs that spread prices over many magnitudes:
    # 115831.96, 123.45678, 0.12345678, 0.00012345, 158219000.
    SHAPES: ClassVar[tuple[tuple[int, int], ...]] = ((8, 2), (8, 5), (8, 8), (5, 8), (9, 0))

    def _new_quote(self, base: str, quote: str, index: int) -> Quote:
        digits, scale = self.SHAPES[index % len(self.SHAPES)]
        return Quote(base, quote, ticks=self.rng.randint(10 ** (digits - 1), 10**digits - 1), scale=scale)

    # Exchange modes implement these. -----------------------------------------------

    @abstractmethod
    def market_id(self, base: str, quote: str) -> str:
        """The exchange's own id for a market."""

    @abstractmethod
    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        """Answer one client message; return the socket's market ids if it (re)subscribed."""

    @abstractmethod
    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        """One ticker frame, shaped exactly like the exchange's."""

    def wrong_shape_frame(self) -> str:
        return json.dumps({"unexpected": [1, 2, 3]})

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        """A frame of one of edge_kinds, in place of a ticker frame: exchanges with edge
        kinds implement it."""
        raise NotImplementedError(kind)

    # Each exchange mode renders its book channel too (simulator/books.py).

    @abstractmethod
    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: "BookUpdate") -> str | None:
        """What a book subscription sends first: the snapshot frame, or None."""

    @abstractmethod
    def book_update_frame(self, socket: ServerConnection, market_id: str, update: "BookUpdate") -> str:
        """One book message, as the exchange shapes it for that socket."""

    def bulk_book_parts(self, socket: ServerConnection,
                        market_id: str) -> "Callable[[BookUpdate], tuple[str, str]] | None":
        """Where the socket's book frames of the market are whole books sequenced by one id,
        which the bulk book feed (simulator/books.py, benchmark rates) can send: what renders
        one of them, as the frame's text before and after its update id (the feed numbers
        them anew at each send). None where not: the feed then renders every update. Asked
        before any book is stepped for the feed."""
        return None

    def book_first_update_id(self) -> int | None:
        """The update_id a new true book starts at, where the exchange's ids have a
        shape (Coinone's: ms + a 3-digit counter); None: any."""
        return None

    # Where one exchange serves several endpoints (Binance's raw and combined streams).

    def accepts_ws_path(self, path: str) -> bool:
        """Whether a WebSocket upgrade to this path is served."""
        return path in self.ws_paths

    def url_subscription(self, socket: ServerConnection) -> list[str]:
        """The market ids a connection's URL subscribes it to; none by default."""
        return []

    def frame_form(self, path: str) -> str:
        """The form of the ticker frames on a socket opened to this path (and query),
        where the exchange has several."""
        return ""

    def in_form(self, form: str, market_id: str, frame: str) -> str:
        """A ticker frame as a socket of that form gets it."""
        return frame

    @abstractmethod
    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """(HTTP status, JSON-able body or pre-encoded str) for a REST path."""

    # Serving. ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = await serve(
            self._connection, host, port,
            process_request=self._process_request,
            create_connection=_SimConnection,
            ping_interval=self.server_ping_interval_s,
            ping_timeout=60 if self.server_ping_interval_s else None,
            compression=None,
            max_size=2**20,
            # websockets gives a request 10 s to be answered; a dripping REST answer
            # (drip_rest) takes far longer.
            open_timeout=None,
        )
        self.port = self.server.sockets[0].getsockname()[1] if not port else port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def refuse(self, seconds: float) -> None:
        """Close the listening socket for `seconds`, then listen again on the same port."""
        assert self.server is not None
        # Not stop(): waiting for every connection to finish closing could outlast `seconds`.
        self.server.close()
        await asyncio.sleep(seconds)
        await self.start(port=self.port)

    def journal_to(self, path: str) -> None:
        self._journal = open(path, "a", buffering=1)

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        if parts.path.startswith("/_sim/"):
            return _json_response(200, await self._control(parts.path[len("/_sim/"):], query))
        if self.accepts_ws_path(parts.path) and "upgrade" in request.headers.get("Connection", "").lower():
            if time.monotonic() < self.faults.ws_down_until:
                return _json_response(503, {"error": "simulated outage"})
            return None
        self.counters.rest_calls += 1
        response = await self._rest_response(parts.path, query)
        if self.faults.drip_rest > 0:
            self.faults.drip_rest -= 1
            await _drip(connection, response.serialize(), self.faults.drip_rest_s)
        return response

    async def _rest_response(self, path: str, query: dict[str, list[str]]) -> Response:
        faults = self.faults
        if faults.slow_rest > 0:
            faults.slow_rest -= 1
            await asyncio.sleep(faults.slow_rest_s)
        if faults.http_429 > 0:
            faults.http_429 -= 1
            response = _json_response(429, {"error": "too many requests"})
            response.headers["Retry-After"] = f"{faults.retry_after_s:g}"
            return response
        if faults.http_500 > 0:
            faults.http_500 -= 1
            return _json_response(500, {"error": "internal error"})
        skewed = [self.quotes[market] for market in faults.rest_skewed if market in self.quotes]
        for quote in skewed:  # rendered at once: no frame is made meanwhile
            quote.ticks += 1
        status, body = self.rest(path, query)
        for quote in skewed:
            quote.ticks -= 1
        for seconds, pushes in faults.late_pushes:
            pushing = asyncio.create_task(self._push_late(seconds, pushes))
            self._late_pushing.add(pushing)  # held: the loop keeps only a weak reference to a task
            pushing.add_done_callback(self._late_pushing.discard)
        faults.late_pushes.clear()
        return _json_response(status, body)

    async def _push_late(self, seconds: float, pushes: list[tuple[ServerConnection, str]]) -> None:
        await asyncio.sleep(seconds)
        for socket, frame in pushes:
            try:
                await self._send(socket, frame)
            except ConnectionClosed:
                pass  # the socket is gone: its successor subscribes anew

    async def _control(self, command: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def arg(key: str, default: float) -> float:
            return float(query.get(key, [default])[0])

        if self.book_feed is not None and (answer := self.book_feed.control(command, query)) is not None:
            return answer
        if command == "stats":
            return {"port": self.port, "frames": self.counters.frames, "connections": len(self.sockets),
                    "book_frames": self.book_feed.frames if self.book_feed else 0,
                    "book_faults": self.book_feed.pending_faults() if self.book_feed else {},
                    "book_feed": self.book_feed.state() if self.book_feed else {},
                    "connections_total": self.counters.connections, "rest_calls": self.counters.rest_calls,
                    "rate_per_s": self.rate_per_s, "edge_shapes": dict(self.counters.edge_shapes)}
        if command == "idle":
            self.idle_timeout_s = arg("seconds", 0) or None
            return {"idle_timeout_s": self.idle_timeout_s}
        if command == "rate":
            self.rate_per_s = arg("per_s", self.rate_per_s)
            return {"rate_per_s": self.rate_per_s}
        if command != "fault":
            return {"error": f"unknown command {command}"}
        kind = query.get("kind", [""])[0]
        count = int(arg("count", 1))
        seconds = arg("seconds", 5)
        faults = self.faults
        if kind == "close":
            for socket in list(self.sockets):
                socket.transport.abort()
        elif kind == "close_code":
            code = int(arg("code", 1011))
            for socket in list(self.sockets):
                asyncio.create_task(socket.close(code, "simulated close"))
        elif kind == "stall":
            market = query.get("market", [""])[0]
            stalled = [socket for socket in self.sockets if not market or market in _subscription(socket)]
            if market and not stalled:
                return {"error": f"no socket subscribed to {market!r}"}
            for socket in stalled:
                faults.stalled[socket] = time.monotonic() + seconds
                if isinstance(socket, _SimConnection):
                    socket.stalled_until = faults.stalled[socket]  # no server pings either
                # Not even pongs: a stalled peer reads nothing.
                socket.transport.pause_reading()
                asyncio.get_running_loop().call_later(seconds, _resume_reading, socket)
            if market:
                return {"ok": kind, "markets": sorted({name for socket in stalled for name in _subscription(socket)})}
        elif kind in ("garbage", "wrong_shape", "unknown_symbol", "http_429", "http_500"):
            setattr(faults, kind, getattr(faults, kind) + count)
            if kind == "http_429":
                faults.retry_after_s = seconds
        elif kind == "slow_rest":
            faults.slow_rest += count
            faults.slow_rest_s = seconds
        elif kind == "drip_rest":
            faults.drip_rest += count
            faults.drip_rest_s = seconds
        elif kind == "refuse":
            asyncio.create_task(self.refuse(seconds))
        elif kind == "mute":
            faults.muted_until = time.monotonic() + seconds
        elif kind == "forget":
            for socket in self.sockets:
                if isinstance(socket, _SimConnection):
                    socket.forgotten = True
        elif kind == "rest_skew":
            market = query.get("market", [""])[0]
            if market not in self.quotes:
                return {"error": f"no market {market!r}"}
            faults.rest_skewed.add(market)
        elif kind == "late_push":
            market = query.get("market", [""])[0]
            sockets = [socket for socket in self.sockets if market in _subscription(socket)]
            if not sockets:
                return {"error": f"no socket subscribed to {market!r}"}
            quote = self.quotes[market]
            before = quote.ticks
            while quote.ticks == before:  # a trade at a new price, which REST's last shows
                quote.step(self.rng)
            faults.late_pushes.append((seconds, [
                (socket, self.in_form(self.frame_form(socket.request.path if socket.request else ""), market,
                                      self.ticker_frame(market, quote, quote.changed_ms)))
                for socket in sockets]))
        elif kind == "delist":
            market = query.get("market", [""])[0]
            if self.quotes.pop(market, None) is None:
                return {"error": f"no market {market!r}"}
        elif kind == "ws_down":
            faults.ws_down_until = time.monotonic() + seconds
            for socket in list(self.sockets):
                socket.transport.abort()
        else:
            return {"error": f"unknown fault {kind}"}
        return {"ok": kind}

    async def close_idle(self, socket: ServerConnection) -> None:
        """Close a client that broke the keepalive rule, the way the exchange does."""
        socket.transport.abort()

    async def _idle_watch(self, socket: "_SimConnection", subscribed: Callable[[], list[str]]) -> None:
        opened = time.monotonic()
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            heard = socket.last_message
            if self.client_pings_count:
                heard = max(heard, socket.last_ping)
            if self.server_pushes_count:
                heard = max(heard, socket.last_sent)
            # Subscribed to tickers or to books: a socket of books alone was cut at the
            # deadline and every reconnect cut again (the fleet's Coinbase books, every 5 s).
            books = self.book_feed is not None and self.book_feed.subscribed(socket)
            late = (self.subscribe_deadline_s and not subscribed() and not books
                    and now - opened > self.subscribe_deadline_s)
            if late or (self.idle_timeout_s and now - heard > self.idle_timeout_s):
                await self.close_idle(socket)
                return

    async def _connection(self, socket: ServerConnection) -> None:
        assert isinstance(socket, _SimConnection)
        self.sockets.add(socket)
        self.counters.connections += 1
        subscribed = socket.subscribed = self.url_subscription(socket)
        sender: asyncio.Task[None] | None = None
        if subscribed:
            sender = asyncio.create_task(self._send_tickers(socket, lambda: subscribed))
        idle_watch = asyncio.create_task(self._idle_watch(socket, lambda: subscribed))
        try:
            async for message in socket:
                socket.last_message = time.monotonic()
                markets = await self.on_message(socket, message)
                if markets is None:
                    continue
                subscribed = socket.subscribed = markets
                socket.forgotten = False
                if sender is None:
                    sender = asyncio.create_task(self._send_tickers(socket, lambda: subscribed))
        except ConnectionClosed:
            pass
        finally:
            self.sockets.discard(socket)
            self.faults.stalled.pop(socket, None)
            idle_watch.cancel()
            if sender is not None:
                sender.cancel()

    async def _send_tickers(self, socket: ServerConnection, subscribed: Any) -> None:
        """Send ticker frames round-robin over the subscription at rate_per_s."""
        form = self.frame_form(socket.request.path if socket.request else "")
        index = 0
        started = time.monotonic()
        sent = 0
        try:
            while True:
                markets = [market for market in subscribed() if market in self.quotes]  # not delisted
                if not markets or self.rate_per_s <= 0 or time.monotonic() < self.faults.stalled.get(socket, 0):
                    await asyncio.sleep(0.05)
                    started, sent = time.monotonic(), 0
                    continue
                # Send what the rate allows by now, in one burst, then sleep briefly.
                started, sent, due = paced(started, sent, self.rate_per_s, time.monotonic(), MAX_TICKER_BURST)
                forgotten = isinstance(socket, _SimConnection) and socket.forgotten
                if forgotten or time.monotonic() < self.faults.muted_until:
                    for _ in range(due):  # the markets trade; this socket hears nothing of it
                        self.quotes[markets[index % len(markets)]].step(self.rng)
                        index += 1
                        sent += 1
                elif due > 0 and self._bulk_allowed():
                    written = await self._send_bulk(socket, markets, form, index, due)
                    sent += written
                    index += written
                else:
                    for _ in range(due):
                        market_id = markets[index % len(markets)]
                        index += 1
                        await self._send(socket, self._next_frame(market_id, form))
                        sent += 1
                await asyncio.sleep(min(0.05, 1 / self.rate_per_s) if self.rate_per_s < 1000 else 0.001)
        except ConnectionClosed:
            pass

    def _bulk_allowed(self) -> bool:
        """Benchmark rates: nothing to journal and no frame fault pending."""
        faults = self.faults
        return (self.rate_per_s >= BULK_RATE_PER_S and self._journal is None and self.repeatable_frames
                and not (faults.garbage or faults.wrong_shape or faults.unknown_symbol))

    async def _send_bulk(self, socket: ServerConnection, markets: list[str], form: str, index: int,
                         count: int) -> int:
        """Write `count` pre-rendered frames in one transport write; returns how many.

        A Python generator spends ~50 µs on a frame (Decimal, json.dumps, websockets'
        framing), which caps one simulator near 16k frames/s, below what a worker reads.
        At benchmark rates the frames come from a ring rendered once per subscription,
        each already a complete RFC 6455 frame (unmasked, FIN, the exchange's opcode):
        the bytes on the wire are what socket.send() would write, prices repeat every
        BULK_RING frames. Back-pressure: nothing is written while the socket's send
        buffer holds more than BULK_HIGH_WATER bytes (a reader that cannot keep up).
        """
        transport = socket.transport
        if transport.is_closing():
            raise ConnectionClosed(None, None)
        if transport.get_write_buffer_size() > BULK_HIGH_WATER:
            return 0
        ring = self._rings.get((form, *markets))
        if ring is None:
            ring = self._rings[(form, *markets)] = await self._render_ring(markets, form)
        start = index % len(ring)
        chunk = ring[start:start + count]
        while len(chunk) < count:
            chunk += ring[:count - len(chunk)]
        transport.write(b"".join(chunk))
        if isinstance(socket, _SimConnection):
            socket.last_sent = time.monotonic()
        self.counters.frames += count
        return count

    async def _render_ring(self, markets: list[str], form: str) -> list[bytes]:
        opcode = Opcode.BINARY if self.binary_frames else Opcode.TEXT
        size = max(BULK_RING, len(markets))
        ring = []
        for number in range(size):
            frame = self._next_frame(markets[number % len(markets)], form)
            ring.append(Frame(opcode, frame.encode()).serialize(mask=False))
            if number % 500 == 499:
                await asyncio.sleep(0)  # keep pings and other sockets served while rendering
        return ring

    def _next_frame(self, market_id: str, form: str) -> str:
        faults = self.faults
        if faults.garbage > 0:
            faults.garbage -= 1
            return "\x00\x01garbage{not json"
        if faults.wrong_shape > 0:
            faults.wrong_shape -= 1
            return self.wrong_shape_frame()
        quote = self.quotes[market_id]
        quote.step(self.rng)
        if faults.unknown_symbol > 0:
            faults.unknown_symbol -= 1
            market_id = self.market_id("NOPE", quote.quote)
        self._ticker_frames += 1
        if self.edge_shapes and self.edge_kinds and self._ticker_frames % EDGE_EVERY == 0:
            kind = self.edge_kinds[self._ticker_frames // EDGE_EVERY % len(self.edge_kinds)]
            self.counters.edge_shapes[kind] += 1
            return self.edge_frame(kind, market_id, quote, quote.changed_ms, form)
        return self.in_form(form, market_id, self.ticker_frame(market_id, quote, quote.changed_ms))

    async def _send(self, socket: ServerConnection, frame: str) -> None:
        """Send one data frame; the journal keeps every one, for exactness checks."""
        await socket.send(frame.encode() if self.binary_frames else frame)
        self.counters.frames += 1
        if self._journal is not None:
            self._journal.write(frame + "\n")


def _subscription(socket: ServerConnection) -> list[str]:
    return socket.subscribed if isinstance(socket, _SimConnection) else []


class _SimConnection(ServerConnection):
    """A server connection that notes when its client last sent a message or an RFC 6455
    ping and when it last sent something itself (the idle rules), and sends no ping of
    its own while stalled."""

    last_ping = 0.0
    last_sent = 0.0
    stalled_until = 0.0
    subscribed: list[str] = []  # the market ids of its ticker subscription
    forgotten = False  # its subscription dropped unannounced (the forget fault)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_message = time.monotonic()  # from the connect on

    async def send(self, *args: Any, **kwargs: Any) -> None:
        self.last_sent = time.monotonic()
        await super().send(*args, **kwargs)

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.last_ping = time.monotonic()
        super().process_event(event)

    async def ping(self, data: Any = None) -> Any:
        if time.monotonic() < self.stalled_until:
            skipped: asyncio.Future[float] = self.loop.create_future()
            skipped.set_result(0.0)  # the keepalive goes on as if answered
            return skipped
        return await super().ping(data)


async def _drip(connection: ServerConnection, answer: bytes, interval_s: float) -> None:
    """Write `answer` one byte every `interval_s`, until the client hangs up; then close.

    websockets then writes its own copy of the answer to the closed connection, where it
    goes nowhere.
    """
    transport = connection.transport
    for index in range(len(answer)):
        if transport.is_closing():
            break
        transport.write(answer[index:index + 1])
        await asyncio.sleep(interval_s)
    transport.abort()


def _resume_reading(socket: ServerConnection) -> None:
    if not socket.transport.is_closing():
        socket.transport.resume_reading()


def _json_response(status: int, body: Any) -> Response:
    payload = body if isinstance(body, str) else json.dumps(body)
    # websockets half-closes the connection after any answer but a WebSocket upgrade. An
    # HTTP/1.1 server that will not take another request must say so (RFC 9112 9.6):
    # without the header a client keeps the connection, and a request it sends there
    # before the server's FIN arrives is never answered (RemoteDisconnected).
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload.encode()))),
                       ("Connection", "close")])
    return Response(status, HTTPStatus(status).phrase, headers, payload.encode())
