"""Binance Spot as the simulator plays it: both endpoints, /stream (combined: each event
in a {"stream","data"} envelope) and /ws (raw: the bare event), each subscribed with
SUBSCRIBE messages or in the URL (/stream?streams=btcusdt@ticker/ethusdt@ticker,
/ws/btcusdt@ticker), SUBSCRIBE acks, server pings every 20 s (a client that does not
pong within a minute is closed), string-encoded numbers, now and then an error in the
bare {"code","msg"} form the docs print, and /api/v3 REST.

Order books (simulator/books.py keeps the true books): the diff stream
`<symbol>@depth@100ms` (depthUpdate events with U and u, no snapshot on subscribe; prices
and quantities with 8 decimals, "0.00000000" deletes); the partial-depth stream
`<symbol>@depth<5|10|20>@100ms`, each push the top L of the book after an update,
{"lastUpdateId","bids","asks"} with the update's last id and nothing else (the symbol only
in the combined envelope's stream name), the first push at once on subscribe; and GET
/api/v3/depth?symbol=&limit= with its lastUpdateId (book_stale serves an older snapshot).
A socket gets a market's book in the form it subscribed last. The book faults on a
partial-depth stream: book_gap drops a push, book_repeat sends one twice, book_reorder
sends one late (the book as it was, its older id), book_crossed a crossed top; book_checksum
does not apply (Binance sends none)."""

import json
import re
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote, fixed

COMBINED = "combined"
BOOK_STREAM = "@depth@100ms"
PARTIAL_STREAM = re.compile(r"([0-9a-z]+)@depth(5|10|20)@100ms")
# The docs' example of an error answer, in their bare form.
ERROR_FORM = '{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"}'


class BinanceSim(ExchangeSim):
    name = "binance"
    default_quote = "USDT"
    ws_paths = ("/stream", "/ws")
    server_ping_interval_s = 20.0
    edge_kinds = ("error_form",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trade_id = 5_231_695_487
        self.book_feed = BookFeed(self)

    def market_id(self, base: str, quote: str) -> str:
        return base + quote

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            request = json.loads(message)
            method, params, request_id = request["method"], request.get("params", []), request["id"]
        except (ValueError, KeyError, TypeError):
            await socket.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return None
        if method != "SUBSCRIBE":
            await socket.send(json.dumps({"error": {"code": 1, "msg": f"Unknown method {method}"}, "id": request_id}))
            return None
        await socket.send(json.dumps({"result": None, "id": request_id}))
        books = [stream.removesuffix(BOOK_STREAM).upper() for stream in params
                 if isinstance(stream, str) and stream.endswith(BOOK_STREAM) and stream == stream.lower()]
        partial: dict[str, int] = getattr(socket, "binance_partial_depths", {})
        for market_id in books:
            partial.pop(market_id, None)
        for stream in params:
            named = PARTIAL_STREAM.fullmatch(stream) if isinstance(stream, str) else None
            if named:
                partial[named.group(1).upper()] = int(named.group(2))
                books.append(named.group(1).upper())
        socket.binance_partial_depths = partial  # type: ignore[attr-defined]
        if books:
            self.book_feed.subscribe(socket, books)
        return self._subscribe(socket, params)

    def _subscribe(self, socket: ServerConnection, streams: list[str]) -> list[str]:
        """Add the streams to the socket's subscription; its market ids."""
        subscribed: list[str] = getattr(socket, "binance_streams", [])
        for stream in streams:
            market_id = stream.split("@", 1)[0].upper()
            # Binance accepts unknown or upper-case stream names silently; they never send data.
            if (stream.endswith("@ticker") and stream == stream.lower() and market_id in self.quotes
                    and market_id not in subscribed):
                subscribed.append(market_id)
        socket.binance_streams = subscribed  # type: ignore[attr-defined]
        return subscribed

    def accepts_ws_path(self, path: str) -> bool:
        return path in self.ws_paths or path.startswith("/ws/")

    def url_subscription(self, socket: ServerConnection) -> list[str]:
        parts = urlsplit(socket.request.path if socket.request else "")
        if parts.path == "/stream":
            named = parse_qs(parts.query).get("streams", [""])[0]
        else:
            named = parts.path.removeprefix("/ws").strip("/")
        return self._subscribe(socket, [stream for stream in named.split("/") if stream])

    def frame_form(self, path: str) -> str:
        return COMBINED if urlsplit(path).path == "/stream" else "raw"

    def in_form(self, form: str, market_id: str, frame: str) -> str:
        if form == COMBINED:
            return f'{{"stream":"{market_id.lower()}@ticker","data":{frame}}}'
        return frame

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        return ERROR_FORM  # error_form: an answer, on either endpoint without an envelope

    def _event(self, market_id: str, quote: Quote, now_ms: int) -> dict[str, Any]:
        self.trade_id += 1
        last = quote.price()
        return {
            "e": "24hrTicker", "E": now_ms, "s": market_id,
            "p": fixed(last - quote.price(-40)), "P": "0.019", "w": fixed(quote.price(-5)),
            "x": fixed(quote.price(-40)), "c": fixed(last), "Q": "0.00832000",
            "b": fixed(quote.price(-1)), "B": "0.20337000",
            "a": fixed(last), "A": "12.85848000",
            "o": fixed(quote.price(-40)), "h": fixed(quote.price(30)), "l": fixed(quote.price(-60)),
            "v": fixed(quote.volume()), "q": fixed(quote.volume() * last),
            "O": now_ms - 86_400_000, "C": now_ms, "F": self.trade_id - 1_000_000, "L": self.trade_id, "n": 1_000_001,
        }

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return json.dumps(self._event(market_id, quote, now_ms), separators=(",", ":"))

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str | None:
        if market_id in getattr(socket, "binance_partial_depths", {}):
            return self.book_update_frame(socket, market_id, update)  # the first push
        return None  # the diff stream sends changes only: the snapshot is REST's

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        levels = getattr(socket, "binance_partial_depths", {}).get(market_id)
        if levels is not None:
            return self.partial_depth_frame(socket, market_id, update, levels)
        event = json.dumps({
            "e": "depthUpdate", "E": update.ts_ms, "s": market_id, "U": update.first_id, "u": update.update_id,
            "b": _wire((price, size) for side, price, size in update.changes if side == "bid"),
            "a": _wire((price, size) for side, price, size in update.changes if side == "ask"),
        }, separators=(",", ":"))
        if self.frame_form(socket.request.path if socket.request else "") == COMBINED:
            return f'{{"stream":"{market_id.lower()}{BOOK_STREAM}","data":{event}}}'
        return event

    def partial_depth_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate, levels: int) -> str:
        """A `@depth<levels>@100ms` push: the top `levels` after `update`, at its last id."""
        bids, asks = update.view(levels)
        data = json.dumps({
            "lastUpdateId": update.update_id,
            "bids": _wire(bids), "asks": _wire(asks),
        }, separators=(",", ":"))
        if self.frame_form(socket.request.path if socket.request else "") == COMBINED:
            return f'{{"stream":"{market_id.lower()}@depth{levels}@100ms","data":{data}}}'
        return data

    def bulk_book_parts(self, socket: ServerConnection,
                        market_id: str) -> Callable[[BookUpdate], tuple[str, str]] | None:
        # Partial-depth subscriptions only: on the diff stream each U must follow the last u.
        levels = getattr(socket, "binance_partial_depths", {}).get(market_id)
        if levels is None:
            return None

        def parts(update: BookUpdate) -> tuple[str, str]:
            head, _, tail = self.partial_depth_frame(socket, market_id, update, levels).partition(
                f'"lastUpdateId":{update.update_id},')
            return head + '"lastUpdateId":', "," + tail
        return parts

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/v3/depth":
            symbol = query.get("symbol", [""])[0]
            if symbol not in self.quotes:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            update = self.book_feed.rest_view(symbol)
            bids, asks = update.view(int(query.get("limit", ["100"])[0]))
            return 200, {"lastUpdateId": update.update_id, "bids": _wire(bids), "asks": _wire(asks)}
        if path == "/api/v3/exchangeInfo":
            return 200, {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
                         "symbols": [{"symbol": market_id, "status": "TRADING", "baseAsset": quote.base,
                                      "quoteAsset": quote.quote, "filters": []}
                                     for market_id, quote in self.quotes.items()]}
        if path == "/api/v3/ticker/24hr":
            symbols = json.loads(query["symbols"][0]) if "symbols" in query else list(self.quotes)
            if any(symbol not in self.quotes for symbol in symbols):
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, [self._rest_ticker(symbol) for symbol in symbols]
        return 404, {"code": -1, "msg": "Not found"}

    def _rest_ticker(self, market_id: str) -> dict[str, Any]:
        event = self._event(market_id, self.quotes[market_id], int(time.time() * 1000))
        names = {"p": "priceChange", "P": "priceChangePercent", "w": "weightedAvgPrice", "x": "prevClosePrice",
                 "c": "lastPrice", "Q": "lastQty", "b": "bidPrice", "B": "bidQty", "a": "askPrice", "A": "askQty",
                 "o": "openPrice", "h": "highPrice", "l": "lowPrice", "v": "volume", "q": "quoteVolume",
                 "O": "openTime", "C": "closeTime", "F": "firstId", "L": "lastId", "n": "count"}
        return {"symbol": market_id, **{long: event[short] for short, long in names.items()}}


def _wire(levels: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Levels as Binance writes them: price and quantity with 8 decimals."""
    return [[fixed(Decimal(price)), fixed(Decimal(size))] for price, size in levels]
