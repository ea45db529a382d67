"""Korbit as the simulator plays it: text frames on /v2/public, JSON-array requests whose
subscriptions add up, acks only for requests with a requestId, failures that leave the
socket open, a "snapshot":true first ticker per symbol, string numbers in Korbit's
shortest notation, server pings every 30 s, and the /v2 REST endpoints in their
{"success":...} envelope (with one stopped pair in the market list)."""

import json
import time
from decimal import Decimal
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection

from simulator.core import ExchangeSim, Quote, fixed, shortest


# Listed by /v2/currencyPairs as stopped; tickers for it are never sent.
STOPPED_PAIR = "lunc_krw"
# The levels a side of every book frame and REST book.
BOOK_LEVELS = 30
# A book side: (price, size), best first.
Levels = list[tuple[Decimal, Decimal]]


def _encode(value: Any) -> str:
    """Compact JSON text, as Korbit writes it (text frames, not binary)."""
    return msgspec.json.encode(value).decode()


def _korbit_number(value: Decimal, places: int) -> str:
    """Korbit's notation: no trailing zeros after the point (0.1702132, 89632429.21566)."""
    text = fixed(value, places)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _book_levels(levels: Levels) -> list[dict[str, str]]:
    return [{"price": shortest(price), "qty": shortest(size)}
            for price, size in levels[:BOOK_LEVELS]]


class KorbitSim(ExchangeSim):
    name = "korbit"
    default_quote = "KRW"
    ws_paths = ("/v2/public",)
    edge_kinds = ("stopped_pair",)
    server_ping_interval_s = 30.0
    # Korbit keeps a silent client that answers its pings (120 s seen on the wire), so no
    # idle rule by default. /_sim/idle?seconds=S sets one in which only the client's own
    # messages and pings count as signs of life.
    client_pings_count = True

    def market_id(self, base: str, quote: str) -> str:
        return f"{base.lower()}_{quote.lower()}"

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            requests = json.loads(message)
        except ValueError:
            requests = None
        if not isinstance(requests, list) or not all(isinstance(request, dict) for request in requests):
            await socket.send('{"status":"fail","message":"invalid_format"}')
            return None
        subscribed: list[str] = getattr(socket, "korbit_symbols", [])
        added: list[str] = []
        for request in requests:
            failure = self._check(request)
            if failure is not None:
                await self._answer(socket, request, {"status": "fail", **failure})
                continue
            await self._answer(socket, request, {"status": "success"})
            if request["method"] == "subscribe":
                added += [symbol for symbol in request["symbols"] if symbol not in subscribed + added]
            else:
                subscribed = [symbol for symbol in subscribed if symbol not in request["symbols"]]
        socket.korbit_symbols = subscribed + added  # type: ignore[attr-defined]
        now_ms = int(time.time() * 1000)
        for symbol in added:
            await self._send(socket, self._frame(symbol, self.quotes[symbol], now_ms, snapshot=True))
        return socket.korbit_symbols  # type: ignore[attr-defined,no-any-return]

    def _check(self, request: dict[str, Any]) -> dict[str, str] | None:
        """The failure fields for a bad request object, or None if it is good."""
        symbols = request.get("symbols")
        if request.get("method") not in ("subscribe", "unsubscribe") or not isinstance(symbols, list):
            return {"code": "INVALID_REQUEST", "message": "invalid_format"}
        if request.get("type") != "ticker":
            return {"code": "INVALID_REQUEST", "message": "unknown_type"}
        for symbol in symbols:
            # Case-sensitive: BTC_KRW does not exist any more than nope_krw does.
            if symbol not in self.quotes:
                return {"code": "INVALID_SYMBOL", "message": f"The symbol does not exist ({symbol})"}
        return None

    async def _answer(self, socket: ServerConnection, request: dict[str, Any], answer: dict[str, Any]) -> None:
        # Success is silent without a requestId; a failure is always reported.
        if "requestId" in request:
            answer["requestId"] = request["requestId"]
        elif answer["status"] == "success":
            return
        await socket.send(_encode(answer))

    def _data(self, quote: Quote, now_ms: int) -> dict[str, Any]:
        last = quote.price()
        previous = quote.price(-40)
        volume = quote.volume()
        return {
            "open": _korbit_number(quote.price(-35), quote.scale),
            "high": _korbit_number(quote.price(30), quote.scale),
            "low": _korbit_number(quote.price(-60), quote.scale),
            "close": _korbit_number(last, quote.scale),
            "prevClose": _korbit_number(previous, quote.scale),
            "priceChange": _korbit_number(last - previous, quote.scale),
            "priceChangePercent": "0.15",
            "volume": _korbit_number(volume, 8),
            "quoteVolume": _korbit_number(volume * last, 5),
            "bestAskPrice": _korbit_number(quote.price(1), quote.scale),
            "bestBidPrice": _korbit_number(last, quote.scale),
            "lastTradedAt": now_ms - 8279,
        }

    def _frame(self, symbol: str, quote: Quote, now_ms: int, snapshot: bool) -> str:
        frame: dict[str, Any] = {"symbol": symbol, "timestamp": now_ms, "type": "ticker"}
        if snapshot:
            frame["snapshot"] = True  # realtime frames omit the key, as on the 2026 wire
        frame["data"] = self._data(quote, now_ms)
        return _encode(frame)

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return self._frame(market_id, quote, now_ms, snapshot=False)

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        # stopped_pair: best prices "0", no order on either side (a stopped pair's book).
        frame = msgspec.json.decode(self._frame(market_id, quote, now_ms, snapshot=False))
        frame["data"] |= {"bestAskPrice": "0", "bestBidPrice": "0"}
        return _encode(frame)

    def book_frame(self, symbol: str, bids: Levels, asks: Levels, book_ms: int, now_ms: int,
                   snapshot: bool) -> str:
        """An `orderbook` frame: the top 30 a side, best first; the envelope's time is the
        send time, data's the book's."""
        frame: dict[str, Any] = {"symbol": symbol, "timestamp": now_ms, "type": "orderbook"}
        if snapshot:
            frame["snapshot"] = True
        frame["data"] = {"timestamp": book_ms, "asks": _book_levels(asks), "bids": _book_levels(bids)}
        return _encode(frame)

    def rest_book_body(self, bids: Levels, asks: Levels, book_ms: int) -> str:
        """/v2/orderbook?symbol=...: the socket's `data`, without the pair's name."""
        return _encode({"success": True, "data": {"timestamp": book_ms, "bids": _book_levels(bids),
                                                  "asks": _book_levels(asks)}})

    def wrong_shape_frame(self) -> str:
        return '{"symbol":"btc_krw","timestamp":1730365099072,"type":"ticker","data":{"close":["100650000"]}}'

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/v2/currencyPairs":
            pairs = [(symbol, quote.base, quote.quote, "launched") for symbol, quote in self.quotes.items()]
            pairs.append((STOPPED_PAIR, "LUNC", "KRW", "stopped"))
            return 200, _encode({"success": True, "data": [
                {"symbol": symbol, "status": status, "baseCurrency": base.lower(), "quoteCurrency": quote.lower(),
                 "minOrderValue": "5000", "maxOrderValue": "1000000000"}
                for symbol, base, quote, status in pairs
            ]})
        if path == "/v2/tickers":
            wanted = query["symbol"][0].split(",") if "symbol" in query else list(self.quotes)
            now_ms = int(time.time() * 1000)
            # Unknown (or upper-case) symbols are left out without an error.
            return 200, _encode({"success": True, "data": [
                {"symbol": symbol, **self._data(self.quotes[symbol], now_ms)}
                for symbol in wanted if symbol in self.quotes
            ]})
        return 404, {"success": False, "error": {"code": 404, "message": "NOT_FOUND"}}

