"""Korbit as the simulator plays it: text frames on /v2/public, JSON-array requests whose
subscriptions add up, acks only for requests with a requestId, failures that leave the
socket open, a "snapshot":true first ticker per symbol, string numbers in Korbit's
shortest notation, server pings every 30 s, and the /v2 REST endpoints in their
{"success":...} envelope (with one stopped pair in the market list).

Order books (simulator/books.py keeps them): type `orderbook` in the same requests, the
whole top 30 of a pair in every frame, "snapshot":true on the first; REST
/v2/orderbook?symbol=... (the top 30, the pair named only in the URL)."""

import json
import time
from decimal import Decimal
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection

from simulator.books import BookFeed, BookUpdate, Level
from simulator.core import ExchangeSim, Quote, fixed, shortest


# Listed by /v2/currencyPairs as stopped; tickers for it are never sent.
STOPPED_PAIR = "lunc_krw"
# The levels a side of every book frame and REST book.
BOOK_LEVELS = 30


def _encode(value: Any) -> str:
    """Compact JSON text, as Korbit writes it (text frames, not binary)."""
    return msgspec.json.encode(value).decode()


def _korbit_number(value: Decimal, places: int) -> str:
    """Korbit's notation: no trailing zeros after the point (0.1702132, 89632429.21566)."""
    text = fixed(value, places)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _book_levels(levels: list[Level]) -> list[dict[str, str]]:
    """Levels as Korbit prints them: strings without trailing zeros."""
    return [{"price": shortest(Decimal(price)), "qty": shortest(Decimal(size))} for price, size in levels]


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book_feed = BookFeed(self)

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
            if request["type"] == "orderbook":
                # Queued after the ack; the first frame of each is the snapshot.
                if request["method"] == "subscribe":
                    self.book_feed.subscribe(socket, request["symbols"])
                else:
                    self.book_feed.unsubscribe(socket, request["symbols"])
            elif request["method"] == "subscribe":
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
        if request.get("type") not in ("ticker", "orderbook"):
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

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book_frame(market_id, update, snapshot=True)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book_frame(market_id, update, snapshot=False)

    def _book_frame(self, symbol: str, update: BookUpdate, snapshot: bool) -> str:
        """An `orderbook` frame: the top 30 a side, best first; the frame's time is the
        send time, data's the book's."""
        frame: dict[str, Any] = {"symbol": symbol, "timestamp": int(time.time() * 1000), "type": "orderbook"}
        if snapshot:
            frame["snapshot"] = True  # later frames omit the key, as on the 2026 wire
        bids, asks = update.view(BOOK_LEVELS)
        frame["data"] = {"timestamp": update.ts_ms, "asks": _book_levels(asks), "bids": _book_levels(bids)}
        return _encode(frame)

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
        if path == "/v2/orderbook":
            symbol = query.get("symbol", [""])[0]
            if symbol not in self.quotes:
                return 400, {"success": False, "error": {"code": 400, "message": "INVALID_CURRENCY_PAIR"}}
            # The top 30 whatever `limit` says; the reply does not name its pair.
            update = self.book_feed.rest_view(symbol)
            bids, asks = update.view(BOOK_LEVELS)
            return 200, _encode({"success": True, "data": {"timestamp": update.ts_ms, "bids": _book_levels(bids),
                                                           "asks": _book_levels(asks)}})
        return 404, {"success": False, "error": {"code": 404, "message": "NOT_FOUND"}}

