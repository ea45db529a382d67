"""Kraken Spot WebSocket v2 as the simulator plays it: a `status` frame on connect, one
ack per symbol and then one snapshot per symbol, heartbeats in each second without
tickers, the JSON ping, per-symbol errors for pairs it does not list (XBT/USD among
them), tickers whose numbers are JSON numbers at the pair's precision, and the
/0/public REST endpoints with Kraken's legacy pair keys (XXBTZUSD).

Error texts seen on the real socket: "Currency pair not supported <pair>" and
"Unsupported field: 'params' for the given msg type: ping", "Unsupported event". The
answer to a request that is not JSON or lacks a method is not documented: this mode
sends "EGeneral:Invalid arguments" in the same envelope.

Order books: the `book` channel on the same socket, subscribed with a `depth` of 10, 25,
100, 500 or 1000 (any other is refused in the ack, "Subscription depth not supported",
naming no symbol, as on the wire); one ack a symbol, a snapshot, then updates carrying
the changes within the depth and the levels that move up into it, no delete for a level
pushed out, and the CRC32 checksum of the top 10 of the depth-truncated book, computed
on the texts sent (prices at the pair's decimals, qty at 8: JSON numbers with trailing
zeros). `unsubscribe` ends a symbol's book. Subscribing a book twice, or unsubscribing
one never subscribed, is answered with an error naming the symbol ("Already
subscribed", "Subscription Not Found": texts not confirmed on the wire). REST
/0/public/Depth?pair=K&count=N (N at most 500, prices padded to 5 decimals). Heartbeats
go to book sockets too. simulator/books.py keeps the books.
"""

import asyncio
import json
import time
import zlib
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.books import BookFeed, BookUpdate, Level
from simulator.core import ExchangeSim, Quote, _SimConnection, fixed

# REST asset codes of Kraken's legacy assets; every other asset's code is its name.
LEGACY_CODES = {"BTC": "XXBT", "ETH": "XETH", "XRP": "XXRP", "DOGE": "XXDG", "USD": "ZUSD", "EUR": "ZEUR"}
# v1 names (AssetPairs wsname and altname) that differ from v2.
V1_NAMES = {"BTC": "XBT", "DOGE": "XDG"}
HEARTBEAT = '{"channel":"heartbeat"}'
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
CHECKSUM_LEVELS = 10
REST_PRICE_DECIMALS = 5  # REST Depth pads prices (105944.30000) where the socket writes 105944.3
REST_BOOK_COUNT = 500


def _book_checksum(bids: list[Level], asks: list[Level]) -> int:
    """Kraken's v2 book checksum, as its guide states it, of the texts a push carries: for
    the top 10 asks, then the top 10 bids, the price and the qty, each without its '.'
    and its leading zeros; CRC32 of the whole, unsigned."""
    text = "".join(price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
                   for price, qty in (*asks[:CHECKSUM_LEVELS], *bids[:CHECKSUM_LEVELS]))
    return zlib.crc32(text.encode())


def _rfc3339(now_ns: int) -> str:
    seconds, nanos = divmod(now_ns, 10**9)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"


class KrakenSim(ExchangeSim):
    name = "kraken"
    default_quote = "USD"
    ws_paths = ("/v2",)
    edge_kinds = ("string_numbers",)
    # Kraken drops a connection without traffic for about a minute [unverified]; the
    # heartbeats that start with the first subscription count, so only a client that
    # never subscribes, never pings and is sent nothing is dropped.
    client_idle_timeout_s = 60.0
    client_pings_count = True
    server_pushes_count = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscribed: dict[ServerConnection, list[str]] = {}
        self._book_depths: dict[ServerConnection, dict[str, int]] = {}  # a socket's books: symbol -> depth
        self.book_feed = BookFeed(self)
        self.rest_keys = {symbol: self._rest_key(quote) for symbol, quote in self.quotes.items()}
        # The names a REST `pair` parameter accepts: the key and the altname.
        self.rest_names = {name: symbol for symbol, quote in self.quotes.items()
                           for name in (self.rest_keys[symbol], self._altname(quote))}

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}/{quote}"

    @staticmethod
    def _altname(quote: Quote) -> str:
        return V1_NAMES.get(quote.base, quote.base) + V1_NAMES.get(quote.quote, quote.quote)

    def _rest_key(self, quote: Quote) -> str:
        if quote.base in LEGACY_CODES and quote.quote in LEGACY_CODES:
            return LEGACY_CODES[quote.base] + LEGACY_CODES[quote.quote]
        return self._altname(quote)

    # WebSocket. ---------------------------------------------------------------------

    async def _connection(self, socket: ServerConnection) -> None:
        status = {"channel": "status", "type": "update", "data": [{
            "version": "2.0.10", "system": "online", "api_version": "v2",
            "connection_id": self.rng.getrandbits(64),  # beyond 2**53, as on the wire
        }]}
        heartbeats = asyncio.create_task(self._heartbeats(socket))
        try:
            await socket.send(json.dumps(status, separators=(",", ":")))
            await super()._connection(socket)
        except ConnectionClosed:
            pass
        finally:
            heartbeats.cancel()
            self._subscribed.pop(socket, None)
            self._book_depths.pop(socket, None)

    async def _heartbeats(self, socket: ServerConnection) -> None:
        """One heartbeat in each second without other frames, once something is subscribed."""
        assert isinstance(socket, _SimConnection)
        try:
            while True:
                await asyncio.sleep(1.0)
                now = time.monotonic()
                if ((self._subscribed.get(socket) or self._book_depths.get(socket))
                        and now >= self.faults.stalled.get(socket, 0.0) and now - socket.last_sent >= 1.0):
                    await socket.send(HEARTBEAT)
        except ConnectionClosed:
            pass

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        time_in = _rfc3339(time.time_ns())
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            await self._respond(socket, {}, time_in, error="EGeneral:Invalid arguments")
            return None
        method = request["method"]
        if method == "ping":
            if "params" in request:
                await self._respond(socket, request, time_in,
                                    error="Unsupported field: 'params' for the given msg type: ping")
            else:
                await self._respond(socket, {**request, "method": "pong"}, time_in)
            return None
        if method not in ("subscribe", "unsubscribe"):
            await self._respond(socket, request, time_in, error="Unsupported event")
            return None
        params = request.get("params")
        if (isinstance(params, dict) and params.get("channel") == "book" and isinstance(params.get("symbol"), list)
                and all(isinstance(symbol, str) for symbol in params["symbol"])
                and isinstance(params.get("depth", 10), int) and isinstance(params.get("snapshot", True), bool)):
            await self._book_request(socket, request, params, time_in)
            return None
        if not (method == "subscribe" and isinstance(params, dict) and params.get("channel") == "ticker"
                and isinstance(params.get("symbol"), list)
                and all(isinstance(symbol, str) for symbol in params["symbol"])
                and params.get("event_trigger", "trades") in ("trades", "bbo")
                and isinstance(params.get("snapshot", True), bool)):
            await self._respond(socket, request, time_in, error="EGeneral:Invalid arguments")
            return None
        return await self._subscribe(socket, request, params, time_in)

    async def _subscribe(self, socket: ServerConnection, request: dict[str, Any], params: dict[str, Any],
                         time_in: str) -> list[str]:
        subscribed = self._subscribed.setdefault(socket, [])
        added = []
        for symbol in params["symbol"]:
            if symbol not in self.quotes:  # XBT/USD too: v2 knows only BTC/USD
                await self._respond(socket, request, time_in, symbol=symbol,
                                    error=f"Currency pair not supported {symbol}")
                continue
            result = {"channel": "ticker", "event_trigger": params.get("event_trigger", "trades"),
                      "snapshot": params.get("snapshot", True), "symbol": symbol}
            await self._respond(socket, request, time_in, result=result)
            if symbol not in subscribed:
                subscribed.append(symbol)
                added.append(symbol)
        if params.get("snapshot", True):
            # Timed at the last change of the ticker, not when sent (a 2026 capture).
            for symbol in added:
                quote = self.quotes[symbol]
                await self._send(socket, self._ticker(symbol, quote, quote.changed_ms, "snapshot"))
        return subscribed

    async def _book_request(self, socket: ServerConnection, request: dict[str, Any], params: dict[str, Any],
                            time_in: str) -> None:
        """A book subscribe or unsubscribe: an ack or an error a symbol, then the feed."""
        depth = params.get("depth", 10)
        if depth not in BOOK_DEPTHS:
            await self._respond(socket, request, time_in, error="Subscription depth not supported")
            return
        books = self._book_depths.setdefault(socket, {})
        subscribe = request["method"] == "subscribe"
        done = []
        for symbol in params["symbol"]:
            if symbol not in self.quotes:
                error: str | None = f"Currency pair not supported {symbol}"
            elif subscribe:
                error = "Already subscribed" if symbol in books else None
            else:
                error = None if symbol in books else "Subscription Not Found"
            if error is not None:
                await self._respond(socket, request, time_in, symbol=symbol, error=error)
                continue
            result: dict[str, Any] = {"channel": "book", "depth": depth, "symbol": symbol}
            if subscribe:
                result["snapshot"] = True
                books[symbol] = depth
            else:
                del books[symbol]
            await self._respond(socket, request, time_in, result=result)
            done.append(symbol)
        if subscribe:
            self.book_feed.subscribe(socket, done)
        else:
            self.book_feed.unsubscribe(socket, done)

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        bids, asks = update.view(self._book_depths[socket][market_id])
        return self._book_push(market_id, "snapshot", bids, asks, update)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        changes = update.window_changes(self._book_depths[socket][market_id])
        bids = [(price, qty) for side, price, qty in changes if side == "bid"]
        asks = [(price, qty) for side, price, qty in changes if side == "ask"]
        return self._book_push(market_id, "update", bids, asks, update)

    def _book_push(self, symbol: str, kind: str, bids: list[Level], asks: list[Level], update: BookUpdate) -> str:
        """A v2 `book` push. The books' texts are Kraken's: prices at the pair's decimals,
        qty at 8, written as JSON numbers by hand. The checksum is of the book after the
        message, truncated to the depth (its top 10 is the view's), made wrong by the fault."""
        checksum = _book_checksum(*update.view(CHECKSUM_LEVELS))
        if update.wrong_checksum:
            checksum ^= 1

        def levels(side: list[Level]) -> str:
            return ",".join(f'{{"price":{price},"qty":{qty}}}' for price, qty in side)

        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
                f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum},'
                f'"timestamp":"{_rfc3339(update.ts_ms * 10**6)}"}}]}}')

    async def _respond(self, socket: ServerConnection, request: dict[str, Any], time_in: str, *,
                       error: str | None = None, result: dict[str, Any] | None = None,
                       symbol: str | None = None) -> None:
        """A method response in Kraken's key order: error, method, req_id, result, success, symbol."""
        response: dict[str, Any] = {}
        if error is not None:
            response["error"] = error
        if "method" in request:
            response["method"] = request["method"]
        if "req_id" in request:
            response["req_id"] = request["req_id"]
        if result is not None:
            response["result"] = result
        if request.get("method") != "pong":  # a pong carries no `success`
            response["success"] = error is None
        if symbol is not None:
            response["symbol"] = symbol
        response["time_in"] = time_in
        response["time_out"] = _rfc3339(time.time_ns())
        await socket.send(json.dumps(response, separators=(",", ":")))

    def _ticker(self, symbol: str, quote: Quote, now_ms: int, kind: str, strings: bool = False) -> str:
        """A ticker push; with `strings`, its numbers as JSON strings (the docs allow both)."""
        last = quote.price()
        opened = quote.price(-40)
        places = quote.scale
        mark = '"' if strings else ""

        def number(value: Decimal, decimals: int = 8) -> str:
            return mark + fixed(value, decimals) + mark

        change_pct = (100 * (last - opened) / opened).quantize(Decimal("0.01"))
        # The time of the last change, in µs: exchange_ts must truncate it to ms.
        stamp = _rfc3339(now_ms * 10**6 + self.rng.randint(0, 999) * 1000)
        # Numbers are written by hand: JSON numbers with the pair's trailing zeros.
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{symbol}",'
            f'"bid":{number(quote.price(-1), places)},"bid_qty":{number(Decimal("0.20337"))},'
            f'"ask":{number(last, places)},"ask_qty":{number(Decimal("12.85848"))},'
            f'"last":{number(last, places)},"volume":{number(quote.volume())},'
            f'"vwap":{number(quote.price(-5), places)},"low":{number(quote.price(-60), places)},'
            f'"high":{number(quote.price(30), places)},"change":{number(last - opened, places)},'
            f'"change_pct":{mark}{change_pct}{mark},"trades":{38144 + quote.volume_ticks % 1000},'
            f'"timestamp":"{stamp}"}}]}}'
        )

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return self._ticker(market_id, quote, now_ms, "update")

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        return self._ticker(market_id, quote, now_ms, "update", strings=True)  # string_numbers

    def wrong_shape_frame(self) -> str:
        return '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":{"nested":true}}]}'

    # REST. --------------------------------------------------------------------------

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path not in ("/0/public/AssetPairs", "/0/public/Ticker", "/0/public/Depth"):
            return 404, {"error": ["EGeneral:Unknown method"]}
        if path == "/0/public/Depth":
            return self._rest_depth(query)
        if "pair" in query:
            names = query["pair"][0].split(",")
            if any(self.rest_names.get(name) not in self.quotes for name in names):  # unknown or delisted
                return 200, {"error": ["EQuery:Unknown asset pair"]}
            symbols = [self.rest_names[name] for name in names]
        else:
            symbols = list(self.quotes)
        describe = self._asset_pair if path == "/0/public/AssetPairs" else self._rest_ticker
        result = {self.rest_keys[symbol]: describe(self.quotes[symbol]) for symbol in symbols}
        return 200, json.dumps({"error": [], "result": result}, separators=(",", ":"))

    def _rest_depth(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """/0/public/Depth of one pair: strings, prices padded to 5 decimals, each level with
        the second of the book's last change."""
        symbol = self.rest_names.get(query.get("pair", [""])[0])
        if symbol not in self.quotes:  # unknown or delisted
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        count = int(query.get("count", ["100"])[0])
        if not 1 <= count <= REST_BOOK_COUNT:
            return 200, {"error": ["EGeneral:Invalid arguments:count"]}
        update = self.book_feed.rest_view(symbol)
        places = max(self.quotes[symbol].scale, REST_PRICE_DECIMALS)
        seconds = update.ts_ms // 1000

        def levels(side: list[Level]) -> list[list[Any]]:
            return [[fixed(Decimal(price), places), qty.rstrip("0").rstrip("."), seconds] for price, qty in side]

        bids, asks = update.view(count)
        return 200, json.dumps({"error": [], "result": {self.rest_keys[symbol]: {
            "asks": levels(asks), "bids": levels(bids)}}}, separators=(",", ":"))

    def _asset_pair(self, quote: Quote) -> dict[str, Any]:
        base_v1, quote_v1 = V1_NAMES.get(quote.base, quote.base), V1_NAMES.get(quote.quote, quote.quote)
        return {
            "altname": base_v1 + quote_v1, "wsname": f"{base_v1}/{quote_v1}",
            "aclass_base": "currency", "base": LEGACY_CODES.get(quote.base, quote.base),
            "aclass_quote": "currency", "quote": LEGACY_CODES.get(quote.quote, quote.quote),
            "lot": "unit", "cost_decimals": 5, "pair_decimals": quote.scale, "lot_decimals": 8,
            "lot_multiplier": 1, "fee_volume_currency": "ZUSD", "ordermin": "0.00005", "costmin": "0.5",
            "tick_size": fixed(Decimal(1).scaleb(-quote.scale), quote.scale), "status": "online",
        }

    def _rest_ticker(self, quote: Quote) -> dict[str, Any]:
        places = quote.scale
        last = quote.price()
        return {
            "a": [fixed(last, places), "1", "1.000"], "b": [fixed(quote.price(-1), places), "1", "1.000"],
            "c": [fixed(last, places), "0.00120000"],
            "v": [fixed(quote.volume() / 10), fixed(quote.volume())],
            "p": [fixed(quote.price(-4), places), fixed(quote.price(-5), places)], "t": [120, 4100],
            "l": [fixed(quote.price(-20), places), fixed(quote.price(-60), places)],
            "h": [fixed(quote.price(10), places), fixed(quote.price(30), places)],
            "o": fixed(quote.price(-40), places),
        }
