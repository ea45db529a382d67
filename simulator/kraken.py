"""Kraken Spot WebSocket v2 as the simulator plays it: a `status` frame on connect, one
ack per symbol and then one snapshot per symbol, heartbeats in each second without
tickers, the JSON ping, per-symbol errors for pairs it does not list (XBT/USD among
them), tickers whose numbers are JSON numbers at the pair's precision, and the
/0/public REST endpoints with Kraken's legacy pair keys (XXBTZUSD).

Error texts seen on the real socket: "Currency pair not supported <pair>" and
"Unsupported field: 'params' for the given msg type: ping", "Unsupported event". The
answer to a request that is not JSON or lacks a method is not documented: this mode
sends "EGeneral:Invalid arguments" in the same envelope.
"""

import asyncio
import json
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.core import ExchangeSim, Quote, fixed

# REST asset codes of Kraken's legacy assets; every other asset's code is its name.
LEGACY_CODES = {"BTC": "XXBT", "ETH": "XETH", "XRP": "XXRP", "DOGE": "XXDG", "USD": "ZUSD", "EUR": "ZEUR"}
# v1 names (AssetPairs wsname and altname) that differ from v2.
V1_NAMES = {"BTC": "XBT", "DOGE": "XDG"}
HEARTBEAT = '{"channel":"heartbeat"}'
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
CHECKSUM_LEVELS = 10
QTY_DECIMALS = 8  # the socket's qty: 0.10000000
REST_PRICE_DECIMALS = 5  # REST Depth pads prices (105944.30000) where the socket writes 105944.3
BookLevels = Sequence[tuple[Decimal, Decimal]]  # (price, qty); qty 0: a delete


def _book_checksum(bids: BookLevels, asks: BookLevels, scale: int) -> int:
    """Kraken's v2 book checksum, as its guide states it, of the texts a push carries: for
    the top 10 asks, then the top 10 bids, the price and the qty, each without its '.'
    and its leading zeros; CRC32 of the whole, unsigned."""
    text = "".join(
        f"{price:.{scale}f}".replace(".", "").lstrip("0") + f"{qty:.{QTY_DECIMALS}f}".replace(".", "").lstrip("0")
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
        self._last_sent: dict[ServerConnection, float] = {}
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
            self._last_sent.pop(socket, None)

    async def _heartbeats(self, socket: ServerConnection) -> None:
        """One heartbeat in each second without tickers, once something is subscribed."""
        try:
            while True:
                await asyncio.sleep(1.0)
                now = time.monotonic()
                if (self._subscribed.get(socket) and now >= self.faults.stalled.get(socket, 0.0)
                        and now - self._last_sent.get(socket, 0.0) >= 1.0):
                    await socket.send(HEARTBEAT)
        except ConnectionClosed:
            pass

    async def _send(self, socket: ServerConnection, frame: str) -> None:
        self._last_sent[socket] = time.monotonic()
        await super()._send(socket, frame)

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
        if method != "subscribe":
            await self._respond(socket, request, time_in, error="Unsupported event")
            return None
        params = request.get("params")
        if not (isinstance(params, dict) and params.get("channel") == "ticker"
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

    # The book channel. ---------------------------------------------------------------

    def book_push(self, symbol: str, kind: str, bids: BookLevels, asks: BookLevels, book_bids: BookLevels,
                  book_asks: BookLevels, now_ns: int, checksum_error: int = 0) -> str:
        """A v2 `book` push: a `snapshot` (`bids`/`asks` the book, best first) or an
        `update` (the changed levels). `book_bids`/`book_asks`, best first, are the book
        after it, truncated to the subscribed depth: the checksum is computed over them,
        from the same texts the frame carries; `checksum_error` is added to it (a fault).
        Numbers are JSON numbers written by hand, prices at the pair's decimals and
        quantities at 8, trailing zeros kept."""
        scale = self.quotes[symbol].scale

        def levels(side: BookLevels) -> str:
            return ",".join(f'{{"price":{price:.{scale}f},"qty":{qty:.{QTY_DECIMALS}f}}}' for price, qty in side)

        checksum = (_book_checksum(book_bids, book_asks, scale) + checksum_error) % (1 << 32)
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
                f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum},'
                f'"timestamp":"{_rfc3339(now_ns)}"}}]}}')

    def rest_depth(self, symbol: str, bids: BookLevels, asks: BookLevels, now_s: int) -> str:
        """/0/public/Depth's answer: strings, prices padded to 5 decimals, each level with
        the second of its last change (here: now)."""
        def levels(side: BookLevels) -> list[list[Any]]:
            return [[fixed(price, max(self.quotes[symbol].scale, REST_PRICE_DECIMALS)),
                     format(qty.normalize(), "f"), now_s] for price, qty in side]

        return json.dumps({"error": [], "result": {self.rest_keys[symbol]: {"asks": levels(asks), "bids": levels(bids)}}},
                          separators=(",", ":"))

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        return self._ticker(market_id, quote, now_ms, "update", strings=True)  # string_numbers

    def wrong_shape_frame(self) -> str:
        return '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":{"nested":true}}]}'

    # REST. --------------------------------------------------------------------------

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path not in ("/0/public/AssetPairs", "/0/public/Ticker"):
            return 404, {"error": ["EGeneral:Unknown method"]}
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
