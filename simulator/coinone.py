"""Coinone as the simulator plays it: a CONNECTED greeting on open, one SUBSCRIBE per
pair acked with SUBSCRIBED (an unknown pair is acked and then answered by the nameless
160012 error), 160010/160011 errors that leave the socket open, JSON PING -> PONG, the
current ticker repeated on every subscribe, string-encoded numbers, ticker ids that grow
on every trade (REST polls see trades too: the market trades whether or not the socket
is up), at most 20 sockets (the 21st is closed with code 4290), and the
/public/v2 REST endpoints with HTTP 200 error bodies and an HTML page for unknown paths.

The TICKER and ORDERBOOK channels in DEFAULT format carry data here; other channels and
the SHORT format are acked and stay silent. ORDERBOOK (simulator/books.py keeps the
books): the whole book of a pair in every frame, 16 levels a side, asks worst first,
`id` shaped as ms + a 3-digit counter and growing with the book, the current book
again (same id) on a repeated subscribe; REST /public/v2/orderbook/{quote}/{target}
with size 5/10/15/16 (else error 107 under HTTP 200), the same ids. A client silent past the idle timeout (30 min
after the last request on the real server), or one that has not subscribed 60 s after
connecting, is dropped without a close frame (1006), as probed, which is the core's
default close_idle.
"""

import json
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.books import BookFeed, BookUpdate, Level
from simulator.core import ExchangeSim, Quote

CHANNELS = ("ORDERBOOK", "TICKER", "TRADE", "CHART")
FORMATS = ("DEFAULT", "SHORT")
MAX_CONNECTIONS_PER_IP = 20
TOO_MANY_CONNECTIONS = 4290
# Unknown REST paths answer 200 with the documentation site's HTML.
NOT_FOUND_PAGE = "<!DOCTYPE html><html><head><title>Coinone API</title></head><body></body></html>"
COMPACT = (",", ":")
# Levels a side of every ORDERBOOK frame; the REST book's `size` values.
BOOK_LEVELS = 16
BOOK_SIZES = (5, 10, 15, 16)


def text(value: Decimal) -> str:
    """Plain decimal text without trailing zeros, as Coinone prints numbers: 116380000, 0.1961."""
    return format(value.normalize(), "f")


def _levels(levels: Iterable[Level]) -> list[dict[str, str]]:
    """Levels as Coinone prints them: strings without trailing zeros."""
    return [{"price": text(Decimal(price)), "qty": text(Decimal(size))} for price, size in levels]


def rest_price(value: Decimal) -> str:
    """REST prints whole prices with a ".0" suffix: 50543000.0."""
    printed = text(value)
    return printed if "." in printed else printed + ".0"


@dataclass(frozen=True)
class TickerState:
    first: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    target_volume: Decimal
    quote_volume: Decimal
    ask: tuple[Decimal, Decimal] | None  # (price, size) at the best level; None: that side is empty
    bid: tuple[Decimal, Decimal] | None


class CoinoneSim(ExchangeSim):
    name = "coinone"
    repeatable_frames = False  # the worker drops a ticker id it has already published
    default_quote = "KRW"
    ws_paths = ("/",)
    client_idle_timeout_s = 1800.0
    # A socket that never subscribed was closed at ~60 s on the wire (1006).
    subscribe_deadline_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # market id -> (ticker id, timestamp ms) of its latest trade.
        self.latest: dict[str, tuple[int, int]] = {}
        self.subscriptions: weakref.WeakKeyDictionary[ServerConnection, list[str]] = weakref.WeakKeyDictionary()
        self.book_feed = BookFeed(self)

    def market_id(self, base: str, quote: str) -> str:
        return f"{quote}/{base}"

    async def _connection(self, socket: ServerConnection) -> None:
        """The core's connection handler, behind the per-IP cap and the CONNECTED greeting."""
        if len(self.sockets) >= MAX_CONNECTIONS_PER_IP:
            await socket.close(TOO_MANY_CONNECTIONS, "too many connections")
            return
        greeting = {"response_type": "CONNECTED", "data": {"session_id": str(uuid.uuid4())}}
        try:
            await socket.send(json.dumps(greeting, separators=COMPACT))
        except ConnectionClosed:
            return
        await super()._connection(socket)

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return await self._error(socket, 160010, "Invalid Request")
        kind = request.get("request_type")
        if kind == "PING":
            await socket.send('{"response_type":"PONG"}')
            return None
        for key, allowed, value in (("request_type", ("SUBSCRIBE", "UNSUBSCRIBE"), kind),
                                    ("channel", CHANNELS, request.get("channel")),
                                    ("format", FORMATS, request.get("format", "DEFAULT"))):
            if value not in allowed:
                return await self._error(socket, 160011, "Invalid Type", key)
        topic = request.get("topic")
        if not isinstance(topic, dict):
            return await self._error(socket, 160010, "Invalid Request")
        quote_currency, target_currency = str(topic.get("quote_currency")), str(topic.get("target_currency"))
        # SUBSCRIBED / UNSUBSCRIBED echo the topic as sent, whatever its case, before it is checked.
        await socket.send(json.dumps({"response_type": f"{kind}D", "channel": request["channel"],
                                      "data": {"quote_currency": quote_currency,
                                               "target_currency": target_currency}}, separators=COMPACT))
        market_id = self.market_id(target_currency.upper(), quote_currency.upper())
        if market_id not in self.quotes:
            return await self._error(socket, 160012, "Invalid Topic")
        if request.get("format", "DEFAULT") != "DEFAULT":
            return None
        if request["channel"] == "ORDERBOOK":
            # Queued after the ack, as on the wire; a repeated subscribe repeats the book, same id.
            if kind == "UNSUBSCRIBE":
                self.book_feed.unsubscribe(socket, [market_id])
            else:
                self.book_feed.subscribe(socket, [market_id])
            return None
        if request["channel"] != "TICKER":
            return None
        subscribed = self.subscriptions.setdefault(socket, [])
        if kind == "UNSUBSCRIBE":
            if market_id in subscribed:
                subscribed.remove(market_id)
            return subscribed
        if market_id not in subscribed:
            subscribed.append(market_id)
        # The current ticker once, on every subscribe (a repeated one included).
        ticker_id, timestamp = self.latest.get(market_id) or self._trade(market_id, int(time.time() * 1000))
        await self._send(socket, self._frame(market_id, self.quotes[market_id], ticker_id, timestamp))
        return subscribed

    async def _error(self, socket: ServerConnection, code: int, message: str, field: str | None = None) -> None:
        error: dict[str, Any] = {"response_type": "ERROR", "error_code": code, "message": message}
        if field is not None:
            error["field"] = field
        await socket.send(json.dumps(error, separators=COMPACT))
        return None

    def _trade(self, market_id: str, now_ms: int) -> tuple[int, int]:
        """A new trade: the next ticker id (ms timestamp + 3-digit counter, always growing)."""
        previous_id, _ = self.latest.get(market_id, (0, 0))
        latest = (max(now_ms * 1000 + 1, previous_id + 1), now_ms)
        self.latest[market_id] = latest
        return latest

    def _state(self, quote: Quote, ticker_id: int) -> TickerState:
        last = quote.price()
        volume = quote.volume()
        # Now and then one side of the book is empty; decided by the id, so that the
        # repeat of a ticker on subscribe is the same ticker.
        return TickerState(
            first=quote.price(-40), high=quote.price(30), low=quote.price(-60), last=last,
            target_volume=volume, quote_volume=(volume * last).quantize(Decimal("0.0001")),
            ask=None if ticker_id % 23 == 0 else (quote.price(1), Decimal(quote.ticks % 10**6 + 1).scaleb(-8)),
            bid=None if ticker_id % 29 == 0 else (last, Decimal(quote.volume_ticks % 10**7 + 1).scaleb(-8)),
        )

    def _frame(self, market_id: str, quote: Quote, ticker_id: int, timestamp: int) -> str:
        quote_currency, target_currency = market_id.split("/")
        state = self._state(quote, ticker_id)
        ask_price, ask_qty = (text(state.ask[0]), text(state.ask[1])) if state.ask else (None, None)
        bid_price, bid_qty = (text(state.bid[0]), text(state.bid[1])) if state.bid else (None, None)
        data = {
            "quote_currency": quote_currency, "target_currency": target_currency, "timestamp": timestamp,
            "quote_volume": text(state.quote_volume), "target_volume": text(state.target_volume),
            "high": text(state.high), "low": text(state.low), "first": text(state.first), "last": text(state.last),
            "volume_power": "100", "ask_best_price": ask_price, "ask_best_qty": ask_qty,
            "bid_best_price": bid_price, "bid_best_qty": bid_qty, "id": str(ticker_id),
            "yesterday_high": text(state.high), "yesterday_low": text(state.low),
            "yesterday_first": text(state.first), "yesterday_last": text(state.first),
            "yesterday_quote_volume": text(state.quote_volume), "yesterday_target_volume": text(state.target_volume),
        }
        return json.dumps({"response_type": "DATA", "channel": "TICKER", "data": data}, separators=COMPACT)

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        ticker_id, timestamp = self._trade(market_id, now_ms)
        return self._frame(market_id, quote, ticker_id, timestamp)

    def book_first_update_id(self) -> int:
        # Coinone's ids are ms + a 3-digit counter; the true book's grow 1-3 a change from there.
        return int(time.time() * 1000) * 1000

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self.book_update_frame(socket, market_id, update)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        """An ORDERBOOK frame: 16 levels a side, asks worst first, bids best first, as on the
        wire; `timestamp` the book's last change (a quiet book's first frame's is old)."""
        quote_currency, target_currency = market_id.split("/")
        bids, asks = update.view(BOOK_LEVELS)
        data = {"quote_currency": quote_currency, "target_currency": target_currency, "timestamp": update.ts_ms,
                "id": str(update.update_id), "asks": _levels(reversed(asks)), "bids": _levels(bids)}
        return json.dumps({"response_type": "DATA", "channel": "ORDERBOOK", "data": data}, separators=COMPACT)

    def _rest_book(self, market_id: str, size: int) -> dict[str, Any]:
        """/public/v2/orderbook/{quote}/{target}: both sides best first, the socket's id."""
        quote_currency, target_currency = market_id.split("/")
        update = self.book_feed.rest_view(market_id)
        bids, asks = update.view(size)
        return {"result": "success", "error_code": "0", "timestamp": update.ts_ms, "id": str(update.update_id),
                "quote_currency": quote_currency, "target_currency": target_currency, "order_book_unit": "0.0",
                "bids": _levels(bids), "asks": _levels(asks)}

    def wrong_shape_frame(self) -> str:
        return '{"response_type":"DATA","channel":"TICKER","data":{"quote_currency":"KRW","last":["1"]}}'

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["public", "v2", "orderbook"]:
            return 200, self._rest_book_answer(f"{parts[3].upper()}/{parts[4].upper()}", query)
        if len(parts) != 4 or parts[:2] != ["public", "v2"]:
            return 200, NOT_FOUND_PAGE
        endpoint, quote_currency = parts[2], parts[3].upper()
        listed = [(market_id, quote) for market_id, quote in self.quotes.items() if quote.quote == quote_currency]
        now_ms = int(time.time() * 1000)
        if endpoint == "markets":
            rows = [self._market_row(quote) for _, quote in listed]
        elif endpoint == "ticker_new":
            rows = [self._rest_ticker(market_id, quote, now_ms) for market_id, quote in listed]
        else:
            return 200, NOT_FOUND_PAGE
        # A quote nobody trades in (USDT) answers success with an empty list.
        return 200, {"result": "success", "error_code": "0", "server_time": now_ms,
                     "tickers" if endpoint == "ticker_new" else "markets": rows}

    def _rest_book_answer(self, market_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        size = query.get("size", ["15"])[0]
        if size not in map(str, BOOK_SIZES):
            return {"result": "error", "error_code": "107", "error_msg": "Parameter value is wrong"}
        if market_id not in self.quotes:
            return {"result": "error", "error_code": "108", "error_msg": "Unknown CryptoCurrency"}
        return self._rest_book(market_id, int(size))

    def _market_row(self, quote: Quote) -> dict[str, Any]:
        tick = rest_price(Decimal(1).scaleb(-quote.scale))
        return {
            "quote_currency": quote.quote, "target_currency": quote.base, "price_unit": tick,
            "qty_unit": "0.00000001", "max_order_amount": "1000000000.0", "max_price": "10000000000.0",
            "max_qty": "100000000.0", "min_order_amount": "5000.0", "min_price": tick, "min_qty": "0.00000001",
            "order_book_units": [tick], "maintenance_status": 0, "trade_status": 1,
            "order_types": ["limit", "market", "stop_limit"],
        }

    def _rest_ticker(self, market_id: str, quote: Quote, now_ms: int) -> dict[str, Any]:
        quote.step(self.rng)
        ticker_id, timestamp = self._trade(market_id, now_ms)
        state = self._state(quote, ticker_id)

        def best(level: tuple[Decimal, Decimal] | None) -> list[dict[str, str]]:
            return [] if level is None else [{"price": rest_price(level[0]), "qty": text(level[1])}]

        return {
            "quote_currency": quote.quote.lower(), "target_currency": quote.base.lower(), "timestamp": timestamp,
            "high": rest_price(state.high), "low": rest_price(state.low), "first": rest_price(state.first),
            "last": rest_price(state.last), "quote_volume": text(state.quote_volume),
            "target_volume": text(state.target_volume), "best_asks": best(state.ask), "best_bids": best(state.bid),
            "id": str(ticker_id),
        }
