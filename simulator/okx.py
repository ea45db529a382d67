"""OKX Spot (API v5) as the simulator plays it: {"op":"subscribe"} requests with one arg
per instrument and one ack per arg, 60012/60018/60014 error frames, the text `ping` ->
`pong` keepalive with sockets silent both ways for 30 s closed with 4004, `tickers` pushes whose
numbers are JSON strings printed without trailing zeros (30236, 525802090.62716611) and
`ts` a string too, the 64008 service-upgrade notice on demand (/_sim/notice), and the
/api/v5 REST endpoints with their {"code","msg","data"} envelope. /_sim/stats also counts
subscribe requests (`subscribe_requests`), which OKX budgets at 480 per hour per connection.

Order books: channel `books` (a snapshot on subscribe, then updates with seqId,
prevSeqId and the CRC32 checksum of the top 25, computed here as OKX documents it) and
REST /api/v5/market/books; simulator/books.py keeps the books.

The 30 s rule counts traffic either way, so a client that never pings keeps a busy
socket and loses a quiet one, as on OKX.
"""

import json
import time
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from websockets.asyncio.server import ServerConnection

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote

CHANNEL = "tickers"
BOOK_CHANNEL = "books"
CHECKSUM_LEVELS = 25
SUBSCRIBE_REQUESTS_PER_HOUR = 480


def _okx_number(value: Decimal) -> str:
    """OKX prints decimals without trailing zeros and never with an exponent."""
    return format(value.normalize(), "f")


def _compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


@dataclass
class Session:
    """One connection's state on the server side."""

    conn_id: str
    markets: list[str] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)


class OkxSim(ExchangeSim):
    name = "okx"
    default_quote = "USDT"
    ws_paths = ("/ws/v5/public",)
    edge_kinds = ("empty_book",)
    # "No subscription established or no data pushed for 30 s" (the docs): the server's
    # own pushes count, a pong to the text ping among them; RFC 6455 pings do not
    # (OKX does not answer them reliably).
    client_idle_timeout_s = 30.0
    server_pushes_count = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: WeakKeyDictionary[ServerConnection, Session] = WeakKeyDictionary()
        self.subscribe_requests = 0
        self.book_feed = BookFeed(self)

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}-{quote}"

    def _session(self, socket: ServerConnection) -> Session:
        if socket not in self.sessions:
            self.sessions[socket] = Session(conn_id=f"{id(socket) & 0xFFFFFFFF:08x}")
        return self.sessions[socket]

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        if message == "ping":
            await socket.send("pong")
            return None
        session = self._session(socket)
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        try:
            request = json.loads(text)
            op, args = request["op"], request["args"]
        except (ValueError, KeyError, TypeError):
            await self._error(socket, session, {}, "60012", f"Invalid request: {text}")
            return None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            await self._error(socket, session, request, "60012", f"Invalid request: {text}")
            return None
        self.subscribe_requests += 1
        now = time.monotonic()
        session.request_times = [at for at in session.request_times if now - at < 3600] + [now]
        if len(session.request_times) > SUBSCRIBE_REQUESTS_PER_HOUR:
            await self._error(socket, session, request, "60014", "Requests too frequent.")
            return None
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            market_id = arg.get("instId") if isinstance(arg, dict) else None
            if channel not in (CHANNEL, BOOK_CHANNEL) or market_id not in self.quotes:
                await self._error(socket, session, request, "60018",
                                  f"channel:{channel},instId:{market_id} doesn't exist")
                continue
            ack = _compact(self._with_id(request, {
                "event": op, "arg": {"channel": channel, "instId": market_id}, "connId": session.conn_id}))
            if channel == BOOK_CHANNEL:
                # The ack, then the snapshot, then the updates, in that order.
                await socket.send(ack)
                if op == "subscribe":
                    self.book_feed.subscribe(socket, [market_id])
                else:
                    self.book_feed.unsubscribe(socket, [market_id])
                continue
            # Subscribing twice acks twice but never doubles the data.
            if op == "subscribe" and market_id not in session.markets:
                session.markets.append(market_id)
            elif op == "unsubscribe" and market_id in session.markets:
                session.markets.remove(market_id)
            await socket.send(ack)
        return session.markets

    @staticmethod
    def _with_id(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        """Replies carry the request's `id` first, and only when it had one."""
        return {"id": request["id"], **reply} if "id" in request else reply

    async def _error(self, socket: ServerConnection, session: Session, request: dict[str, Any],
                     code: str, message: str) -> None:
        await socket.send(_compact(self._with_id(
            request, {"event": "error", "code": code, "msg": message, "connId": session.conn_id})))

    async def close_idle(self, socket: ServerConnection) -> None:
        await socket.close(4004, "No data received in 30s")

    async def _control(self, command: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if command == "stats":
            # Subscribe requests, for holding clients to the per-connection request budget.
            return await super()._control(command, query) | {"subscribe_requests": self.subscribe_requests}
        if command != "notice":
            return await super()._control(command, query)
        # The service-upgrade notice OKX sends about 60 s before it drops the sockets.
        for socket in list(self.sockets):
            await socket.send(_compact({
                "event": "notice", "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": self._session(socket).conn_id}))
        return {"ok": "notice", "sockets": len(self.sockets)}

    def _fields(self, market_id: str, quote: Quote, now_ms: int) -> dict[str, str]:
        last = quote.price()
        volume = quote.volume()
        return {
            "instType": "SPOT", "instId": market_id, "last": _okx_number(last), "lastSz": "0.0002",
            "askPx": _okx_number(quote.price(1)), "askSz": "1.55896972",
            "bidPx": _okx_number(last), "bidSz": "0.23393",
            "open24h": _okx_number(quote.price(-40)), "high24h": _okx_number(quote.price(30)),
            "low24h": _okx_number(quote.price(-60)), "sodUtc0": _okx_number(quote.price(-20)),
            "sodUtc8": _okx_number(quote.price(-10)), "volCcy24h": _okx_number(volume * last),
            "vol24h": _okx_number(volume), "ts": str(now_ms),
        }

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        # Key order as in the 2022 capture: ts last.
        return _compact({"arg": {"channel": CHANNEL, "instId": market_id},
                         "data": [self._fields(market_id, quote, now_ms)]})

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        # empty_book: "" for the best prices and sizes (the docs' pre-open or empty book).
        fields = self._fields(market_id, quote, now_ms) | {"askPx": "", "askSz": "", "bidPx": "", "bidSz": ""}
        return _compact({"arg": {"channel": CHANNEL, "instId": market_id}, "data": [fields]})

    def wrong_shape_frame(self) -> str:
        # A push whose price is a JSON number and whose other fields are missing.
        return '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":30236}]}'

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        bids, asks = update.view(400)
        return self._book_push(market_id, "snapshot", bids, asks, update, -1)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        bids = [(price, size) for side, price, size in update.changes if side == "bid"]
        asks = [(price, size) for side, price, size in update.changes if side == "ask"]
        return self._book_push(market_id, "update", bids, asks, update, update.first_id - 1)

    def _book_push(self, market_id: str, action: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                   update: BookUpdate, previous_id: int) -> str:
        checksum = _checksum(*update.view(CHECKSUM_LEVELS))
        if update.wrong_checksum:
            checksum = checksum + 1 if checksum < 2**31 - 1 else checksum - 1
        return _compact({"arg": {"channel": BOOK_CHANNEL, "instId": market_id}, "action": action, "data": [{
            "asks": _book_levels(asks), "bids": _book_levels(bids), "ts": str(update.ts_ms),
            "checksum": checksum, "prevSeqId": previous_id, "seqId": update.update_id}]})

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/v5/market/books":
            market_id = query.get("instId", [""])[0]
            if market_id not in self.quotes:
                return 200, _envelope("51001", "Instrument ID doesn't exist.", [])
            update = self.book_feed.rest_view(market_id)
            bids, asks = update.view(int(query.get("sz", ["1"])[0]))
            return 200, _envelope("0", "", [{"asks": _book_levels(asks), "bids": _book_levels(bids),
                                             "ts": str(update.ts_ms)}])
        if path not in ("/api/v5/market/tickers", "/api/v5/market/ticker", "/api/v5/public/instruments"):
            return 404, {"msg": "Not Found", "code": "404"}
        if path == "/api/v5/market/ticker":
            market_ids = query.get("instId", [])
            if len(market_ids) != 1 or market_ids[0] not in self.quotes:
                return 200, _envelope("51001", "Instrument ID doesn't exist.", [])
        elif query.get("instType") != ["SPOT"]:
            return 400, _envelope("51000", "Parameter instType error", [])
        else:
            market_ids = list(self.quotes)
        if path == "/api/v5/public/instruments":
            return 200, _envelope("0", "", [self._instrument(market_id) for market_id in market_ids])
        now_ms = int(time.time() * 1000)
        return 200, _envelope("0", "", [self._rest_ticker(market_id, now_ms) for market_id in market_ids])

    def _rest_ticker(self, market_id: str, now_ms: int) -> dict[str, str]:
        fields = self._fields(market_id, self.quotes[market_id], now_ms)
        # Key order as in the 2023 REST capture: ts before sodUtc0/sodUtc8.
        sod = {key: fields.pop(key) for key in ("sodUtc0", "sodUtc8")}
        return {**fields, **sod}

    def _instrument(self, market_id: str) -> dict[str, Any]:
        quote = self.quotes[market_id]
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": quote.base, "category": "1", "ctMult": "",
            "ctType": "", "ctVal": "", "ctValCcy": "", "contTdSwTime": "", "expTime": "",
            "futureSettlement": False, "instFamily": "", "instId": market_id, "instType": "SPOT",
            "lever": "10", "listTime": "1606468572000", "lotSz": "0.00000001",
            "maxIcebergSz": "9999999999.0000000000000000", "maxLmtAmt": "1000000", "maxLmtSz": "9999999999",
            "maxMktAmt": "1000000", "maxMktSz": "", "maxStopSz": "",
            "maxTriggerSz": "9999999999.0000000000000000", "maxTwapSz": "9999999999.0000000000000000",
            "minSz": "0.00001", "optType": "", "openType": "call_auction", "quoteCcy": quote.quote,
            "tradeQuoteCcyList": [quote.quote], "settleCcy": "", "state": "live", "ruleType": "normal",
            "stk": "", "tickSz": _okx_number(Decimal(1).scaleb(-quote.scale)), "uly": "",
            "instIdCode": 1_000_000_000 + list(self.quotes).index(market_id),
        }


def _book_levels(levels: list[tuple[str, str]]) -> list[list[str]]:
    """[price, size, "0", orders], numbers as OKX prints them; a deleted level's size is "0"."""
    return [[_okx_number(Decimal(price)), _okx_number(Decimal(size)), "0", "1" if Decimal(size) else "0"]
            for price, size in levels]


def _checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's book checksum as its docs state it: bid1px:bid1sz:ask1px:ask1sz:... over the
    first 25 of each side as printed, a side's missing levels skipped; CRC32, signed."""
    parts: list[str] = []
    for index in range(CHECKSUM_LEVELS):
        for side in (bids, asks):
            if index < len(side):
                price, size = side[index]
                parts += [_okx_number(Decimal(price)), _okx_number(Decimal(size))]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def _envelope(code: str, message: str, data: list[Any]) -> dict[str, Any]:
    return {"code": code, "msg": message, "data": data}
