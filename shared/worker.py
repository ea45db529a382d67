"""The worker runtime: one exchange, its sockets, its REST fallback, its sink.

  startup   resolve markets (config list, or the exchange's market list); the REST
            snapshot runs beside the sockets, which open at once (Coinbase's snapshot
            is one paced call per product: ~30 s for 300)
  stream    one task per connection: connect, subscribe, keep alive, read frames;
            liveness is any frame heard (data, pongs, heartbeats, the server's pings):
            a socket quiet for half the shorter of watchdog_s and rest_fallback_after_s
            gets a ping, and one that answers is kept however long its markets are
            quiet; a watchdog closes a socket of which nothing at all has been heard
            for watchdog_s; reconnects back off with
            jitter, never give up, and resubscribe
  fallback  once the snapshot is done, while nothing has been heard on a connection
            for rest_fallback_after_s (it is down, or not answering), poll REST for its
            markets; stop as soon as it is heard again. While it answers, its markets
            that published nothing for rest_refresh_s are refreshed from REST that
            often, and a refreshed ticker is published only if a number changed; a
            book socket's quiet books are compared with REST's (shared.book_channel)
  sink      records to Kafka without awaiting; delivery reports served after each
            socket read, and by a poll every 0.1 s while records are pending and no
            read serves them (shared.sink.KafkaSink.serve)
  stop      SIGTERM/SIGINT: close sockets, flush within stop_timeout_s, exit 0
"""

import asyncio
import functools
import hashlib
import logging
import math
import random
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event

from shared import capture, numbers
from shared.book_channel import BookChannel
from shared.config import ExchangeConfig, Runtime
from shared.hosts import Hosts
from shared.log import Throttled
from shared.record import (DEAD_LETTER_RAW_MAX, DeadLetter, ExchangeError, FrameError, ServerRestart, Ticker,
                           ZeroLastPrice, check_values, is_refused)
from shared.rest import RestClient, RestUnavailable
from shared.sink import Sink
from shared.stats import Stats
from shared.venue import Market, Venue


class Worker:
    def __init__(
        self,
        venue: Venue,
        exchange: ExchangeConfig,
        runtime: Runtime,
        sink: Sink,
        stats: Stats,
        log: logging.Logger,
        recorder: capture.Recorder | None = None,
    ) -> None:
        self.venue = venue
        self.exchange = exchange
        self.runtime = runtime
        self.sink = sink
        self.stats = stats
        self.log = log
        self.recorder = recorder
        self.quotes = exchange.quotes or []
        self.replaying = False
        # Markets the exchange does not know: missing from its market list at startup, or
        # refused as unknown by its REST API later (rest_poll). Never polled over REST.
        self.unknown_markets: set[str] = set()
        self.throttled = Throttled(log)
        self.connections: list[Connection] = []  # filled once the markets are known
        # The order book channel (shared.book_channel) and its sockets, when collected.
        self.channels = channels_of(exchange)
        self.books: BookChannel | None = None
        self.book_connections: list[Connection] = []
        # The last record published for each market (by unified symbol): what a REST
        # refresh of a quiet market is compared with.
        self.latest: dict[str, Ticker] = {}
        # The last price and arrival (time.time_ns()) of each market's latest refreshed
        # REST ticker, published or not: what tells a trade the socket did not push.
        self.refreshed_last: dict[str, tuple[str, int]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop run() runs on
        # Set when the startup snapshot has run: the fallback polls only after it, so
        # that the two never spend the exchange's REST rate limit twice at once.
        self.snapshot_done = asyncio.Event()
        self._rest = RestClient(
            venue.headers, runtime.rest_timeout_s, runtime.backoff_initial_s,
            runtime.backoff_max_s, stats, log, venue.rest_min_interval_s,
        )
        # A REST call already retries before it fails for good: one such failure moves
        # REST to the alternate host. A socket moves after three connects in a row that
        # fail before the handshake completes (with the backoff, seconds of refusals).
        self.rest_hosts = Hosts("REST", exchange.rest_url, exchange.alternate_rest_url, 1, stats, log)
        self.ws_hosts = Hosts("WebSocket", exchange.ws_url, exchange.alternate_ws_url, 3, stats, log)
        if exchange.symbols:
            markets = [venue.market(*symbol.split("-", 1)) for symbol in exchange.symbols]
            venue.learn(markets)

    # One path for every payload, live or replayed. -----------------------------------

    def on_frame(self, frame: bytes, received_ns: int, url: str) -> int:
        """Publish the tickers in one WebSocket frame; returns how many."""
        return self.on_frames([frame], received_ns, url)

    def on_frames(self, frames: list[bytes], received_ns: int, url: str) -> int:
        """Publish the tickers in one socket read's frames, in order; returns how many.

        The read's tickers are checked, published and counted together: a Python call
        costs ~400 instructions, and a number check, check_values and publish once a
        frame were three of them (bench.profile). A frame that fails is dead-lettered (or
        counted, an exchange's error) and the others go on; an announced restart is
        raised once the read's tickers are published.
        """
        stats = self.stats
        stats.frames += len(frames)
        if self.recorder is not None:
            for frame in frames:
                self.recorder.write("ws", url, frame, received_ns)
        parse = self.venue.parse_ws
        tickers: list[Ticker] = []
        ends: list[int] = []  # where each frame's tickers end in `tickers`
        restart: ServerRestart | None = None
        checked_later = self.venue.parse_repeatable
        if checked_later:
            numbers.check_read_later()
        try:
            for frame in frames:
                try:
                    tickers += parse(frame, received_ns)
                except ServerRestart as announced:
                    restart = announced
                except ExchangeError as error:
                    stats.exchange_errors += 1
                    self.throttled.warning("exchange errors", "%s: %s", url, error)
                except Exception as error:  # any failure to parse is the frame's fault: dead-letter it
                    self.dead_letter(error, received_ns, "ws", url, frame)
                ends.append(len(tickers))
        finally:
            numbers_plain = numbers.read_all_plain() if checked_later else True
        if tickers:
            if not numbers_plain:
                tickers = self._parsed_again(frames, ends, received_ns, url)
            try:
                stats.timestamps_nulled += check_values(tickers)
            except ZeroLastPrice as refused:
                tickers = self._without_refused(frames, ends, tickers, received_ns, url)
                published = set(map(id, tickers))
                stats.timestamps_nulled += sum(id(ticker) in published for ticker in refused.nulled)
            self.sink.publish(tickers)
            latest = self.latest
            for ticker in tickers:
                latest[ticker.symbol] = ticker
            stats.ws_records += len(tickers)
        if restart is not None and not self.replaying:
            raise restart  # the connection reconnects at once
        return len(tickers)

    def _parsed_again(self, frames: list[bytes], ends: list[int], received_ns: int, url: str) -> list[Ticker]:
        """The read's tickers parsed again with each ticker's numbers checked at once, when
        a number failed the read's one-pass check: the frames whose numbers are refused
        are dead-lettered, and `ends` is set anew. Only the frames that gave tickers are
        parsed again: the others were handled by on_frames already (parsing is repeatable:
        Venue.parse_repeatable)."""
        tickers: list[Ticker] = []
        start = 0
        for index, end in enumerate(ends):
            if end > start:
                try:
                    tickers += self.venue.parse_ws(frames[index], received_ns)
                except Exception as error:  # a number no market has: see on_frames
                    self.dead_letter(error, received_ns, "ws", url, frames[index])
            start = end
            ends[index] = len(tickers)
        return tickers

    def _without_refused(self, frames: list[bytes], ends: list[int], tickers: list[Ticker], received_ns: int,
                         url: str) -> list[Ticker]:
        """The read's tickers but those of a frame with a last price of zero, which is
        dead-lettered; its neighbours are published. Not parsed again: a parse may keep
        state (Coinone drops a ticker id it has seen, which a second parse would be)."""
        kept: list[Ticker] = []
        start = 0
        for frame, end in zip(frames, ends):
            own = tickers[start:end]
            start = end
            refused = next((ticker for ticker in own if is_refused(ticker)), None)
            if refused is not None:
                self.dead_letter(FrameError(f"last {refused.last}: a price must be positive"),
                                 received_ns, "ws", url, frame)
            else:
                kept += own
        return kept

    def on_rest_body(self, body: bytes, received_ns: int, url: str, refresh: capture.Refresh = "",
                     asked: list[str] | None = None) -> int:
        """Publish the tickers in one REST body; returns how many. A refresh's body (see
        Connection.fallback) publishes only the tickers that bring news (_is_news): after
        rest_refresh_s quiet for a quiet-market refresh ("refresh"), after
        rest_fallback_after_s for a silent socket's check ("silence"; a silence longer
        than that, so newer than the stream's last record).

        `asked`: the markets (raw ids) a socket's fallback or refresh asked for. Where one
        call answers every market, the others are not published: their sockets may be
        streaming, and a REST ticker older than their last record would take them back
        in time. Recorded with the body, so that a replay publishes the same."""
        if self.recorder is not None:
            self.recorder.write(refresh or "rest", url, body, received_ns, markets=asked)
        if self.books is not None and self.venue.is_book_rest(url):
            if refresh:
                return self.books.on_refresh_body(body, received_ns, url)
            return self.books.on_rest_body(body, received_ns, url)
        try:
            tickers = self.venue.parse_rest(url, body, received_ns, self.quotes)
            self.stats.timestamps_nulled += check_values(tickers)
        except ExchangeError as error:
            self.stats.exchange_errors += 1
            self.throttled.warning("exchange errors", "%s: %s", url, error)
            return 0
        except Exception as error:
            self.dead_letter(error, received_ns, "rest", url, body)
            return 0
        if asked:
            wanted = set(asked)
            answered = [ticker for ticker in tickers if ticker.raw_symbol in wanted]
            if tickers and not answered:
                # None of the markets asked for, in a body of others: REST names them otherwise
                # than the socket does (a change at the exchange), or has dropped them. The
                # fallback would publish nothing while it lasts: an error of the call, not a lull.
                self.stats.rest_errors += 1
                self.throttled.warning("REST bodies without the markets asked for",
                                       "%s: none of the %d market(s) asked for (%s) in the body's %d ticker(s) "
                                       "(%s): nothing published", url, len(asked), ", ".join(asked[:5]),
                                       len(tickers), ", ".join(ticker.raw_symbol for ticker in tickers[:5]))
            tickers = answered
        if refresh:
            refreshed_last = self.refreshed_last
            for ticker in tickers:
                refreshed_last[ticker.symbol] = (ticker.last, ticker.received_ns)
            runtime = self.runtime
            quiet_ns = (runtime.rest_refresh_s if refresh == "refresh" else runtime.rest_fallback_after_s) * 1e9
            tickers = [ticker for ticker in tickers if self._is_news(ticker, quiet_ns)]
            self.stats.refreshed += len(tickers)
        self.sink.publish(tickers)
        for ticker in tickers:
            self.latest[ticker.symbol] = ticker
        self.stats.rest_records += len(tickers)
        return len(tickers)

    def _is_news(self, ticker: Ticker, quiet_ns: float) -> bool:
        """Whether a refreshed ticker is worth a record: its market has published nothing
        for quiet_ns before it arrived, and one of its numbers differs from the
        market's last record (one the REST body lacks does not count). Judged from the
        records alone, so that a replay publishes what the live run did."""
        last = self.latest.get(ticker.symbol)
        if last is None:
            return True
        if ticker.received_ns - last.received_ns < quiet_ns:
            return False  # the socket spoke for this market meanwhile
        return any(new is not None and (old is None or Decimal(new) != Decimal(old))
                   for new, old in zip(_numbers(ticker), _numbers(last)))

    def dead_letter(self, error: Exception, received_ns: int, source: str, url: str, raw: bytes) -> None:
        reason = f"{type(error).__name__}: {error}"
        self.throttled.warning("dead letters", "dead letter from %s: %s", url, reason)
        letter = DeadLetter(self.venue.name, reason, received_ns, source, url,  # type: ignore[arg-type]
                            raw[:DEAD_LETTER_RAW_MAX].decode("utf-8", errors="replace"))
        if len(raw) > DEAD_LETTER_RAW_MAX:
            letter.raw_bytes, letter.raw_sha256 = len(raw), hashlib.sha256(raw).hexdigest()
        self.sink.dead_letter(letter)

    # Live run. ----------------------------------------------------------------------

    async def run(self) -> bool:
        """Collect until SIGTERM/SIGINT; False if one of the worker's own tasks ended instead."""
        stop = asyncio.Event()
        loop = self.loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        background = [
            asyncio.create_task(self.sink.serve(), name="sink"),
            asyncio.create_task(self._report_stats(), name="stats"),
        ]
        collect = asyncio.create_task(self._collect(), name="collect")
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({collect, stopping, *background}, return_when=asyncio.FIRST_COMPLETED)
        # Every task but `stopping` runs until cancelled: one that ends is a bug (a sink
        # loop that died would leave delivery reports unserved and the spool undrained).
        # Say so, then stop as on SIGTERM: the queue is flushed or spooled, not lost.
        ended = [task for task in done if task is not stopping]
        # Stopping: a second SIGTERM (supervisord's own, after its stop_together listener's)
        # must end neither the flush nor, once the loop is closed, the process by the
        # signal's default action.
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for task in ended:
            self.log.error("task %s ended: %r; stopping", task.get_name(), task.exception() or "returned",
                           exc_info=task.exception())
        self.log.info("stopping: closing sockets, flushing %d queued records", self.sink.queue_depth())
        for task in (collect, *background):
            task.cancel()
        await asyncio.gather(collect, *background, return_exceptions=True)
        self._rest.close()
        self.sink.close(self.runtime.stop_timeout_s)
        if self.recorder is not None:
            self.recorder.close()
        self.stats.report(self.log, self.sink.queue_depth())
        self.log.info("stopped")
        return not ended

    async def _collect(self) -> None:
        markets = await self._resolve_markets()
        book_markets = self.book_markets(markets)
        if self.recorder is not None:
            # So that a replay needs no config.
            self.recorder.write_markets(markets + [market for market in book_markets if market not in markets],
                                        time.time_ns())
        if "ticker" in self.channels:
            per = self.venue.markets_per_connection
            self.connections = [Connection(self, markets[i:i + per], i // per) for i in range(0, len(markets), per)]
            self.log.info("run %s: %d markets on %d connection(s)", self.sink.run, len(markets),
                          len(self.connections))
        else:
            self.snapshot_done.set()
        if self.books is not None:
            per = self.venue.book_markets_per_connection or self.venue.markets_per_connection
            self.book_connections = [Connection(self, book_markets[i:i + per], i // per, self.books)
                                     for i in range(0, len(book_markets), per)]
            self.log.info("run %s: books of %d markets, top %d, on %d connection(s)", self.sink.run,
                          len(book_markets), self.books.depth, len(self.book_connections))
        async with asyncio.TaskGroup() as group:
            if "ticker" in self.channels:
                group.create_task(self._snapshot(markets))
            for connection in self.connections + self.book_connections:
                group.create_task(connection.stream())
                group.create_task(connection.fallback())

    def book_markets(self, markets: list[Market]) -> list[Market]:
        """The markets whose books are collected (book_symbols, else the ticker's), and
        the book channel made for them; [] when books are not collected."""
        if "book" not in self.channels:
            return []
        if self.exchange.book_symbols:
            book_markets = [self.venue.market(*symbol.split("-", 1)) for symbol in self.exchange.book_symbols]
            self.venue.learn(book_markets)
        else:
            book_markets = markets
        self.books = BookChannel(self, book_markets, self.exchange.book_depth)
        return book_markets

    async def _resolve_markets(self) -> list[Market]:
        if self.exchange.symbols:
            return await self._listed([self.venue.market(*symbol.split("-", 1)) for symbol in self.exchange.symbols])
        delay = self.runtime.backoff_initial_s
        while True:
            try:
                body, received_ns, url = await self.rest_get(self.venue.market_list_url())
                self.on_rest_body(body, received_ns, url)
                markets = self.venue.parse_market_list(body, self.quotes)
            except (RestUnavailable, ExchangeError, msgspec.DecodeError, ValueError) as error:
                self.log.error("market list unavailable (%s); retrying in %.0f s", error, delay)
            else:
                if markets:
                    return markets
                self.log.error("no market quoted in %s on %s; retrying in %.0f s", self.quotes, url, delay)
            await asyncio.sleep(delay * random.uniform(1.0, 1.5))
            delay = min(delay * 2, self.runtime.backoff_max_s)

    async def _listed(self, configured: list[Market]) -> list[Market]:
        """The configured markets that the exchange's market list names; one warning line
        names the others, which are counted and not collected. When the list cannot be
        read, all of them. When it names none, the warning again after a backoff, until
        it names one: a worker with nothing to collect says so rather than idle."""
        quotes = sorted({market.quote for market in configured})
        delay = self.runtime.backoff_initial_s
        while True:
            try:
                body, received_ns, url = await self.rest_get(self.venue.market_list_url(), attempts=1)
                self.on_rest_body(body, received_ns, url)  # recorded for --replay
                listed = {market.raw for market in self.venue.parse_market_list(body, quotes)}
            except (RestUnavailable, ExchangeError, msgspec.DecodeError, ValueError) as error:
                self.log.warning("market list unavailable (%s): configured symbols not checked", error)
                return configured
            unknown = [market for market in configured if market.raw not in listed]
            if unknown:
                self._count_unknown(unknown)
                self.throttled.warning(
                    "unknown symbols", "%d configured symbol(s) not listed by %s, not collected: %s",
                    len(unknown), self.venue.name, ", ".join(market.symbol for market in unknown))
            if len(unknown) < len(configured):
                return [market for market in configured if market.raw in listed]
            self.log.error("none of the configured symbols is listed: nothing to collect; "
                           "reading the market list again in %.0f s", delay)
            await asyncio.sleep(delay * random.uniform(1.0, 1.5))
            delay = min(delay * 2, self.runtime.backoff_max_s)

    async def _snapshot(self, markets: list[Market]) -> None:
        try:
            await self.rest_poll(markets, "snapshot")
        finally:
            self.snapshot_done.set()

    async def rest_poll(self, markets: list[Market], why: str, fallback_of: "Connection | None" = None) -> int:
        """Publish the REST tickers of `markets`; returns how many.

        A call that names several markets and is refused because one of them is unknown
        to the exchange (venue.rest_unknown_market) is split in two, and so on, until
        that market is found: it is dropped from REST polling and logged once, and the
        others keep their snapshot and fallback.

        For the fallback of a socket (`fallback_of`), the round ends once its stream is
        back (Connection.stream_back_since): an answer then is dropped, counted in
        rest_skipped, and the calls left are not made.
        """
        markets = [market for market in markets if market.raw not in self.unknown_markets]
        per_call = self.venue.rest_markets_per_call or len(markets) or 1
        began = time.monotonic()
        # A socket's markets, out of a body that may hold every market (on_rest_body).
        asked = None if why == "snapshot" else sorted(market.raw for market in markets)

        def stream_back() -> bool:
            return fallback_of is not None and fallback_of.stream_back_since(began)

        published = 0
        for start in range(0, len(markets), per_call):
            published += await self._poll_batch(markets[start:start + per_call], why, stream_back, asked)
        return published

    async def _poll_batch(self, markets: list[Market], why: str, stream_back: Callable[[], bool],
                          asked: list[str] | None) -> int:
        published = 0
        for url in self.venue.rest_ticker_urls(markets):
            if stream_back():
                break
            try:
                body, received_ns, url = await self.rest_get(url)
            except ExchangeError as error:
                if self._names_unknown_market(str(error)):
                    return published + await self._split(markets, str(error), why, stream_back, asked)
                self.throttled.warning("rest " + why, "REST %s failed: %s", why, error)
                continue
            except RestUnavailable as error:
                self.throttled.warning("rest " + why, "REST %s failed: %s", why, error)
                continue
            # Bithumb and Kraken refuse with HTTP 200: a short body that says so.
            answer = body.decode("utf-8", errors="replace") if len(body) <= 1024 else ""
            if self._names_unknown_market(answer):
                self.stats.rest_errors += 1
                return published + await self._split(markets, answer, why, stream_back, asked)
            if stream_back():
                self.stats.rest_skipped += 1
                continue
            refresh: capture.Refresh = "refresh" if why == "refresh" else "silence" if why == "silence" else ""
            published += self.on_rest_body(body, received_ns, url, refresh, asked)
        return published

    def quiet_markets(self, markets: list[Market]) -> list[Market]:
        """Those of `markets` that have published no record for rest_refresh_s."""
        since_ns = time.time_ns() - self.runtime.rest_refresh_s * 1e9
        latest = self.latest
        return [market for market in markets
                if (last := latest.get(market.symbol)) is None or last.received_ns < since_ns]

    def _names_unknown_market(self, answer: str) -> bool:
        marker = self.venue.rest_unknown_market
        return bool(marker) and self.venue.rest_markets_per_call > 0 and marker in answer

    async def _split(self, markets: list[Market], answer: str, why: str, stream_back: Callable[[], bool],
                     asked: list[str] | None) -> int:
        if len(markets) == 1:
            [market] = markets
            self._count_unknown(markets)
            self.log.warning("%s: refused by the exchange's REST API as unknown (%s); no longer polled over REST",
                             market.symbol, answer.strip()[:200])
            return 0
        half = len(markets) // 2
        return (await self._poll_batch(markets[:half], why, stream_back, asked)
                + await self._poll_batch(markets[half:], why, stream_back, asked))

    def _count_unknown(self, markets: list[Market]) -> None:
        self.unknown_markets.update(market.raw for market in markets)
        self.stats.unknown_symbols = len(self.unknown_markets)

    async def rest_get(self, url: str, attempts: int = 4) -> tuple[bytes, int, str]:
        """GET `url` (as the venue builds it, on the primary host) on the REST host in use:
        the body, when it arrived, and the URL it came from. A call starts at least
        venue.rest_min_interval_s after the last one ended. If the call fails for good and
        that moves REST to the alternate host, the same call once more there."""
        try:
            body, received_ns = await self._rest.get(self.rest_hosts.rebased(url), attempts)
        except RestUnavailable:
            if not self.rest_hosts.failed():
                raise
            body, received_ns = await self._rest.get(self.rest_hosts.rebased(url), attempts)
        self.rest_hosts.succeeded()
        return body, received_ns, self.rest_hosts.rebased(url)

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.stats_interval_s)
            # So that a leak of tasks shows in the line (and in /metrics: task_count()).
            self.stats.asyncio_tasks = self.task_count()
            self.stats.report(self.log, self.sink.queue_depth())

    def task_count(self) -> int:
        """Tasks on the worker's loop, from any thread (all_tasks copes with one that adds
        a task meanwhile): /metrics counts them when scraped, not once a stats interval."""
        return len(asyncio.all_tasks(self.loop)) if self.loop is not None else 0

    # Replay. ------------------------------------------------------------------------

    def replay(self, path: Path) -> None:
        self.replaying = True
        self.venue.name_unlearned = True
        books_not_collected = 0  # book frames and REST books of a capture, under a config without books
        for number, line, item in capture.read(path):
            if isinstance(item, capture.Markets):
                self.venue.learn(item.markets)
            elif isinstance(item, capture.Captured):
                data = item.data.encode("utf-8")
                of_books = item.kind == "book" or self.venue.is_book_rest(item.url)
                if self.books is None and of_books:
                    # The markets known by now: the capture's, its market list's, or the config's.
                    self.book_markets([Market(raw, *symbol.split("-", 1)) for raw, symbol in self.venue.symbols.items()])
                books = self.books
                if of_books and books is None:
                    books_not_collected += 1
                elif item.kind == "book" and books is not None:
                    books.on_frame(data, item.ts, item.url, item.connection)
                elif item.kind == "ws":
                    self.on_frame(data, item.ts, item.url)
                else:
                    refresh: capture.Refresh = ("refresh" if item.kind == "refresh"
                                        else "silence" if item.kind == "silence" else "")
                    self.on_rest_body(data, item.ts, item.url, refresh, item.markets)
            else:
                self.dead_letter(item, time.time_ns(), "ws", f"{path}:{number}", line)
        if books_not_collected:
            self.log.warning("replay: %d book frames and REST books of %s not replayed: the config's channels "
                             "(%s) collect no books", books_not_collected, path, ", ".join(self.channels))


class Connection:
    """One WebSocket connection carrying a share of the markets: their tickers, or their
    books (`books`: the worker's book channel)."""

    def __init__(self, worker: Worker, markets: list[Market], index: int, books: BookChannel | None = None) -> None:
        self.worker = worker
        self.markets = markets
        self.books = books
        self._opened = time.monotonic()
        self._stalled = ""  # why the watchdog aborted the current session, if it did
        self._handshake_done = False  # in the current session
        self.name = f"{worker.venue.name}{'-book' if books else ''}#{index}"
        # The current session's name, "<name>/<sessions>": what a book frame is captured
        # and sequence-checked under (an exchange that numbers a connection's messages
        # numbers each session's anew).
        self.sessions = 0
        self.session = ""
        self._socket: ClientConnection | None = None  # while subscribed
        self._sending: set[asyncio.Task[None]] = set()  # send_soon's
        if books is not None:
            for market in markets:
                books.books[market.raw].connection = self
        # As the venue builds it, on the primary host; `url` is on the host in use.
        self._venue_url = (worker.venue.ws_url(markets) if books is None
                           else worker.venue.book_ws_url(markets, books.depth))
        self.url = self._venue_url
        self.index = index
        protocol_ping = worker.venue.protocol_ping_interval_s
        self._protocol_ping_s = protocol_ping and (worker.runtime.ping_interval_s or protocol_ping)
        self._max_frame_bytes = worker.runtime.max_frame_bytes
        if books is not None and worker.venue.book_max_frame_bytes:
            self._max_frame_bytes = max(self._max_frame_bytes, worker.venue.book_max_frame_bytes)
        # Any frame heard on the socket, data or control (pongs, the server's pings): the
        # connection's liveness. Until it is first heard, the fallback counts from start.
        self.last_heard = time.monotonic()
        self._created = self.last_ws_record = self._last_refresh = time.monotonic()
        self.connected = False  # subscribed and reading frames
        # When the open session's subscription was sent (time.monotonic()), 0 between
        # sessions: its snapshots are on their way from then on (stream_back_since).
        self.subscribed_at = 0.0
        # The last_ws_record whose silence was checked against REST (_silence_check_due),
        # and when a subscription was last judged lost (time.monotonic()).
        self._silence_checked = 0.0
        self._renewed_at = -math.inf
        # Set by _on_read to what ends the session (ServerRestart); made by each session.
        self._ended_by: asyncio.Future[Exception]

    def stream_back_since(self, began: float) -> bool:
        """Whether the socket's stream is back, for a REST fallback round of its markets
        begun at `began` (time.monotonic()): heard since, or in a session whose
        subscription was sent within rest_fallback_after_s, unheard yet. A fallback answer
        then is dropped (the round ends): the stream may have published newer records
        already, and an answer taken after the subscription's snapshot frames left the
        exchange, published first, was followed by their older values (an Upbit or
        Bithumb book went back in time). A subscription unanswered for longer has the
        fallback resume."""
        return self.last_heard > began or (
            self.subscribed_at > 0 and time.monotonic() - self.subscribed_at < self.worker.runtime.rest_fallback_after_s)

    def seconds_since_heard(self) -> float:
        """Since anything (a frame, a pong) was last heard on the socket."""
        return time.monotonic() - self.last_heard

    def seconds_since_last_record(self) -> float:
        """Since the socket last delivered a ticker; infinite before its first one."""
        if self.last_ws_record == self._created:
            return math.inf
        return time.monotonic() - self.last_ws_record

    async def stream(self) -> None:
        runtime = self.worker.runtime
        delay = runtime.backoff_initial_s
        # Stagger the first connects within the exchange's connection-rate limit.
        await asyncio.sleep(self.index * self.worker.venue.connect_gap_s)
        while True:
            delivered = False
            try:
                delivered = await self._session()
                reason = "closed by peer"
            except ServerRestart as announced:
                # Not `delivered` by itself: a peer that announces a restart at once on
                # every session was reconnected to every second forever.
                delivered = self.last_ws_record > self._opened
                reason = f"restart announced: {announced}"
            except ConnectionClosed as closed:
                delivered = self.last_ws_record > self._opened
                if self._stalled:
                    reason = self._stalled
                else:
                    # The peer's close frame, or ours (1009 when a frame breaks max_frame_bytes).
                    close = closed.rcvd or closed.sent
                    reason = f"closed {close.code if close else 'abnormally'}"
                    if close and close.reason:
                        reason += f" ({close.reason})"
            except InvalidStatus as error:
                reason = f"handshake refused: HTTP {error.response.status_code}"
            except (OSError, InvalidHandshake, TimeoutError) as error:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            # A session that delivered records but ended sooner than the backoff before it
            # proves no healthy peer: one that sent a ticker and closed at once each time was
            # reconnected to every second, forever.
            if delivered and time.monotonic() - self._opened >= delay:
                delay = runtime.backoff_initial_s
            # The host is judged by the handshake alone: a quiet market is no reason to move.
            if self._handshake_done:
                self.worker.ws_hosts.succeeded()
            elif self.worker.ws_hosts.failed():
                delay = runtime.backoff_initial_s  # another host: its backoff starts over
            kind = _reason_key(reason)
            self.worker.stats.reconnects[kind] += 1
            wait = delay * random.uniform(0.5, 1.5)
            self.worker.throttled.warning("reconnects " + kind, "%s: %s; reconnecting in %.1f s",
                                          self.name, reason, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, runtime.backoff_max_s)

    async def _session(self) -> bool:
        worker = self.worker
        venue = worker.venue
        self._opened = time.monotonic()
        self._stalled = ""
        if self.books is not None and self.session:
            # The session before is closed: no frame comes on it any more (while it was
            # closing, its frames were still read, and checked).
            self.books.session_ended(self.session)
        self.sessions += 1
        self.session = f"{self.name}/{self.sessions}"
        self._ended_by = asyncio.get_running_loop().create_future()
        self.url = worker.ws_hosts.rebased(self._venue_url)
        self._handshake_done = False
        async with connect(
            self.url,
            compression=None,  # permessage-deflate costs ~2 µs a frame; no exchange needs it
            max_size=self._max_frame_bytes,
            ping_interval=self._protocol_ping_s,
            ping_timeout=self._protocol_ping_s,
            open_timeout=worker.runtime.rest_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            additional_headers=venue.headers,
            user_agent_header="coinstream/0.1",
            create_connection=functools.partial(  # type: ignore[arg-type]
                MessageConnection, self._on_read, self._on_control,
                worker.runtime.read_pause_s, worker.runtime.frames_per_read),
        ) as socket:
            try:
                self._handshake_done = True
                subscribe = (venue.subscribe_messages(self.markets) if self.books is None
                             else venue.book_subscribe_messages(self.markets, self.books.depth))
                self.subscribed_at = time.monotonic()
                for message in subscribe:
                    await socket.send(message)
                    if venue.subscribe_gap_s:
                        await asyncio.sleep(venue.subscribe_gap_s)
                worker.log.info("%s: connected to %s, %d markets", self.name, self.url, len(self.markets))
                guards = [asyncio.create_task(self._watchdog(socket, time.monotonic()))]
                if venue.app_ping() is not None:
                    guards.append(asyncio.create_task(self._app_ping(socket)))
                self.connected = True
                self._socket = socket
                try:
                    await self._until_closed(socket)
                finally:
                    self.connected = False
                    self._socket = None
                    for guard in guards:
                        guard.cancel()
            finally:
                self.subscribed_at = 0.0  # no snapshot comes on a closed session
                await _close(socket)
        return self.last_ws_record > self._opened

    def _on_read(self, frames: list[bytes], received_ns: int) -> None:
        """The data messages of one read from the socket, handed over by MessageConnection
        once the read is parsed, stamped with the time of the read: the clock once for all
        of them, and the delivery reports ready meanwhile. One call a read, not one a
        frame: a Python call costs ~400 instructions, an eighth of the worker's own work
        on a Binance ticker (bench.profile). Tickers go to Worker.on_frames a read at a
        time, a book's frames to the book channel one by one."""
        if frames:
            url = self.url
            published = 0
            if self.books is None:
                try:
                    published = self.worker.on_frames(frames, received_ns, url)
                except Exception as error:  # noqa: BLE001 - re-raised by _until_closed
                    self._end_with(error)
            else:
                on_frame, session = self.books.on_frame, self.session
                for frame in frames:
                    try:
                        published += on_frame(frame, received_ns, url, session)
                    except Exception as error:  # noqa: BLE001 - re-raised by _until_closed
                        self._end_with(error)
            now = time.monotonic()
            self.last_heard = now
            if published:
                self.last_ws_record = now
        self.worker.sink.serve_deliveries()

    def _end_with(self, error: Exception) -> None:
        """End the session with `error` (ServerRestart, or a bug), as a loop over recv() would."""
        if not self._ended_by.done():
            self._ended_by.set_result(error)

    def send_soon(self, messages: list[str]) -> None:
        """Send `messages` on the socket, if it is subscribed (a book's resubscribe); a
        socket that closes meanwhile subscribes everything again when it reconnects."""
        socket = self._socket
        if socket is not None:
            sending = asyncio.get_running_loop().create_task(_send_all(socket, messages))
            self._sending.add(sending)  # held: the loop keeps only a weak reference to a task
            sending.add_done_callback(self._sending.discard)

    def _on_control(self) -> None:
        """Every ping and pong of the socket: the peer is there."""
        self.last_heard = time.monotonic()

    async def _until_closed(self, socket: ClientConnection) -> None:
        """Wait while MessageConnection delivers the frames; raise how the session ends."""
        # No message ever reaches recv()'s queue: it returns only by raising ConnectionClosed.
        closed = asyncio.ensure_future(socket.recv())
        try:
            await asyncio.wait({closed, self._ended_by}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not closed.done():
                closed.cancel()
        if self._ended_by.done():
            raise self._ended_by.result()  # leaving `async with connect` closes the socket
        closed.result()

    async def _watchdog(self, socket: "MessageConnection", subscribed_at: float) -> None:
        """Probe the socket once it has been quiet for the probe time; close it once
        nothing at all has been heard for watchdog_s, counted from the subscribe at the
        earliest.

        The handshake is no frame heard: last_heard stays as it was, so the fallback goes
        on until the socket is heard. Before, each connect counted as hearing it: a peer
        that closed every session at once after its handshake, reconnected more often
        than rest_fallback_after_s, kept the fallback from ever polling.

        The probe time is half the shorter of watchdog_s and rest_fallback_after_s, so
        that an answering socket is never silent long enough for either: a quiet market
        costs a ping and its answer every few seconds, never a reconnect or a REST poll.
        """
        runtime = self.worker.runtime
        limit = runtime.watchdog_s
        probe_after = min(limit, runtime.rest_fallback_after_s) / 2
        probed = 0.0
        while True:
            # Asleep until its next deadline, counted from the last frame heard, and at most
            # probe_after: a frame heard meanwhile (a probe's pong) sets the next probe's
            # deadline, never sooner than probe_after from now, and moves the stall's later.
            # Not a fixed tick: with frames flowing it wakes once a probe_after, not every second.
            heard = max(self.last_heard, subscribed_at)
            now = time.monotonic()
            due = heard + probe_after if probed < heard else heard + limit
            await asyncio.sleep(max(min(due, now + probe_after) - now, 0.0) + DEADLINE_SLACK_S)
            now = time.monotonic()
            heard = max(self.last_heard, subscribed_at)
            if now - heard > limit:
                self._stalled = f"stalled: nothing heard for {limit:.0f} s"
                if socket.writes_held:
                    self._stalled += (f" (the peer reads nothing: {socket.transport.get_write_buffer_size()} "
                                      f"bytes of ours unsent, our reading paused)")
                # The peer may be gone without a FIN; don't wait for its close frame.
                socket.transport.abort()
                return
            if now - heard >= probe_after and probed < heard:
                probed = now  # one probe per silence: the next comes once this one is answered
                try:
                    # Bounded: a peer that reads nothing must not hold the watchdog up
                    # in websockets' wait for the write buffer to drain.
                    async with asyncio.timeout(probe_after):
                        await self._probe(socket)
                except TimeoutError:
                    pass
                except ConnectionClosed:
                    return

    async def _probe(self, socket: ClientConnection) -> None:
        """Ask the peer for an answer: an RFC 6455 ping, whose pong _on_control hears,
        or the exchange's application ping where it takes no protocol pings."""
        if self._protocol_ping_s:
            await socket.ping()
            return
        ping = self.worker.venue.app_ping()
        if ping is not None:
            await socket.send(ping)

    async def _app_ping(self, socket: ClientConnection) -> None:
        venue = self.worker.venue
        interval = self.worker.runtime.ping_interval_s or venue.app_ping_interval_s
        while True:
            await asyncio.sleep(interval)
            # Built anew for every ping: some carry the current time (Gate's spot.ping).
            ping = venue.app_ping()
            if ping is not None:
                await socket.send(ping)

    async def fallback(self) -> None:
        """Poll REST for this connection's markets while nothing is heard on its socket
        (down, or not answering); while it answers, refresh its quiet markets."""
        worker = self.worker
        runtime = worker.runtime
        polling = False
        await worker.snapshot_done.wait()
        while True:
            unheard_s = time.monotonic() - self.last_heard
            if unheard_s >= runtime.rest_fallback_after_s:
                if not polling:
                    worker.log.warning(
                        "%s: nothing heard for %.0f s (%s); polling REST every %.1f s", self.name, unheard_s,
                        "not answering" if self.connected else "down", runtime.rest_poll_interval_s,
                    )
                    polling = True
                if self.books is None:
                    await worker.rest_poll(self.markets, "fallback", fallback_of=self)
                else:
                    await self.books.rest_poll(self.markets, "book fallback", fallback_of=self)
                await asyncio.sleep(runtime.rest_poll_interval_s)
                continue
            if polling:
                worker.log.info("%s: socket answers again; REST polling stopped", self.name)
                polling = False
            refreshing = runtime.rest_refresh_s
            if refreshing and time.monotonic() - self._last_refresh >= runtime.rest_refresh_s:
                await self._refresh()
            elif refreshing and time.monotonic() >= self._silence_check_due():
                await self._refresh(silent=True)
            # Asleep until the fallback is due if nothing is heard meanwhile, the next
            # refresh, or the silence check; a frame heard meanwhile moves the first and the
            # last later, which the next pass finds.
            now = time.monotonic()
            due = self.last_heard + runtime.rest_fallback_after_s
            if refreshing:
                due = min(due, self._last_refresh + runtime.rest_refresh_s, self._silence_check_due())
            await asyncio.sleep(max(due - now, 0.0) + DEADLINE_SLACK_S)

    def _silence_check_due(self) -> float:
        """When (time.monotonic()) this socket's silence is to be checked against REST
        (_refresh(silent=True)); infinite when there is none to check.

        A socket that streamed in its session (published rest_fallback_after_s or more
        after it opened: not only the answer to its subscribe, which some exchanges send),
        answers its pings, and has published nothing for rest_fallback_after_s may have
        lost its subscription (dropped unannounced): its markets would otherwise wait for
        the next refresh, rest_refresh_s (300 s) on. Each silence is checked once. A
        subscription renewed for one (a session ended, books asked for again) is not
        renewed again for a silence within rest_refresh_s: an exchange whose REST and
        stream disagree costs a renewal every rest_refresh_s at most."""
        after_s = self.worker.runtime.rest_fallback_after_s
        if (not self.connected or self._silence_checked == self.last_ws_record
                or self.last_ws_record - self._opened < after_s):
            return math.inf
        return max(self.last_ws_record + after_s, self._renewed_at + self.worker.runtime.rest_refresh_s)

    async def _refresh(self, silent: bool = False) -> None:
        """The markets of an answering socket that published nothing for rest_refresh_s,
        from REST: a quiet market's rolling 24 h numbers move without a push, and a
        subscription the exchange dropped unannounced looks just as quiet. A book socket's
        quiet books are compared with REST's (BookChannel.refresh_quiet).

        A quiet market whose REST last price is not its last record's traded without a
        push (none within TRADE_PUSH_GRACE_S either): the socket's subscription is lost
        (dropped unannounced, or refused), and the session is ended, so that the
        reconnect subscribes every market again. Its 24 h numbers alone move without a
        trade, and are only published.

        `silent`: the whole socket has published nothing for rest_fallback_after_s
        (_silence_check_due). Of a ticker socket, the SILENCE_CHECK_MARKETS markets it
        heard from last, the likeliest to trade, are read from REST and judged alike; a
        REST ticker that differs from a market's last record, rest_fallback_after_s old
        or more, is published (on_rest_body's "silence"). Of a book socket, every book is
        compared with REST's (at most REFRESH_CALLS_PER_ROUND calls, as a refresh)."""
        worker = self.worker
        if silent:
            self._silence_checked = self.last_ws_record
            if self.books is not None:
                # Every book: one may have heard a message the top N ignored (no record) since.
                await self.books.refresh_quiet(self, quiet_s=0.0)
                if self.books.found_stale:
                    self._renewed_at = time.monotonic()
                return
            latest = worker.latest
            quiet = sorted(self.markets, reverse=True, key=lambda market: latest[market.symbol].received_ns
                           if market.symbol in latest else 0)[:SILENCE_CHECK_MARKETS]
        else:
            self._last_refresh = time.monotonic()
            if self.books is not None:
                await self.books.refresh_quiet(self)
                return
            quiet = worker.quiet_markets(self.markets)
        if not quiet:
            return
        worker.stats.refreshes += 1
        latest = worker.latest
        before = {market.symbol: latest.get(market.symbol) for market in quiet}
        asked_ns = time.time_ns()
        await worker.rest_poll(quiet, "silence" if silent else "refresh")
        refreshed_last = worker.refreshed_last
        moved = [symbol for symbol, last in before.items()
                 if last is not None and (shown := refreshed_last.get(symbol)) is not None and shown[1] >= asked_ns
                 and Decimal(shown[0]) != Decimal(last.last)]
        socket = self._socket
        if not moved or socket is None:
            return
        # A trade just before REST answered may be on its way: its push keeps the socket.
        await asyncio.sleep(TRADE_PUSH_GRACE_S)
        traded = sorted(symbol for symbol in moved
                        if (now := latest[symbol]) is before[symbol] or now.source == "rest")
        if traded and socket is self._socket:  # not a session begun meanwhile, subscribed anew
            what = (f"{len(traded)} market(s) traded without a push since the socket fell silent" if silent
                    else f"{len(traded)} quiet market(s) traded without a push")
            self._stalled = f"subscription lost: {what} ({', '.join(traded[:5])})"
            self._renewed_at = time.monotonic()
            socket.transport.abort()


class MessageConnection(ClientConnection):
    """websockets' client connection, handing the data messages of each read from the
    socket to `on_read` in one list once the read is parsed (an empty one after a read
    that completed none), with the wall-clock time (ns) of the read, and calling
    `on_control` for each ping and pong (signs of life a quiet socket gives; a close
    frame is none). One clock reading and one handler call a read, not one a frame: the frames of
    one read arrived together.

    ClientConnection queues every message for recv(), and a reader task wakes up to take
    it: a future, a task step and flow-control bookkeeping per message (6.3 -> 4.5 µs a
    frame flat out, 57 -> 42 µs at 1,000 frames/s, measured on this stack). Here the
    messages are handled inside data_received, in arrival order; the handshake, ping, pong
    and close frames still take websockets' own path (pings and pongs after on_control,
    which costs a data frame nothing). A handler that raises would break the connection's
    data_received: on_read must not raise. With `read_pause_s` the socket may rest after
    each read, so that about `frames_per_read` frames come in one read (read_pause).
    """

    def __init__(self, on_read: Callable[[list[bytes], int], None], on_control: Callable[[], None],
                 read_pause_s: float, frames_per_read: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_read = on_read
        self._on_control = on_control
        self._read_pause_s = read_pause_s
        self._frames_per_read = frames_per_read
        self._fragments: list[bytes] = []
        self.writes_held = False  # the peer has left our writes unread (pause_writing)
        self._read: list[bytes] = []  # the data messages of the read being parsed
        # The feed's rate, judged over RATE_WINDOW_S, sets the pause after each read.
        self._pause_s = read_pause_s
        self._window_start = 0.0
        self._frames_in_window = 0

    def data_received(self, data: bytes) -> None:
        received_ns = time.time_ns()
        super().data_received(data)
        read, self._read = self._read, []
        self._frames_in_window += len(read)
        self._on_read(read, received_ns)
        if self._read_pause_s:
            now = self.loop.time()
            if now - self._window_start >= RATE_WINDOW_S:
                self._pause_s = read_pause(now - self._window_start, self._frames_in_window,
                                           self._read_pause_s, self._frames_per_read)
                self._window_start = now
                self._frames_in_window = 0
            if pause := self._pause_s:
                # Frames arriving meanwhile wait in the kernel's buffer and come in one read.
                # websockets pauses reading only when its queue of received messages fills,
                # and data messages never enter that queue here.
                self.transport.pause_reading()
                self.loop.call_later(pause, self._resume_reading)

    def _resume_reading(self) -> None:
        if not self.transport.is_closing() and not self.writes_held:
            self.transport.resume_reading()

    # websockets answers every ping with a pong, written whether or not the peer reads: a
    # peer that floods pings and reads nothing grew the write buffer without bound (2 MB
    # a second at 10,000 pings a second). While the buffer is over its high-water mark,
    # the socket is left unread: nothing more is answered, and nothing is heard, so the
    # watchdog ends the session after watchdog_s.
    def pause_writing(self) -> None:
        super().pause_writing()
        self.writes_held = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.writes_held = False
        self._resume_reading()

    def process_event(self, event: Event) -> None:
        if not isinstance(event, Frame) or event.opcode not in DATA_OPCODES:
            # The peer's close frame is no sign of life: a peer that closes every session
            # at once must not stop the fallback.
            if isinstance(event, Frame) and event.opcode is not Opcode.CLOSE:
                self._on_control()
            super().process_event(event)
            return
        if event.fin and not self._fragments:
            self._read.append(event.data)  # type: ignore[arg-type]
            return
        # A fragmented message; websockets' parser bounds its whole size by max_size.
        self._fragments.append(event.data)  # type: ignore[arg-type]
        if event.fin:
            self._read.append(b"".join(self._fragments))
            self._fragments = []


# How long a session's end waits for the peer's close frame (websockets' close_timeout,
# and all _close gives it).
CLOSE_TIMEOUT_S = 2
# libuv's timers count whole milliseconds: a shorter pause is not worth a timer.
MIN_READ_PAUSE_S = 0.001
# Added to a sleep until a deadline (the watchdog's, the fallback's): a libuv timer may
# fire up to a millisecond before it, and the loop would pass once more for nothing.
DEADLINE_SLACK_S = 0.002
# After a quiet-market refresh finds a trade its socket did not push, how long the push
# is waited for before the subscription is judged lost: Binance's @ticker pushes once a
# second, so a trade just before REST answered may not have been pushed yet.
TRADE_PUSH_GRACE_S = 2.0
# A ticker socket silent for rest_fallback_after_s has this many of its markets read from
# REST (those it heard from last): one that traded meanwhile proves the subscription lost,
# and Coinbase's REST takes a call per market.
SILENCE_CHECK_MARKETS = 10
# The rate is judged over this long, not read by read: a sender writes in bursts, and
# a short read just after a long one would look like a slow feed.
RATE_WINDOW_S = 0.1


def read_pause(seconds: float, frames: int, max_pause_s: float, frames_per_read: int) -> float:
    """How long to leave a socket unread after each read, for a feed that brought
    `frames` frames in the last `seconds`: the time `frames_per_read` frames take to
    arrive at that rate, at most max_pause_s; 0 when that is under MIN_READ_PAUSE_S.

    A slow feed is read every max_pause_s; a fast one is not paused at all, so the pause
    never caps a fast connection: even held back by pauses, it shows a rate high enough
    that the next window reads it at once.
    """
    pause = min(max_pause_s, seconds * frames_per_read / max(frames, 1))
    return pause if pause >= MIN_READ_PAUSE_S else 0.0


# Ticker's number fields, in order: what a refresh compares (Worker._is_news).
_NUMBERS = slice(Ticker.__struct_fields__.index("last"), Ticker.__struct_fields__.index("quote_volume_24h") + 1)


def _numbers(ticker: Ticker) -> tuple[str | None, ...]:
    return msgspec.structs.astuple(ticker)[_NUMBERS]


async def _close(socket: ClientConnection) -> None:
    """Close the socket within CLOSE_TIMEOUT_S, else abort it. websockets' close() first
    waits, unbounded, for our unsent bytes to drain, and its close_timeout starts only
    after that: a peer that reads nothing held a session's end, and a stop, until
    supervisord's SIGKILL (librdkafka's queue lost with it)."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await socket.close()
    except TimeoutError:
        socket.transport.abort()


async def _send_all(socket: ClientConnection, messages: list[str]) -> None:
    try:
        for message in messages:
            await socket.send(message)
    except ConnectionClosed:
        pass


def channels_of(exchange: ExchangeConfig) -> list[str]:
    """What the worker collects: the configured channels; unset, the ticker and the book."""
    return list(exchange.channels) if exchange.channels is not None else ["ticker", "book"]


def _reason_key(reason: str) -> str:
    """A short, bounded label for the reconnect counters."""
    return reason.split(":", 1)[0].split(" (", 1)[0].replace(" ", "_")
