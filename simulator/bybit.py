"""Bybit Spot (v5) as the simulator plays it: {"op":...} requests with at most 10 args
per subscribe, one ack per request, spot-style pongs to {"op":"ping"}, sockets closed
after ~10 min with neither pings nor data, snapshot-only `tickers.*` pushes with string numbers printed without
trailing zeros (80900, 84547.99), and the /v5/market REST endpoints with their
{"retCode","retMsg","result","retExtInfo","time"} envelope.

Order books: `orderbook.{50,200,1000}.<symbol>` topics on the same socket and requests,
a snapshot then deltas whose `u` counts the topic's pushes (+1 each, book_id_steps), a
level pushed out of the window without a delete; a topic subscribed twice is refused
("error:already subscribed,topic:..."), as probed on the wire, and keeps its stream.
REST /v5/market/orderbook?category=spot&symbol=X&limit=N. simulator/books.py keeps the
books."""

import json
import time
import weakref
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection

from simulator.books import BookFeed, BookUpdate, Level
from simulator.core import BASES, ExchangeSim, Quote

ARGS_PER_SUBSCRIBE = 10
TOPIC_PREFIX = "tickers."
BOOK_TOPIC_PREFIX = "orderbook."
BOOK_STREAMS = ("50", "200", "1000")  # the book topics' levels, with a snapshot and deltas
REST_BOOK_LIMIT = 1000


def _bybit_number(value: Decimal) -> str:
    """Bybit prints decimals without trailing zeros and never with an exponent."""
    return format(value.normalize(), "f")


def _compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class BybitSim(ExchangeSim):
    name = "bybit"
    default_quote = "USDT"
    ws_paths = ("/v5/public/spot",)
    edge_kinds = ("empty_index_price",)
    # The documented cut: ~10 min "without ping-pong and without server data" (the
    # Connect page); the docs still ask for a ping every 20 s.
    client_idle_timeout_s = 600.0
    client_pings_count = True
    server_pushes_count = True
    book_id_steps = (1, 1)  # `u` counts a topic's pushes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cross_sequence = 64_027_791_513
        self.book_feed = BookFeed(self)
        # Each socket's book topics: market -> the stream's levels a side.
        self.book_levels: weakref.WeakKeyDictionary[ServerConnection, dict[str, int]] = weakref.WeakKeyDictionary()

    def market_id(self, base: str, quote: str) -> str:
        return base + quote

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            request = json.loads(message)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            await self._reply(socket, {}, False, "Invalid request", None)
            return None
        if op == "ping":
            await self._reply(socket, request, True, "pong", "ping")
            return None
        if op not in ("subscribe", "unsubscribe"):
            await self._reply(socket, request, False, f"Invalid op: {op}", op)
            return None
        args = request.get("args")
        if not isinstance(args, list) or not args:
            await self._reply(socket, request, False, "Invalid args", op)
            return None
        if len(args) > ARGS_PER_SUBSCRIBE:
            # Bybit's encoder escapes '>' as \u003e; the frame is written by hand to keep it.
            await socket.send(
                f'{{"success":false,"ret_msg":"args size \\u003e{ARGS_PER_SUBSCRIBE}",'
                f'"conn_id":"{_conn_id(socket)}","op":"{op}"}}'
            )
            return None
        tickers: list[str] = []
        books: dict[str, int] = {}  # market -> the stream's levels
        for topic in args:
            kind, _, market_id = topic.rpartition(".") if isinstance(topic, str) else ("", "", "")
            levels = kind[len(BOOK_TOPIC_PREFIX):] if kind.startswith(BOOK_TOPIC_PREFIX) else ""
            if market_id in self.quotes and kind + "." == TOPIC_PREFIX:
                tickers.append(market_id)
            elif market_id in self.quotes and levels in BOOK_STREAMS:
                books[market_id] = int(levels)
            else:
                # One bad topic fails the whole request (the wire's text).
                await self._reply(socket, request, False, f"error:handler not found,topic:{topic}", op)
                return None
        book_levels = self.book_levels.setdefault(socket, {})
        if op == "subscribe":
            for market_id, levels in books.items():
                if book_levels.get(market_id) == levels:
                    await self._reply(socket, request, False,
                                      f"error:already subscribed,topic:{BOOK_TOPIC_PREFIX}{levels}.{market_id}", op)
                    return None
        subscribed: list[str] = getattr(socket, "bybit_markets", [])
        for market_id in tickers:
            if op == "subscribe" and market_id not in subscribed:
                subscribed.append(market_id)
            elif op == "unsubscribe" and market_id in subscribed:
                subscribed.remove(market_id)
        socket.bybit_markets = subscribed  # type: ignore[attr-defined]
        await self._reply(socket, request, True, op, op)
        if op == "subscribe":
            book_levels.update(books)
            self.book_feed.subscribe(socket, list(books))
        else:
            for market_id in books:
                book_levels.pop(market_id, None)
            self.book_feed.unsubscribe(socket, list(books))
        return subscribed

    async def _reply(self, socket: ServerConnection, request: dict[str, Any], success: bool, ret_msg: str,
                     op: str | None) -> None:
        """An ack, pong or error in Bybit's key order; req_id only when the request had one."""
        reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": _conn_id(socket)}
        if "req_id" in request:
            reply["req_id"] = request["req_id"]
        if op is not None:
            reply["op"] = op
        await socket.send(_compact(reply))

    def _fields(self, market_id: str, quote: Quote) -> dict[str, str]:
        last = quote.price()
        previous = quote.price(-40)
        volume = quote.volume()
        return {
            "symbol": market_id, "lastPrice": _bybit_number(last),
            "highPrice24h": _bybit_number(quote.price(30)), "lowPrice24h": _bybit_number(quote.price(-60)),
            "prevPrice24h": _bybit_number(previous), "volume24h": _bybit_number(volume),
            "turnover24h": _bybit_number(volume * last),
            "price24hPcnt": _bybit_number(((last - previous) / previous).quantize(Decimal("0.0001"))),
            # "" for coins that are not collateral, as on the real feed.
            "usdIndexPrice": _bybit_number(quote.price(-2)) if quote.base in BASES else "",
        }

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return self._push(market_id, now_ms, self._fields(market_id, quote))

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        # empty_index_price: "" for a coin without a USD index (not collateral).
        return self._push(market_id, now_ms, self._fields(market_id, quote) | {"usdIndexPrice": ""})

    def _push(self, market_id: str, now_ms: int, fields: dict[str, str]) -> str:
        self.cross_sequence += 1
        return _compact({"topic": TOPIC_PREFIX + market_id, "ts": now_ms, "type": "snapshot",
                         "cs": self.cross_sequence, "data": fields})

    # The book channel. ---------------------------------------------------------------

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        levels = self.book_levels[socket][market_id]
        bids, asks = update.view(levels)
        return self._book_push(market_id, levels, "snapshot", bids, asks, update)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        levels = self.book_levels[socket][market_id]
        changes = update.window_changes(levels)
        bids = [(price, size) for side, price, size in changes if side == "bid"]
        asks = [(price, size) for side, price, size in changes if side == "ask"]
        return self._book_push(market_id, levels, "delta", bids, asks, update)

    def _book_push(self, market_id: str, levels: int, kind: str, bids: list[Level], asks: list[Level],
                   update: BookUpdate) -> str:
        """An orderbook.N push, keys in spot's order (`ts` before `type`, `cts` last)."""
        self.cross_sequence += 1
        return _compact({
            "topic": f"{BOOK_TOPIC_PREFIX}{levels}.{market_id}", "ts": update.ts_ms, "type": kind,
            "data": {"s": market_id, "b": _book_levels(bids), "a": _book_levels(asks), "u": update.update_id,
                     "seq": self.cross_sequence},
            "cts": update.ts_ms - 2,
        })

    def _rest_book(self, market_id: str, limit: int, now_ms: int) -> dict[str, Any]:
        """/v5/market/orderbook's answer. Its `u` would number the 1000-level stream: here
        the book's one sequence."""
        update = self.book_feed.rest_view(market_id)
        bids, asks = update.view(limit)
        self.cross_sequence += 1
        return {"s": market_id, "a": _book_levels(asks), "b": _book_levels(bids), "ts": now_ms,
                "u": update.update_id, "seq": self.cross_sequence, "cts": now_ms - 2}

    def wrong_shape_frame(self) -> str:
        # A ticker whose price is a JSON number and whose other fields are missing.
        return ('{"topic":"tickers.BTCUSDT","ts":1740835319867,"type":"snapshot","cs":1,'
                '"data":{"symbol":"BTCUSDT","lastPrice":84547.99}}')

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        now_ms = int(time.time() * 1000)
        if path not in ("/v5/market/tickers", "/v5/market/instruments-info", "/v5/market/orderbook"):
            return 404, _envelope(10001, "Not Found", {}, now_ms)
        if query.get("category") != ["spot"]:
            return 200, _envelope(10001, "Illegal category", {}, now_ms)
        symbols = query.get("symbol", list(self.quotes))
        if any(symbol not in self.quotes for symbol in symbols):
            return 200, _envelope(10001, "Not supported symbols", {}, now_ms)
        if path == "/v5/market/orderbook":
            limit = int(query.get("limit", ["1"])[0])
            if len(symbols) != 1 or not 1 <= limit <= REST_BOOK_LIMIT:
                return 200, _envelope(10001, "Invalid parameter", {}, now_ms)
            return 200, _envelope(0, "OK", self._rest_book(symbols[0], limit, now_ms), now_ms)
        if path == "/v5/market/tickers":
            items = [self._rest_ticker(symbol) for symbol in symbols]
        else:
            items = [self._instrument(symbol) for symbol in symbols]
        return 200, _envelope(0, "OK", {"category": "spot", "list": items}, now_ms)

    def _rest_ticker(self, market_id: str) -> dict[str, str]:
        quote = self.quotes[market_id]
        fields = self._fields(market_id, quote)
        return {
            "symbol": market_id, "bid1Price": _bybit_number(quote.price(-1)), "bid1Size": "2",
            "ask1Price": fields["lastPrice"], "ask1Size": "1.862172", "lastPrice": fields["lastPrice"],
            **{key: fields[key] for key in ("prevPrice24h", "price24hPcnt", "highPrice24h", "lowPrice24h",
                                            "turnover24h", "volume24h", "usdIndexPrice")},
        }

    def _instrument(self, market_id: str) -> dict[str, Any]:
        quote = self.quotes[market_id]
        return {
            "symbol": market_id, "baseCoin": quote.base, "quoteCoin": quote.quote, "innovation": "0",
            "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
            "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001",
                              "minOrderQty": "0.000011", "maxOrderQty": "83", "minOrderAmt": "5",
                              "maxOrderAmt": "8000000"},
            "priceFilter": {"tickSize": _bybit_number(Decimal(1).scaleb(-quote.scale))},
            "symbolType": "",
        }


def _book_levels(levels: list[Level]) -> list[list[str]]:
    """Prices at the tick's decimals ("2191.0"), sizes as the 2026 capture prints them:
    without trailing zeros but with one decimal at least ("9.0", "0.5", a delete "0.0")."""
    return [[price, _bybit_size(size)] for price, size in levels]


def _bybit_size(size: str) -> str:
    text = size.rstrip("0")
    return text + "0" if text.endswith(".") else text


def _conn_id(socket: ServerConnection) -> str:
    return f"{id(socket):x}-sim"


def _envelope(code: int, message: str, result: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms}
