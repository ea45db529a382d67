"""The simulator's order books: one true book per market that evolves, served to the
book sockets in each exchange's format, with the faults a book channel must survive.

An exchange mode (simulator/<exchange>.py) with a book channel creates a `BookFeed`
(self.book_feed = BookFeed(self)) and implements the frames, as the exchange shapes them:

  book_snapshot_frame(socket, market_id, update)  what a subscribe sends first (None: nothing,
                                                  Binance's diff stream)
  book_update_frame(socket, market_id, update)    one change message (a whole-book exchange:
                                                  the whole book, update.view)

Its on_message calls book_feed.subscribe(socket, ids, replace=...) / unsubscribe(), and
book_feed.send(socket, frame) for a frame of its own that must keep its place among the
socket's book frames (Coinbase numbers every message of a connection); its rest()
serves the REST book from book_feed.rest_view(market_id) (the stale fault lives there).
The feed sends one update at a time, round robin over the subscribed markets, at
book_rate_per_s (all markets together), to every socket subscribed to that market, in
order (one queue a socket). A book once made moves on while no socket listens. An
update's frames are rendered when it is made, whatever a fault then does with them: an
exchange that numbers a connection's messages has numbered a dropped or held-back one.

Prices are integer ticks of the market's Quote scale, sizes integer units of 10^-8: no
float touches a level. A level's text is the price with the market's decimals and the
size with 8 (the canonical text); an exchange may print them otherwise (Upbit's
exponent form), and tests compare values then.

Control (GET, JSON):
  /_sim/book?market=M&depth=N       the true top N now: {"update_id", "bids", "asks"}
  /_sim/book_history?market=M&depth=N
                                    every true top N since the start, oldest first:
                                    [[update_id, bids, asks], ...] (consecutive repeats kept once)
  /_sim/book_rate?per_s=N           book updates a second, all markets together (0: frozen,
                                    and an update book_reorder holds back is sent)
  /_sim/stats                       also: book_frames, book_faults (those still to come)
  /_sim/fault?kind=K[&count=N]      the next N updates (of any market):
      book_gap       not sent (the book changes; the stream skips its ids, and a
                     connection's number: Coinbase)
      book_repeat    sent, then sent again
      book_reorder   held back and sent after the market's next one
      book_checksum  sent with a wrong checksum (exchanges that send one)
      book_crossed   a message that crosses the book (a bid at the best ask), which the
                     true book does not take; it takes the message's ids
      book_stale     the next N REST book snapshots are of the book as it was
                     STALE_UPDATES changes of its top before (an id older than the
                     stream), once the market has had that many
  /_sim/fault?kind=book_late&seconds=S[&count=N]
                                    the next N book subscribes are answered S s late:
                                    their snapshot frames, of the books as they were when
                                    subscribed, and every frame queued behind them, are
                                    written S s after the subscribe (frames in flight
                                    while the books move on, and REST answers them as now)
  /_sim/fault?kind=book_forget      every book socket's markets are forgotten, unannounced:
                                    the socket stays open and answers its keepalives,
                                    the books move on, and nothing of them is sent until
                                    the client subscribes the market again
"""

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from simulator.core import BULK_HIGH_WATER, BULK_RATE_PER_S, BULK_RING, Quote, paced

if TYPE_CHECKING:
    from simulator.core import ExchangeSim

LEVELS = 40  # levels a side a book starts with, and keeps about
HISTORY_DEPTH = 30  # levels a side each history entry holds: the most any record shows here
HISTORY_ENTRIES = 200_000  # a market's history entries kept, at most
STALE_UPDATES = 5  # how far back a stale REST snapshot is, in changes of the top
SIZE_SCALE = 8
BOOK_FAULTS = ("book_gap", "book_repeat", "book_reorder", "book_checksum", "book_crossed", "book_stale")

Level = tuple[str, str]

# Book updates rendered in one go at most (and BURST_S of the rate): rendering one costs
# 0.1-0.3 ms of Python, and handshakes, REST calls and pongs wait behind a burst.
MAX_BOOK_BURST = 1000
# A bulk ring's books rendered between two turns of the loop: a ring of BULK_RING books
# rendered in one go held a starved simulator's loop for seconds (the fleet's Binance
# sockets went unheard for 20 s when its book rate rose to the bulk rates).
RING_RENDERS_BETWEEN_YIELDS = 50


def fixed_point(units: int, places: int) -> str:
    """`units` × 10^-places printed with exactly `places` decimals, as Decimal's
    f"{value:.{places}f}" prints it, in integer arithmetic: every update formats some
    sixty levels (its history entry, its frame), and formatting them through Decimal was
    most of a simulator's CPU at the fleet's book rates."""
    digits = str(abs(units)).rjust(places + 1, "0")
    sign = "-" if units < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"


class TrueBook:
    """One market's true book: price ticks -> size units, each side, and its sequence."""

    def __init__(self, quote: Quote, rng: random.Random, first_update_id: int | None = None,
                 id_steps: tuple[int, int] = (1, 3)) -> None:
        self.scale = quote.scale
        self.rng = rng
        self.id_steps = id_steps  # how far a message advances the sequence: (least, most)
        mid = max(quote.ticks, 2 * LEVELS + 10)
        self.bids = {mid - 1 - level: rng.randint(1, 10**9) for level in range(LEVELS)}
        self.asks = {mid + 1 + level: rng.randint(1, 10**9) for level in range(LEVELS)}
        self.update_id = rng.randint(10**6, 10**9) if first_update_id is None else first_update_id
        self.changed_ms = int(time.time() * 1000)
        self.history: list[tuple[int, list[Level], list[Level]]] = []
        self._remember()

    def price(self, ticks: int) -> str:
        return fixed_point(ticks, self.scale)

    @staticmethod
    def size(units: int) -> str:
        return fixed_point(units, SIZE_SCALE)

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """The best `depth` bids and asks, best first, as canonical texts."""
        bids = [(self.price(ticks), self.size(self.bids[ticks])) for ticks in sorted(self.bids, reverse=True)[:depth]]
        asks = [(self.price(ticks), self.size(self.asks[ticks])) for ticks in sorted(self.asks)[:depth]]
        return bids, asks

    def step(self) -> "BookUpdate":
        """Change 1-5 levels (mostly near the top), as one message of the exchange, and
        advance the sequence by 1-3 ids (exchanges count changes, not messages)."""
        rng = self.rng
        changes: list[tuple[str, str, str]] = []
        for _ in range(rng.randint(1, 5)):
            side_name = rng.choice(("bid", "ask"))
            side = self.bids if side_name == "bid" else self.asks
            ranked = sorted(side, reverse=side_name == "bid")
            rank = min(int(rng.expovariate(0.15)), len(ranked) - 1)
            ticks = ranked[rank]
            action = rng.random()
            if action < 0.2 and len(side) > LEVELS // 2:
                del side[ticks]
                units = 0
            elif action < 0.4:
                # A new level just outside this one, never crossing the other side.
                ticks = ticks + 1 if side_name == "bid" else ticks - 1
                best_other = min(self.asks) if side_name == "bid" else max(self.bids)
                if (side_name == "bid" and ticks >= best_other) or (side_name == "ask" and ticks <= best_other) \
                        or ticks in side or ticks < 1:
                    continue
                units = side[ticks] = rng.randint(1, 10**9)
            else:
                units = side[ticks] = rng.randint(1, 10**9)
            changes.append((side_name, self.price(ticks), self.size(units)))
        return self._advance(changes)

    def crossed_update(self) -> "BookUpdate":
        """A message that crosses the book, which the true book does not take: a bid at
        the best ask. It takes its ids all the same."""
        best_ask = min(self.asks)
        bids, asks = self.top(HISTORY_DEPTH * 2)
        view = ([(self.price(best_ask), self.size(10**8))] + bids, asks)
        return self._advance([("bid", self.price(best_ask), self.size(10**8))], view=view)

    def _advance(self, changes: list[tuple[str, str, str]],
                 view: tuple[list[Level], list[Level]] | None = None) -> "BookUpdate":
        first_id = self.update_id + 1
        self.update_id += self.rng.randint(*self.id_steps)
        self.changed_ms = int(time.time() * 1000)
        if view is None:
            self._remember()
        return BookUpdate(self, first_id, self.update_id, changes, self.changed_ms, view)

    def _remember(self) -> None:
        bids, asks = self.top(HISTORY_DEPTH)
        if self.history and self.history[-1][1:] == (bids, asks):
            return
        self.history.append((self.update_id, bids, asks))
        if len(self.history) > HISTORY_ENTRIES:
            del self.history[: HISTORY_ENTRIES // 10]


@dataclass
class BookUpdate:
    """One message about one market's book, as the exchange modes render it."""

    book: TrueBook
    first_id: int  # the first sequence id the message covers (Binance U, OKX prevSeqId + 1)
    update_id: int  # the last (Binance u, OKX seqId)
    changes: list[tuple[str, str, str]]  # (side "bid"/"ask", price, size); size 0 deletes
    ts_ms: int
    # The book as the message shows it, where it differs from the true book (crossed).
    shown: tuple[list[Level], list[Level]] | None = None
    wrong_checksum: bool = False
    snapshot: bool = False

    def window_changes(self, window: int) -> list[tuple[str, str, str]]:
        """The changes as an exchange that keeps `window` levels a side sends them (Kraken,
        Bybit): the changes, then, a side, as many of its worst levels in the window as
        the side lost levels, since those may have moved up into the window. No delete
        is sent for a level pushed out of it: the client keeps `window` levels a side.
        A level sent again unchanged changes nothing."""
        deleted = {"bid": 0, "ask": 0}
        for side, _, size in self.changes:
            if not size.strip("0."):
                deleted[side] += 1
        bids, asks = self.view(window)
        moved_up = [("bid", price, size) for price, size in bids[max(0, len(bids) - deleted["bid"]):]]
        moved_up += [("ask", price, size) for price, size in asks[max(0, len(asks) - deleted["ask"]):]]
        return self.changes + moved_up

    def view(self, depth: int) -> tuple[list[Level], list[Level]]:
        """The best `depth` levels a side of the book after this message, as sent."""
        if self.shown is not None:
            return self.shown[0][:depth], self.shown[1][:depth]
        return self.book.top(depth)


@dataclass
class _Subscription:
    markets: list[str] = field(default_factory=list)
    queue: "asyncio.Queue[str | bytes]" = field(default_factory=asyncio.Queue)
    writer: "asyncio.Task[None] | None" = None
    # The bulk feed's frames for `ring_markets` (_send_bulk): (before the id, after), as
    # RFC 6455 payload bytes; the next one to send.
    ring: list[tuple[bytes, bytes]] = field(default_factory=list)
    ring_markets: list[str] = field(default_factory=list)
    ring_index: int = 0
    # Markets the exchange forgot (book_forget): subscribed, sent nothing, until asked again.
    forgotten: set[str] = field(default_factory=set)
    # book_late: nothing is written before this time (monotonic).
    late_until: float = 0.0


def _ws_frame(payload: bytes, opcode: int) -> bytes:
    """An unmasked, final RFC 6455 frame (a server's) of `payload`."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")
    return header + payload


class BookFeed:
    """The books of one simulated exchange, its book sockets and their faults."""

    def __init__(self, sim: "ExchangeSim") -> None:
        self.sim = sim
        self.rate_per_s = sim.rate_per_s
        self.books: dict[str, TrueBook] = {}
        self.subscriptions: dict[ServerConnection, _Subscription] = {}
        self.faults: dict[str, int] = dict.fromkeys(BOOK_FAULTS, 0)
        self.frames = 0
        # book_reorder's held-back update, by market: its frames, rendered when it was made.
        self._held: dict[str, list[tuple[_Subscription, str]]] = {}
        self._bulk_id = 0  # the last update id the bulk feed sent
        # book_late: subscribes still to be answered late, and how late.
        self.late_subscribes = 0
        self.late_s = 0.0
        self._driver: asyncio.Task[None] | None = None

    def book(self, market_id: str) -> TrueBook:
        book = self.books.get(market_id)
        if book is None:
            book = self.books[market_id] = TrueBook(self.sim.quotes[market_id], random.Random(market_id),
                                                    self.sim.book_first_update_id(), self.sim.book_id_steps)
        return book

    # Subscriptions. ---------------------------------------------------------------

    def subscribe(self, socket: ServerConnection, market_ids: list[str], replace: bool = False) -> list[str]:
        """Subscribe `socket` to the books of the known ones of `market_ids` (replace: in
        place of what it had); their snapshot frames go first. Returns those subscribed."""
        known = [market_id for market_id in market_ids if market_id in self.sim.quotes]
        subscription = self._subscription(socket)
        if replace:
            subscription.markets = []
        if known and self.late_subscribes > 0:
            self.late_subscribes -= 1
            subscription.late_until = time.monotonic() + self.late_s
        for market_id in known:
            book = self.book(market_id)
            snapshot = BookUpdate(book, book.update_id, book.update_id, [], book.changed_ms, snapshot=True)
            frame = self.sim.book_snapshot_frame(socket, market_id, snapshot)
            if frame is not None:
                self._put(subscription, frame)
            if market_id not in subscription.markets:
                subscription.markets.append(market_id)
            subscription.forgotten.discard(market_id)
        if self._driver is None:
            self._driver = asyncio.create_task(self._drive())
        return known

    def send(self, socket: ServerConnection, frame: str) -> None:
        """Send a frame of the exchange's own (an ack, a heartbeat) after the socket's book
        frames queued so far."""
        self._put(self._subscription(socket), frame)

    def _subscription(self, socket: ServerConnection) -> _Subscription:
        subscription = self.subscriptions.get(socket)
        if subscription is None:
            subscription = self.subscriptions[socket] = _Subscription()
            subscription.writer = asyncio.create_task(self._write(socket, subscription))
        return subscription

    def unsubscribe(self, socket: ServerConnection, market_ids: list[str]) -> None:
        subscription = self.subscriptions.get(socket)
        if subscription is not None:
            subscription.markets = [market for market in subscription.markets if market not in market_ids]

    def subscribed(self, socket: ServerConnection) -> list[str]:
        subscription = self.subscriptions.get(socket)
        return subscription.markets if subscription else []

    def pending_faults(self) -> dict[str, int]:
        """The faults still to come, by kind: updates, or book_late's subscribes."""
        pending = {kind: count for kind, count in self.faults.items() if count}
        if self.late_subscribes:
            pending["book_late"] = self.late_subscribes
        return pending

    def state(self) -> dict[str, Any]:
        """What a test that waits in vain for book frames is shown: the update driver's
        and each book socket's writer's state, its markets and queued frames."""
        def task_state(task: "asyncio.Task[None] | None") -> str:
            if task is None or not task.done():
                return "none" if task is None else "running"
            return "cancelled" if task.cancelled() else f"ended: {task.exception()!r}"

        return {"driver": task_state(self._driver),
                "sockets": [{"state": socket.protocol.state.name, "markets": subscription.markets,
                             "queued": subscription.queue.qsize(), "writer": task_state(subscription.writer)}
                            for socket, subscription in self.subscriptions.items()]}

    def _put(self, subscription: _Subscription, frame: str) -> None:
        subscription.queue.put_nowait(frame.encode() if self.sim.binary_frames else frame)

    async def _write(self, socket: ServerConnection, subscription: _Subscription) -> None:
        try:
            while True:
                frame = await subscription.queue.get()
                held_until = max(self.sim.faults.stalled.get(socket, 0.0), subscription.late_until)
                if time.monotonic() < held_until:
                    await asyncio.sleep(held_until - time.monotonic())
                await socket.send(frame)
                self.frames += 1
        except ConnectionClosed:
            pass
        finally:
            self.subscriptions.pop(socket, None)

    # The updates. -----------------------------------------------------------------

    def _markets(self) -> Iterator[str]:
        """The markets whose books move, in turn: every book made so far (subscribed or
        read over REST once), whether or not a socket listens: a market trades on."""
        index = 0
        markets: list[str] = []
        sorted_for = (-1, -1)
        while True:
            # Sorted again only when a book is made or a market delisted: sorting the
            # books for every update cost a tenth of the update.
            if (len(self.books), len(self.sim.quotes)) != sorted_for:
                sorted_for = (len(self.books), len(self.sim.quotes))
                markets = sorted(market for market in self.books if market in self.sim.quotes)
            if not markets:
                yield ""
                continue
            yield markets[index % len(markets)]
            index += 1

    async def _drive(self) -> None:
        markets = self._markets()
        started, sent = time.monotonic(), 0
        while True:
            if self.rate_per_s <= 0 or not self.books:
                await asyncio.sleep(0.05)
                started, sent = time.monotonic(), 0
                continue
            started, sent, due = paced(started, sent, self.rate_per_s, time.monotonic(), MAX_BOOK_BURST)
            written = await self._send_bulk(due) if due > 0 else None
            if written is not None:
                sent += due
                # A millisecond between writes, as the ticker sender's: turning again at once wrote
                # a frame or two a turn and cost half a core at 2,000 updates/s.
                await asyncio.sleep(0.001)
                continue
            for _ in range(max(due, 0)):
                market_id = next(markets)
                if market_id:
                    self._update(market_id)
                sent += 1
            await asyncio.sleep(min(0.05, 1 / self.rate_per_s))

    def _update(self, market_id: str) -> None:
        book = self.book(market_id)
        faults = self.faults
        if faults["book_crossed"] > 0:
            faults["book_crossed"] -= 1
            self._send_rendered(self._render(market_id, book.crossed_update()))
            return
        update = book.step()
        if faults["book_gap"] > 0:
            faults["book_gap"] -= 1
            self._render(market_id, update)  # made (and numbered, on Coinbase), never sent
            return
        if faults["book_checksum"] > 0:
            faults["book_checksum"] -= 1
            update.wrong_checksum = True
        if faults["book_reorder"] > 0 and market_id not in self._held:
            faults["book_reorder"] -= 1
            # Sent late, it still shows the book as it was (a whole-book frame, a checksum).
            update.shown = book.top(max(len(book.bids), len(book.asks)))
            self._held[market_id] = self._render(market_id, update)
            return
        rendered = self._render(market_id, update)
        self._send_rendered(rendered)
        if market_id in self._held:  # after the market's next update
            self._send_rendered(self._held.pop(market_id))
        if faults["book_repeat"] > 0:
            faults["book_repeat"] -= 1
            self._send_rendered(rendered)

    def _render(self, market_id: str, update: BookUpdate) -> list[tuple[_Subscription, str]]:
        """The update's frame for each socket subscribed to the market."""
        rendered = []
        for socket, subscription in list(self.subscriptions.items()):
            if socket.protocol.state is State.CLOSED:
                if subscription.writer is not None:
                    subscription.writer.cancel()  # it waits for a frame it could never send
                self.subscriptions.pop(socket, None)
            elif market_id in subscription.markets and market_id not in subscription.forgotten:
                rendered.append((subscription, self.sim.book_update_frame(socket, market_id, update)))
        return rendered

    def _send_rendered(self, rendered: list[tuple[_Subscription, str]]) -> None:
        for subscription, frame in rendered:
            self._put(subscription, frame)

    # Benchmark rates. ---------------------------------------------------------------

    async def _send_bulk(self, count: int) -> int | None:
        """At BULK_RATE_PER_S and more, with no book fault pending, and where every
        subscribed socket takes whole-book frames sequenced by one id (sim.bulk_book_parts:
        Binance's partial depth), write `count` frames to each socket in one transport
        write; the frames written (0 while every reader is behind), None otherwise (the
        caller renders every update).

        Rendering an update costs ~50 µs in Python, which held one simulator near 5,000
        book frames/s, below what a worker reads. Here each socket's frames come from a
        ring of BULK_RING whole books rendered once from its markets' true books moving
        on, round robin, each sent with an update id above every one before (the books'
        ids follow it): every frame is a newer complete book, but the books repeat every
        BULK_RING frames, and /_sim/book_history is not what was sent. Back-pressure:
        nothing is written to a socket whose send buffer holds more than BULK_HIGH_WATER
        bytes, or whose queue still holds frames.
        """
        if self.rate_per_s < BULK_RATE_PER_S or any(self.faults.values()) or self._held \
                or any(subscription.forgotten for subscription in self.subscriptions.values()):
            return None
        subscriptions = [(socket, subscription) for socket, subscription in self.subscriptions.items()
                         if subscription.markets and socket.protocol.state is State.OPEN]
        for socket, subscription in subscriptions:
            if subscription.ring_markets != subscription.markets and not await self._render_ring(socket, subscription):
                return None
        opcode = 2 if self.sim.binary_frames else 1
        written = 0
        self._bulk_id = max([self._bulk_id, *(book.update_id for book in self.books.values())])
        for socket, subscription in subscriptions:
            transport = socket.transport
            if socket.protocol.state is not State.OPEN:  # closed while the rings were rendered
                continue
            if transport.get_write_buffer_size() > BULK_HIGH_WATER or not subscription.queue.empty() \
                    or time.monotonic() < self.sim.faults.stalled.get(socket, 0.0):
                continue
            ring, frames = subscription.ring, []
            for number in range(subscription.ring_index, subscription.ring_index + count):
                head, tail = ring[number % len(ring)]
                self._bulk_id += 1
                frames.append(_ws_frame(b"%s%d%s" % (head, self._bulk_id, tail), opcode))
            subscription.ring_index += count
            transport.write(b"".join(frames))
            written += count
        self.frames += written
        for book in self.books.values():
            book.update_id = self._bulk_id
        return written

    async def _render_ring(self, socket: ServerConnection, subscription: _Subscription) -> bool:
        markets = list(subscription.markets)
        # Asked first: a book stepped for the ring is never sent its own update.
        renderers = [self.sim.bulk_book_parts(socket, market_id) for market_id in markets]
        if None in renderers:
            return False
        ring = []
        for number in range(max(BULK_RING, len(markets))):
            market_id, render = markets[number % len(markets)], renderers[number % len(markets)]
            head, tail = render(self.book(market_id).step())  # type: ignore[misc]
            ring.append((head.encode(), tail.encode()))
            if number % RING_RENDERS_BETWEEN_YIELDS == RING_RENDERS_BETWEEN_YIELDS - 1:
                await asyncio.sleep(0)
        subscription.ring, subscription.ring_markets, subscription.ring_index = ring, markets, 0
        return True

    # REST and control. --------------------------------------------------------------

    def rest_view(self, market_id: str) -> BookUpdate:
        """The REST snapshot of a book: now, or with book_stale, STALE_UPDATES changes of
        its top ago (only its top HISTORY_DEPTH levels are remembered)."""
        book = self.book(market_id)
        if self.faults["book_stale"] > 0 and len(book.history) > STALE_UPDATES:
            self.faults["book_stale"] -= 1
            update_id, bids, asks = book.history[-1 - STALE_UPDATES]
            return BookUpdate(book, update_id, update_id, [], book.changed_ms, (bids, asks), snapshot=True)
        return BookUpdate(book, book.update_id, book.update_id, [], book.changed_ms, snapshot=True)

    def control(self, command: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        """Answer a /_sim/ command about books; None when it is not one."""
        if command == "book_rate":
            self.rate_per_s = float(query.get("per_s", [self.rate_per_s])[0])
            if not self.rate_per_s:  # frozen: a held-back update arrives, late, as it would
                for market_id in list(self._held):
                    self._send_rendered(self._held.pop(market_id))
            return {"book_rate_per_s": self.rate_per_s}
        if command == "fault" and query.get("kind", [""])[0] == "book_late":
            self.late_subscribes += int(query.get("count", ["1"])[0])
            self.late_s = float(query.get("seconds", ["1"])[0])
            return {"ok": "book_late"}
        if command == "fault" and query.get("kind", [""])[0] == "book_forget":
            # An exchange that drops its book subscriptions unannounced: every socket stays
            # open and answers its keepalives, the books go on changing, and no frame of
            # them is sent until the client subscribes the market again.
            for subscription in self.subscriptions.values():
                subscription.forgotten.update(subscription.markets)
            return {"ok": "book_forget"}
        if command == "fault" and query.get("kind", [""])[0] in BOOK_FAULTS:
            kind = query["kind"][0]
            self.faults[kind] += int(query.get("count", ["1"])[0])
            return {"ok": kind}
        if command not in ("book", "book_history"):
            return None
        market_id = query.get("market", [""])[0]
        if market_id not in self.sim.quotes:
            return {"error": f"no market {market_id!r}"}
        depth = int(query.get("depth", ["10"])[0])
        book = self.book(market_id)
        if command == "book":
            bids, asks = book.top(depth)
            return {"update_id": book.update_id, "bids": bids, "asks": asks}
        return {"history": [[update_id, bids[:depth], asks[:depth]] for update_id, bids, asks in book.history]}
