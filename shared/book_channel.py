"""The order book channel of a worker: every market's local book, kept, checked and
published, for every exchange alike (the worker module only parses, shared.venue).

  frames    each book socket's frames become BookMessages (venue.parse_book_ws); a
            snapshot replaces the market's book, changes are applied after the sequence
            check (BookMessage.first_id follows the last applied update_id), then the
            exchange's checksum and the crossed check (shared.book.OrderBook.check)
  publish   the top N when a price or a size of it changed since the market's last
            record (shared.record.Book, its own topic and seq); otherwise counted
            (book_conflated)
  numbered  an exchange that numbers every message of a connection, across its channels
            and markets (Coinbase Advanced Trade's sequence_num: venue.NumberedBookFrame),
            is checked per connection, heartbeats and acks included: each session of a
            book socket numbers from 0, each frame the last + 1. A gap, a repeat or an
            older number means that any message of the socket may be missing: every book
            built on that session is lost (reason gap, counted per market) and the
            socket's markets are resubscribed at once (as paced: "lost" below); a break
            that finds no book to lose within RESUBSCRIBE_AGAIN_AFTER_S of that asks for
            nothing more. The key
            is the session's name as captured (shared.capture), so a replay checks what
            the live run checked. A book follows the stream of the session whose
            snapshot built it: a change from another session (before that session's
            snapshot) is skipped
  lost      a gap, a wrong checksum, a crossed book or a stale REST snapshot: the market
            publishes nothing until it is rebuilt, as the exchange allows
            (venue.book_resync_at): the next whole-book frame, a resubscribe of that market
            on its socket (a socket's requests venue.book_resubscribe_gap_s apart at
            least, those asked meanwhile in one), or a REST snapshot (its stream's changes
            held meanwhile); counted by reason (book_resyncs), logged throttled; other
            markets go on
  REST      snapshots and, while a book socket is down, the fallback (source "rest"),
            through the worker's REST client and pacing, shared with the ticker's
  quiet     while a book socket answers, its markets that heard nothing for rest_refresh_s
            are compared with REST (refresh_quiet): an exchange that drops a subscription
            unannounced leaves the book quiet and wrong, which nothing else shows. A REST
            book equal to the one kept, by value, changes nothing; one that differs means
            the stream lost the market: a whole-book exchange publishes it (source "rest",
            counted in refreshed), any other loses the book (gap) and rebuilds it; and the
            socket's markets are subscribed again
  replay    the same path: frames captured as kind "book", REST bodies by their path
"""

import asyncio
import logging
import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.book import BookLost, OrderBook
from shared.record import (EARLIEST_EXCHANGE_TS_MS, EXCHANGE_TS_AHEAD_MS, Book, ExchangeError, Level, ServerRestart,
                           Source)
from shared.rest import RestUnavailable
from shared.venue import BookMessage, Market, NumberedBookFrame

if TYPE_CHECKING:
    from shared.worker import Connection, Worker

# Changes held for one market while its REST snapshot is on its way ("rest" resync); at
# more, the oldest are dropped, and the snapshot will be found stale and asked again.
MAX_HELD_CHANGES = 10_000
# A resubscribed market whose snapshot has not come this long after is resubscribed again
# (a request lost with its socket's last moments). OKX allows 480 requests an hour a
# connection, and a resubscribe is two.
RESUBSCRIBE_AGAIN_AFTER_S = 30.0
# REST calls a refresh round of a book socket's quiet markets makes at most, those quiet
# and unchecked longest first: a call a market at most exchanges, and Kraken takes one a
# second, shared with the tickers' fallback. 10 in a round of rest_refresh_s (300 s) is
# under a thirtieth of the slowest budget; a socket of 100 quiet markets is gone through
# in 10 rounds.
REFRESH_CALLS_PER_ROUND = 10
# After a refresh round's calls, how long a market's stream is given to speak before its
# REST book is compared: a change on its way when REST answered makes the book kept older
# than REST's, not wrong, and arrives within this.
REFRESH_GRACE_S = 1.0


class MarketBook:
    """One market's book and what its resync needs."""

    __slots__ = ("market", "book", "connection", "session", "held", "seeded", "snapshot_asked", "heard_ns",
                 "checked_ns")

    def __init__(self, market: Market, book: OrderBook) -> None:
        self.market = market
        self.book = book
        self.connection: "Connection | None" = None  # the book socket that carries it
        # The session (as captured) whose numbered snapshot built the book; None: a REST
        # snapshot, or an exchange that numbers no connection.
        self.session: str | None = None
        # Changes that came while a REST snapshot was awaited (book_resync "rest"), and
        # when each arrived.
        self.held: list[tuple[BookMessage, int]] = []
        # Set by a REST snapshot until the first change applied after it, which may
        # straddle the snapshot's update_id; older changes are dropped meanwhile.
        self.seeded = False
        self.snapshot_asked = False  # a REST snapshot call is on its way
        # Wall clock (ns) of the market's last book message, socket or REST, and of its last
        # refresh call (refresh_quiet): a market quiet in both for rest_refresh_s is refreshed.
        self.heard_ns = 0
        self.checked_ns = 0


class BookChannel:
    def __init__(self, worker: "Worker", markets: list[Market], depth: int) -> None:
        self.worker = worker
        self.venue = worker.venue
        self.depth = depth
        self.stats = worker.stats
        self.log: logging.Logger = worker.log
        window = self.venue.book_window(depth)
        self.resync = self.venue.book_resync_at(depth)
        self.snapshot_ids_grow = self.venue.book_snapshot_ids_grow_at(depth)
        self.books = {market.raw: MarketBook(market, OrderBook(market.raw, depth, window, self.venue.book_checksum))
                      for market in markets}
        self._asking: set[asyncio.Task[None]] = set()  # REST snapshot calls on their way
        # The highest number heard on each session of a numbering exchange's book socket.
        self._numbers: dict[str, int] = {}
        # When each such session's markets were last resubscribed after a break (_lose_session).
        self._resubscribed: dict[str, float] = {}
        # Each book socket's last resubscribe request (loop time), and the markets of the
        # next, while it waits for the venue's book_resubscribe_gap_s (_resubscribe).
        self._resubscribed_at: dict["Connection", float] = {}
        self._resubscribe_due: dict["Connection", dict[MarketBook, None]] = {}
        # Markets whose quiet book a refresh found not to be REST's (on_refresh_body).
        self.found_stale: set[str] = set()

    # One path for every payload, live or replayed. -----------------------------------

    def on_frame(self, frame: bytes, received_ns: int, url: str, session: str = "") -> int:
        """Keep and publish the books in one frame of a book socket; returns the records.
        `session`: the socket's session (shared.worker.Connection.session); "" in captures
        made before sessions were recorded."""
        worker = self.worker
        self.stats.book_frames += 1
        if worker.recorder is not None:
            worker.recorder.write("book", url, frame, received_ns, session)
        try:
            parsed = self.venue.parse_book_ws(frame, received_ns)
        except ServerRestart:
            if worker.replaying:
                return 0
            raise
        except ExchangeError as error:
            self.stats.exchange_errors += 1
            worker.throttled.warning("exchange errors", "%s: %s", url, error)
            return 0
        except Exception as error:  # any failure to parse is the frame's fault: dead-letter it
            worker.dead_letter(error, received_ns, "ws", url, frame)
            return 0
        numbered_by: str | None = None
        if isinstance(parsed, NumberedBookFrame):
            self._check_number(session, parsed.number)
            messages, numbered_by = parsed.messages, session
        else:
            messages = parsed
        published = 0
        for message in messages:
            published += self._take(message, received_ns, "ws", url, frame, numbered_by)
        self.stats.book_ws_records += published
        return published

    def _check_number(self, session: str, number: int) -> None:
        """A session numbers its messages 0, 1, 2...: any other number loses its books."""
        last = self._numbers.get(session, -1)
        # After a repeat or an older number, the stream goes on from the highest.
        self._numbers[session] = max(last, number)
        if number != last + 1:
            self._lose_session(session, f"message {number} of {session} after {last}")

    def session_ended(self, session: str) -> None:
        """A book socket's session is over: the next one numbers anew."""
        self._numbers.pop(session, None)
        self._resubscribed.pop(session, None)

    def on_rest_body(self, body: bytes, received_ns: int, url: str) -> int:
        """Keep and publish the REST snapshots in one body (recorded by the worker)."""
        published = 0
        for message in self._rest_messages(body, received_ns, url):
            published += self._take(message, received_ns, "rest", url, body)
        self.stats.book_rest_records += published
        return published

    def on_refresh_body(self, body: bytes, received_ns: int, url: str) -> int:
        """The REST books of quiet markets (refresh_quiet; recorded by the worker as a
        refresh, and replayed through here): a book equal to the one kept, by value, is
        right and changes nothing. One that differs shows that the stream lost the market
        unannounced: a whole-book exchange's REST book is the book now, published (source
        "rest"); any other exchange's book is lost (gap) and rebuilt as it allows, its
        stream's next changes having nothing to follow. A book not live is left to its
        rebuild, but a whole-book exchange's, which waits for a frame that may not come."""
        published = 0
        for message in self._rest_messages(body, received_ns, url):
            state = self.books.get(message.raw)
            if state is not None:
                try:
                    if state.book.state == "live" and _same_top(state.book, message, self.depth):
                        continue
                except Exception as error:  # a level that is no number: as any REST body's
                    self.worker.dead_letter(error, received_ns, "rest", url, body)
                    continue
                self.found_stale.add(message.raw)
                if self.resync != "frames":
                    if state.book.state == "live":
                        self._lost(state, state.book.lose(
                            "gap", "quiet, and its REST book differs"))
                    continue
            published += self._take(message, received_ns, "rest", url, body)
        self.stats.book_rest_records += published
        self.stats.refreshed += published
        return published

    def _rest_messages(self, body: bytes, received_ns: int, url: str) -> list[BookMessage]:
        """The BookMessages of a REST body; none when it is an exchange's error (counted)
        or no book (dead-lettered)."""
        try:
            return self.venue.parse_rest_book(url, body, received_ns)
        except ExchangeError as error:
            self.stats.exchange_errors += 1
            self.worker.throttled.warning("exchange errors", "%s: %s", url, error)
        except Exception as error:
            self.worker.dead_letter(error, received_ns, "rest", url, body)
        return []

    def _take(self, message: BookMessage, received_ns: int, source: Source, url: str, payload: bytes,
              numbered_by: str | None = None) -> int:
        state = self.books.get(message.raw)
        if state is None:
            self.worker.dead_letter(ValueError(f"a book of market {message.raw!r}, not subscribed"),
                                    received_ns, source, url, payload)
            return 0
        state.heard_ns = received_ns
        try:
            return self._keep(state, message, received_ns, source, numbered_by)
        except BookLost as lost:
            self._lost(state, lost)
            return 0
        except Exception as error:  # a level that is no number: the book is as it was
            self.worker.dead_letter(error, received_ns, source, url, payload)
            if numbered_by is not None and not message.snapshot and state.book.state == "live":
                # A per-market sequence shows the change missing at the next message; a
                # connection's numbering never will: the book has lost it now.
                self._lost(state, state.book.lose("gap", f"a change of message {message.update_id} not applied"))
            return 0

    def _keep(self, state: MarketBook, message: BookMessage, received_ns: int, source: Source,
              numbered_by: str | None = None) -> int:
        """`numbered_by`: the session of a numbered frame (NumberedBookFrame), else None."""
        book = state.book
        rest_seeded = self.resync == "rest"
        if message.snapshot:
            if self.snapshot_ids_grow and message.update_id is not None \
                    and book.update_id is not None and message.update_id <= book.update_id:
                self.stats.book_skipped += 1  # an older book than the one kept (or the same again)
                return 0
            book.replace(message.bids, message.asks)
            book.update_id = message.update_id
            state.session = numbered_by
            state.snapshot_asked = False
            published = self._publish(state, message, received_ns, source)
            if rest_seeded and source == "rest":
                state.seeded = True
                held, state.held = state.held, []
                for index, (change, change_received_ns) in enumerate(held):
                    try:
                        published += self._keep(state, change, change_received_ns, "ws")
                    except BookLost:
                        state.held.extend(held[index + 1:])  # the failing one is held already
                        raise
            return published
        if book.state != "live" or (numbered_by is not None and state.session != numbered_by):
            self.stats.book_skipped += 1
            if rest_seeded:
                self._hold(state, message, received_ns)
            return 0
        last = book.update_id
        if message.first_id is not None:
            if last is None:
                # A book from a REST snapshot without a sequence id (OKX's, Bybit's), taken
                # while its socket was silent: the stream's changes cannot be placed on it,
                # and a socket that speaks again sends no snapshot of its own. Skipped, they
                # left the book as REST had it, unpublished, until the exchange chose to
                # send a snapshot (OKX never does unasked). The book is lost, and rebuilt.
                raise book.lose("gap", f"a change from {message.first_id} on a REST book, which has no sequence id")
            if state.seeded:
                if message.update_id is not None and message.update_id <= last:
                    return 0  # older than the REST snapshot: the documented drop
                if message.first_id > last + 1:
                    self._hold(state, message, received_ns)  # the start of the next try
                    raise book.lose("snapshot_stale", f"REST snapshot at {last}, stream from {message.first_id}")
                state.seeded = False
            elif message.first_id != last + 1:
                if rest_seeded:
                    self._hold(state, message, received_ns)
                raise book.lose("gap", f"{message.first_id} after {last}")
        book.apply(message.bids, message.asks)
        book.update_id = message.update_id
        return self._publish(state, message, received_ns, source)

    def _publish(self, state: MarketBook, message: BookMessage, received_ns: int, source: Source) -> int:
        book = state.book
        book.check(message.checksum)
        top = book.changed_top()
        if top is None:
            self.stats.book_conflated += 1
            return 0
        exchange_ts = message.exchange_ts
        if exchange_ts is not None and not (
                EARLIEST_EXCHANGE_TS_MS <= exchange_ts <= received_ns // 1_000_000 + EXCHANGE_TS_AHEAD_MS):
            exchange_ts = None
            self.stats.timestamps_nulled += 1
        market = state.market
        self.worker.sink.publish_book(Book(self.venue.name, market.symbol, market.raw, top[0], top[1], self.depth,
                                           book.update_id, exchange_ts, received_ns, source))
        return 1

    def _hold(self, state: MarketBook, message: BookMessage, received_ns: int) -> None:
        state.held.append((message, received_ns))
        if len(state.held) > MAX_HELD_CHANGES:
            del state.held[0]
        self._ask_snapshot(state)

    def _lost(self, state: MarketBook, lost: BookLost) -> None:
        self._count_lost(state, lost)
        if self.resync == "resubscribe":
            self._resubscribe(state.connection, [state])
        elif self.resync == "rest":
            self._ask_snapshot(state)

    def _count_lost(self, state: MarketBook, lost: BookLost) -> None:
        self.stats.book_resyncs[lost.reason] += 1
        state.seeded = False
        self.worker.throttled.warning("book resyncs " + lost.reason, "%s; rebuilding it (%s)", lost,
                                      self.resync)

    def _lose_session(self, session: str, detail: str) -> None:
        """Lose every book built on `session` (counted per market), and resubscribe every
        market of its socket in one request: a market still awaiting its snapshot may
        have lost it in the gap."""
        lost = [state for state in self.books.values() if state.session == session and state.book.state == "live"]
        # A socket that breaks its numbering on every frame (an old number repeated) was
        # resubscribed on every frame, far beyond Coinbase's 8 messages a second: a break
        # that finds no book to lose asks for nothing while the last request's snapshots
        # are awaited (and _resubscribe paces the requests).
        if not lost and time.monotonic() - self._resubscribed.get(session, -math.inf) < RESUBSCRIBE_AGAIN_AFTER_S:
            self.worker.throttled.warning("book sequence breaks", "%s: no book to lose; the socket's markets are "
                                          "asked for already", detail)
            return
        self.worker.throttled.warning("book sequence breaks", "%s: %d book(s) lost; resubscribing the socket's markets",
                                      detail, len(lost))
        for state in lost:
            self._count_lost(state, state.book.lose("gap", detail))
        self._resubscribed[session] = time.monotonic()
        for connection in self.worker.book_connections:
            if connection.session == session:
                self._resubscribe(connection, [self.books[market.raw] for market in connection.markets])

    # Rebuilding a lost book (live runs only: a replay reads the snapshots recorded). ---

    def _resubscribe(self, connection: "Connection | None", states: list[MarketBook]) -> None:
        """Ask for fresh snapshots of `states`' markets, all carried by `connection`: at once,
        or, within the venue's book_resubscribe_gap_s of the connection's last request, in
        the one request made when that has passed. A server that repeats an old sequence id
        loses a book again at each snapshot: OKX's books were resubscribed 242 times in 3 s
        in the simulator, past its 480 requests an hour, and not rebuilt after that."""
        loop = self.worker.loop
        if self.worker.replaying or connection is None or loop is None or not states:
            return
        due = self._resubscribe_due.get(connection)
        if due is not None:
            due.update(dict.fromkeys(states))
            return
        wait_s = self._resubscribed_at.get(connection, -math.inf) + self.venue.book_resubscribe_gap_s - loop.time()
        if wait_s > 0:
            self._resubscribe_due[connection] = dict.fromkeys(states)
            loop.call_later(wait_s, self._resubscribe_due_now, connection)
            return
        self._resubscribed_at[connection] = loop.time()
        connection.send_soon(self.venue.book_resubscribe_messages([state.market for state in states], self.depth))
        loop.call_later(RESUBSCRIBE_AGAIN_AFTER_S, self._resubscribe_if_lost, connection, states)

    def _resubscribe_due_now(self, connection: "Connection") -> None:
        self._resubscribe(connection, list(self._resubscribe_due.pop(connection)))

    def _resubscribe_if_lost(self, connection: "Connection", states: list[MarketBook]) -> None:
        lost = [state for state in states if state.book.state != "live"]
        # A whole-book exchange is asked for the socket's markets all at once (refresh_quiet),
        # and asked again so: a request of Upbit's replaces the socket's whole subscription,
        # and one of the lost alone would leave the others unsubscribed.
        self._resubscribe(connection, lost if self.resync == "resubscribe" or not lost else states)

    def _ask_snapshot(self, state: MarketBook) -> None:
        if self.worker.replaying or state.snapshot_asked or self.worker.loop is None:
            return
        state.snapshot_asked = True
        asking = self.worker.loop.create_task(self._snapshot(state))
        self._asking.add(asking)  # held: the loop keeps only a weak reference to a task
        asking.add_done_callback(self._asking.discard)

    async def _snapshot(self, state: MarketBook) -> None:
        try:
            await self.rest_poll([state.market], "book snapshot")
        finally:
            state.snapshot_asked = False
        if state.book.state != "live" and state.held:
            # The call failed, or its snapshot was stale: ask again, after the backoff's pause.
            await asyncio.sleep(self.worker.runtime.backoff_initial_s)
            self._ask_snapshot(state)

    async def rest_poll(self, markets: list[Market], why: str, fallback_of: "Connection | None" = None) -> int:
        """Publish the REST books of `markets`; returns how many records.

        For the fallback of a socket (`fallback_of`), an answer is dropped, unrecorded, when
        the socket was heard since this round of calls began, and the round's calls left
        are not made: the stream is back, and may have rebuilt the book already, so the
        REST book would be older than the one kept (published after a newer record), and
        without a sequence id (OKX's) it would leave the stream's changes nothing to
        follow. A call asked after the socket was heard is no better: a REST book may hold
        fewer levels than the stream's, and one taken at the stream's own id (Gate's) would
        replace the stream's whole book and let its next changes apply to those levels
        alone (a deleted level leaves a record short of the true top N). Counted in
        book_skipped.

        So is an answer while the socket's subscription is fresh (sent within
        rest_fallback_after_s), before it is heard: the exchange's snapshots of the new
        subscription are on their way, and a REST book taken after them, published first,
        was followed by the older book of the snapshot frame (a whole-book exchange has no
        id to tell: seen on Upbit and Bithumb, 1 run in ~100 of the ws_down test)."""
        worker = self.worker
        markets = [market for market in markets if market.raw not in worker.unknown_markets]
        published = 0
        began = time.monotonic()

        def stream_back() -> bool:
            return fallback_of is not None and fallback_of.stream_back_since(began)

        for url in self.venue.book_rest_urls(markets, self.depth):
            if stream_back():
                break
            try:
                body, received_ns, url = await worker.rest_get(url)
            except (ExchangeError, RestUnavailable) as error:
                worker.throttled.warning("rest " + why, "REST %s failed: %s", why, error)
                continue
            if stream_back():
                self.stats.book_skipped += 1
                continue
            published += worker.on_rest_body(body, received_ns, url)
        return published

    async def refresh_quiet(self, connection: "Connection", quiet_s: float | None = None) -> None:
        """Compare with REST the books of `connection`'s markets that heard nothing for
        `quiet_s` (rest_refresh_s; 0, every book, when the whole socket fell silent:
        Connection._silence_check_due) while the socket answered (see on_refresh_body), live ones (and a
        whole-book exchange's lost ones, which wait for a frame): at most
        REFRESH_CALLS_PER_ROUND calls, those quiet and unchecked longest first. A market
        heard within REFRESH_GRACE_S of its call's start is not compared: its stream
        speaks. The round ends when the socket falls silent: the fallback takes over. A
        book found not to be REST's has the socket's markets asked for again, so that
        the stream comes back."""
        worker = self.worker
        runtime = worker.runtime
        quiet_ns = time.time_ns() - (runtime.rest_refresh_s if quiet_s is None else quiet_s) * 1e9
        quiet: list[MarketBook] = []
        for market in connection.markets:
            state = self.books[market.raw]
            if max(state.heard_ns, state.checked_ns) < quiet_ns and market.raw not in worker.unknown_markets \
                    and (state.book.state == "live" or self.resync == "frames"):
                quiet.append(state)
        if not quiet:
            return
        quiet.sort(key=lambda state: max(state.heard_ns, state.checked_ns))
        answers: list[tuple[MarketBook, int, bytes, int, str]] = []
        calls = 0
        for state in quiet:
            urls = self.venue.book_rest_urls([state.market], self.depth)
            if calls + len(urls) > REFRESH_CALLS_PER_ROUND \
                    or connection.seconds_since_heard() >= runtime.rest_fallback_after_s:
                break
            if not calls:
                self.stats.refreshes += 1
            calls += len(urls)
            # Asked: the next round asks the others first, whether this one is answered or not.
            state.checked_ns = began_ns = time.time_ns()
            for url in urls:
                try:
                    body, received_ns, url = await worker.rest_get(url)
                except (ExchangeError, RestUnavailable) as error:
                    worker.throttled.warning("rest book refresh", "REST book refresh failed: %s", error)
                    continue
                answers.append((state, began_ns, body, received_ns, url))
        if not answers:
            return
        await asyncio.sleep(REFRESH_GRACE_S)
        self.found_stale.clear()
        for state, began_ns, body, received_ns, url in answers:
            if state.heard_ns < began_ns:
                worker.on_rest_body(body, received_ns, url, "refresh")
        if self.found_stale:
            # A subscription the exchange dropped is seldom one market's: the socket's other
            # quiet markets are asked for again too, beside those lost (resubscribed already).
            # A request of a whole-book exchange (Upbit) replaces the socket's subscription:
            # every market of the socket, as a reconnect asks.
            if self.resync == "resubscribe":
                again = [state for state in quiet if state.market.raw not in self.found_stale]
                asked = len(again) + len(self.found_stale)
            else:
                again = [self.books[market.raw] for market in connection.markets]
                asked = len(again)
            worker.throttled.warning("book refresh", "%s: %d quiet book(s) not what REST has (%s): the stream lost "
                                     "them; %d market(s) of the socket asked for again", connection.name,
                                     len(self.found_stale), ", ".join(sorted(self.found_stale)[:5]), asked)
            self._resubscribe(connection, again)


def _same_top(book: OrderBook, message: BookMessage, depth: int) -> bool:
    """Whether a REST snapshot's top `depth` is the book's, by value: REST may print a
    number otherwise than the stream (trailing zeros, an exponent), list levels in any
    order or with zero sizes; read into a book of its own, as a snapshot is."""
    rest = OrderBook(book.market, depth, book.window)
    rest.replace(message.bids, message.asks)
    return _by_value(rest.top(depth)) == _by_value(book.top(depth))


def _by_value(top: tuple[list[Level], list[Level]]) -> tuple[list[tuple[Decimal, Decimal]], ...]:
    return tuple([(Decimal(price), Decimal(size)) for price, size in side] for side in top)
