"""Binance Spot as the simulator plays it: combined-stream envelopes, SUBSCRIBE acks,
server pings every 20 s, string-encoded numbers, /api/v3 REST."""

import json
from typing import Any

from websockets.asyncio.server import ServerConnection

from simulator.core import ExchangeSim, Quote, fixed


class BinanceSim(ExchangeSim):
    name = "binance"
    default_quote = "USDT"
    ws_paths = ("/stream", "/ws")
    server_ping_interval_s = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trade_id = 5_231_695_487

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
        subscribed = getattr(socket, "binance_streams", [])
        for stream in params:
            market_id = stream.split("@", 1)[0].upper()
            # Binance accepts unknown or upper-case stream names silently; they never send data.
            if stream.endswith("@ticker") and stream == stream.lower() and market_id in self.quotes:
                subscribed.append(market_id)
        socket.binance_streams = subscribed  # type: ignore[attr-defined]
        return subscribed

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
        event = self._event(market_id, quote, now_ms)
        return json.dumps({"stream": market_id.lower() + "@ticker", "data": event}, separators=(",", ":"))

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
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
        event = self._event(market_id, self.quotes[market_id], 1_757_888_604_019)
        names = {"p": "priceChange", "P": "priceChangePercent", "w": "weightedAvgPrice", "x": "prevClosePrice",
                 "c": "lastPrice", "Q": "lastQty", "b": "bidPrice", "B": "bidQty", "a": "askPrice", "A": "askQty",
                 "o": "openPrice", "h": "highPrice", "l": "lowPrice", "v": "volume", "q": "quoteVolume",
                 "O": "openTime", "C": "closeTime", "F": "firstId", "L": "lastId", "n": "count"}
        return {"symbol": market_id, **{long: event[short] for short, long in names.items()}}
