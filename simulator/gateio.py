"""Gate Spot (API v4) as the simulator plays it: the /ws/v4/ socket (trailing slash
included), {"time","channel","event","payload"} requests with one ack each, a request
with one unknown pair refused as a whole, spot.pong answers to spot.ping, clients that
send nothing for a minute (neither a message nor an RFC 6455 ping) closed, `spot.tickers` updates whose numbers are JSON strings
without trailing zeros (29968.3, 215375.1010537074991), an `upgrade` notice on demand
(/_sim/upgrade), and the /api/v4/spot REST endpoints with their bare JSON arrays.

Order books: `spot.obu` streams ob.<pair>.<50|400>, one a request (a second subscribe of
a stream refused with "Alert sub"), a full push first (`full`, `u`), then changes from U
to u, numbers printed as short as they go; /api/v4/spot/order_book?with_id=true with the
book's `id` (simulator/books.py keeps the books)."""

import json
import time
import uuid
import weakref
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote

CHANNEL = "spot.tickers"
BOOK_CHANNEL = "spot.obu"
PERCENT = Decimal("0.01")
OBU_LEVELS = (50, 400)
Levels = list[tuple[str, str]]


def _gate_number(value: Decimal) -> str:
    """Gate prints decimals as short as they go, never with an exponent."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _gate_levels(levels: Levels) -> list[list[str]]:
    return [[_gate_number(Decimal(price)), _gate_number(Decimal(size))] for price, size in levels]


def obu_push(stream: str, first_id: int | None, last_id: int, bids: Levels, asks: Levels, book_ms: int,
             now_ms: int) -> str:
    """A spot.obu push as the docs show it: the whole book (`full`, no U) when first_id
    is None, else the changes from U to u (size 0 deletes). No `event` and no `time`."""
    result: dict[str, Any] = {"t": book_ms}
    if first_id is None:
        result["full"] = True
    result["s"] = stream
    if first_id is not None:
        result["U"] = first_id
    result |= {"u": last_id, "b": _gate_levels(bids), "a": _gate_levels(asks)}
    return _compact({"channel": BOOK_CHANNEL, "result": result, "time_ms": now_ms})


def rest_book(update_id: int, bids: Levels, asks: Levels, book_ms: int, now_ms: int) -> dict[str, Any]:
    """The body of GET /spot/order_book?with_id=true."""
    return {"id": update_id, "current": now_ms, "update": book_ms, "asks": _gate_levels(asks),
            "bids": _gate_levels(bids)}


def _compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _conn_id(socket: ServerConnection) -> str:
    return f"{id(socket):016x}"[-16:]


class GateioSim(ExchangeSim):
    name = "gateio"
    default_quote = "USDT"
    ws_paths = ("/ws/v4/",)
    edge_kinds = ("empty_book", "no_time_ms")
    # The maintainers' figure: a socket with no traffic from its client for over a minute
    # is closed. The server checks RFC 6455 pings, and a spot.ping resets its timer.
    client_idle_timeout_s = 60.0
    client_pings_count = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book_feed = BookFeed(self)
        # pair -> the spot.obu level it is subscribed at, per open socket
        self.obu_levels: weakref.WeakKeyDictionary[ServerConnection, dict[str, int]] = weakref.WeakKeyDictionary()

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}_{quote}"

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            request = json.loads(message)
            channel, event = request["channel"], request.get("event", "")
        except (ValueError, KeyError, TypeError):
            await self._reply(socket, {}, "", "", error=(1, "Invalid request body format"))
            return None
        if channel == "spot.ping":
            await self._reply(socket, request, "spot.pong", "")
            return None
        if channel == BOOK_CHANNEL and event in ("subscribe", "unsubscribe"):
            await self._obu(socket, request, event)
            return None
        if channel != CHANNEL:
            await self._reply(socket, request, channel, event, error=(2, f"unknown channel {channel}"))
            return None
        if event not in ("subscribe", "unsubscribe"):
            await self._reply(socket, request, channel, event, error=(2, f"unknown event {event}"))
            return None
        payload = request.get("payload")
        if not isinstance(payload, list) or not payload:
            await self._reply(socket, request, channel, event, error=(2, "payload must be a list of currency pairs"))
            return None
        unknown = [pair for pair in payload if pair not in self.quotes]
        if unknown:
            # One bad pair fails the whole request; nothing in it is subscribed.
            await self._reply(socket, request, channel, event, error=(2, f"unknown currency pair {unknown[0]}"))
            return None
        subscribed: list[str] = getattr(socket, "gateio_pairs", [])
        for pair in payload:
            if event == "subscribe" and pair not in subscribed:
                subscribed.append(pair)
            elif event == "unsubscribe" and pair in subscribed:
                subscribed.remove(pair)
        socket.gateio_pairs = subscribed  # type: ignore[attr-defined]
        await self._reply(socket, request, channel, event, result={"status": "success"})
        return subscribed

    async def _obu(self, socket: ServerConnection, request: dict[str, Any], event: str) -> None:
        """One spot.obu stream a request, ob.<pair>.<50|400>; a stream subscribed twice is
        refused ("Alert sub"); the subscription's first push is full."""
        payload = request.get("payload")
        stream = payload[0] if isinstance(payload, list) and len(payload) == 1 else ""
        prefix, _, rest = str(stream).partition(".")
        pair, _, level = rest.rpartition(".")
        if prefix != "ob" or pair not in self.quotes or level not in {str(obu) for obu in OBU_LEVELS}:
            await self._reply(socket, request, BOOK_CHANNEL, event, error=(2, f"invalid stream {stream}"))
            return
        levels = self.obu_levels.setdefault(socket, {})
        if event == "subscribe":
            if pair in levels:
                await self._reply(socket, request, BOOK_CHANNEL, event, error=(2, f"Alert sub {stream}"))
                return
            levels[pair] = int(level)
            await self._reply(socket, request, BOOK_CHANNEL, event, result={"status": "success"})
            self.book_feed.subscribe(socket, [pair])
        else:
            levels.pop(pair, None)
            self.book_feed.unsubscribe(socket, [pair])
            await self._reply(socket, request, BOOK_CHANNEL, event, result={"status": "success"})

    def _stream(self, socket: ServerConnection, pair: str) -> tuple[str, int]:
        level = self.obu_levels.get(socket, {}).get(pair, OBU_LEVELS[0])
        return f"ob.{pair}.{level}", level

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        stream, level = self._stream(socket, market_id)
        bids, asks = update.view(level)
        return obu_push(stream, None, update.update_id, bids, asks, update.ts_ms, int(time.time() * 1000))

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        stream, _ = self._stream(socket, market_id)
        bids = [(price, size) for side, price, size in update.changes if side == "bid"]
        asks = [(price, size) for side, price, size in update.changes if side == "ask"]
        return obu_push(stream, update.first_id, update.update_id, bids, asks, update.ts_ms,
                        int(time.time() * 1000))

    async def _reply(self, socket: ServerConnection, request: dict[str, Any], channel: str, event: str,
                     result: dict[str, str] | None = None, error: tuple[int, str] | None = None) -> None:
        """An ack, pong or error in the live key order: the client's time and id echoed."""
        now_ms = int(time.time() * 1000)
        trace_id = uuid.uuid4().hex
        reply: dict[str, Any] = {"time": request.get("time", now_ms // 1000), "time_ms": now_ms}
        if "id" in request:
            reply["id"] = request["id"]
        reply |= {"conn_id": _conn_id(socket), "trace_id": trace_id, "channel": channel, "event": event}
        if "payload" in request:
            reply["payload"] = request["payload"]
        if error is not None:
            reply["error"] = {"code": error[0], "message": error[1]}
            result = {"status": "fail"}
        elif channel == "spot.pong":
            reply["error"] = None  # the documented pong spells it out; live acks leave it out
        reply |= {"result": result, "requestId": trace_id}
        await socket.send(_compact(reply))

    def _result(self, pair: str, quote: Quote) -> dict[str, str]:
        last = quote.price()
        opened = quote.price(-40)
        volume = quote.volume()
        return {
            "currency_pair": pair, "last": _gate_number(last),
            "lowest_ask": _gate_number(quote.price(1)), "highest_bid": _gate_number(quote.price(-1)),
            "change_percentage": _gate_number(((last - opened) * 100 / opened).quantize(PERCENT)),
            "base_volume": _gate_number(volume), "quote_volume": _gate_number(volume * last),
            "high_24h": _gate_number(quote.price(30)), "low_24h": _gate_number(quote.price(-60)),
        }

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return _compact({"time": now_ms // 1000, "time_ms": now_ms, "channel": CHANNEL, "event": "update",
                         "result": self._result(market_id, quote)})

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        if kind == "empty_book":  # "" where a side of the book is empty
            result = self._result(market_id, quote) | {"lowest_ask": "", "highest_bid": ""}
            return _compact({"time": now_ms // 1000, "time_ms": now_ms, "channel": CHANNEL, "event": "update",
                             "result": result})
        # no_time_ms: a server older than 2022-11 writes `time` (s) alone.
        return _compact({"time": now_ms // 1000, "channel": CHANNEL, "event": "update",
                         "result": self._result(market_id, quote)})

    def wrong_shape_frame(self) -> str:
        # A ticker whose price is a JSON number, which Gate never sends.
        return ('{"time":1669107766,"time_ms":1669107766406,"channel":"spot.tickers","event":"update",'
                '"result":{"currency_pair":"BTC_USDT","last":15743.4}}')

    async def _control(self, command: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if command != "upgrade":
            return await super()._control(command, query)
        # Gate's notice that the server is being upgraded: clients reconnect.
        now_ms = int(time.time() * 1000)
        notice = _compact({"time": now_ms // 1000, "time_ms": now_ms, "channel": CHANNEL, "event": "upgrade",
                           "error": None, "result": None})
        for socket in list(self.sockets):
            await socket.send(notice)
        return {"ok": command, "sockets": len(self.sockets)}

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/v4/spot/currency_pairs":
            return 200, [self._pair(pair, quote) for pair, quote in self.quotes.items()]
        if path == "/api/v4/spot/order_book":
            pair = query.get("currency_pair", [""])[0]
            if pair not in self.quotes:
                return 400, {"label": "INVALID_CURRENCY_PAIR", "message": f"Invalid currency pair {pair}"}
            view = self.book_feed.rest_view(pair)
            bids, asks = view.view(int(query.get("limit", ["10"])[0]))
            return 200, rest_book(view.update_id, bids, asks, view.ts_ms, int(time.time() * 1000))
        if path == "/api/v4/spot/tickers":
            pairs = query.get("currency_pair", list(self.quotes))
            for pair in pairs:
                if pair not in self.quotes:
                    return 400, {"label": "INVALID_CURRENCY", "message": f"Invalid currency {pair.split('_')[0]}"}
            return 200, [self._rest_ticker(pair) for pair in pairs]
        return 404, {"label": "NOT_FOUND", "message": f"{path} not found"}

    def _rest_ticker(self, pair: str) -> dict[str, str]:
        result = self._result(pair, self.quotes[pair])
        change = result["change_percentage"]
        return {**result, "change_utc0": change, "change_utc8": change}

    @staticmethod
    def _pair(pair: str, quote: Quote) -> dict[str, Any]:
        return {
            "id": pair, "base": quote.base, "quote": quote.quote, "fee": "0.2", "min_base_amount": "0.00001",
            "min_quote_amount": "3", "amount_precision": 6, "precision": quote.scale, "trade_status": "tradable",
            "sell_start": 1516378650, "buy_start": 1516378650, "delisting_time": 0, "type": "normal",
            "st_tag": False,
        }
