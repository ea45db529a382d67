"""Upbit as the simulator plays it: binary frames, one JSON-array request that replaces
the connection's whole subscription, DEFAULT-format tickers whose numbers are JSON
numbers printed like Java's BigDecimal (trailing zeros, 0E-8, 1.16539E8), error frames
followed by a close, and the /v1 REST endpoints.

Order books: type `orderbook` on the same socket and request (a request replaces both
subscriptions), each frame the whole book of one code, 30 units, prices printed like the
ticker's; REST /v1/orderbook?markets=...&count=N (simulator/books.py keeps the books).

Keepalive as probed on the wire: a socket with no traffic from its client (a message or
an RFC 6455 ping) for 60 s is dropped without a close frame, whatever it was sent; a
text PING is answered with {"status":"UP"}, repeated every 10 s, on a socket that has
not subscribed, and not at all on one that has (the docs promise the answer either way).
"""

import asyncio
import json
import time
import weakref
from decimal import Decimal
from typing import Any, Callable, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote, fixed, java_big_decimal


STATUS_UP = b'{"status":"UP"}'
STATUS_INTERVAL_S = 10.0
BOOK_UNITS = 30


class UpbitSim(ExchangeSim):
    name = "upbit"
    default_quote = "KRW"
    ws_paths = ("/websocket/v1",)
    binary_frames = True
    edge_kinds = ("plain_integers", "no_trade_in_24h")
    client_idle_timeout_s = 60.0
    client_pings_count = True
    # Whether a text PING is answered on a socket that has subscribed.
    pings_answered_when_subscribed: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status_heartbeats: dict[ServerConnection, asyncio.Task[None]] = {}
        self.subscribed_sockets: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self.book_feed = BookFeed(self)

    def market_id(self, base: str, quote: str) -> str:
        return f"{quote}-{base}"

    async def answer_ping(self, socket: ServerConnection) -> None:
        """{"status":"UP"} to a text PING, then every 10 s."""
        if socket in self.subscribed_sockets and not self.pings_answered_when_subscribed:
            return
        await socket.send(STATUS_UP)
        if socket not in self.status_heartbeats:
            self.status_heartbeats[socket] = asyncio.create_task(self._status_heartbeat(socket))

    async def _status_heartbeat(self, socket: ServerConnection) -> None:
        try:
            while True:
                await asyncio.sleep(STATUS_INTERVAL_S)
                if time.monotonic() >= self.faults.stalled.get(socket, 0.0):
                    await socket.send(STATUS_UP)
        except ConnectionClosed:
            pass
        finally:
            del self.status_heartbeats[socket]

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        if message in ("PING", b"PING"):
            await self.answer_ping(socket)
            return None
        try:
            request = json.loads(message)
        except ValueError:
            return await self._error(socket, "WRONG_FORMAT", "요청 형식이 올바르지 않습니다.")
        if not isinstance(request, list) or not request:
            return await self._error(socket, "WRONG_FORMAT", "요청 형식이 올바르지 않습니다.")
        if not any(isinstance(item, dict) and item.get("ticket") for item in request):
            return await self._error(socket, "NO_TICKET", "티켓이 존재하지 않거나, 유효하지 않습니다.")
        codes: list[str] = []
        book_codes: list[str] = []
        for item in request:
            if isinstance(item, dict) and "type" in item:
                if item["type"] not in ("ticker", "orderbook"):
                    return await self._error(socket, "INVALID_PARAM", "잘못된 요청입니다.")
                # Unknown or lower-case codes are ignored silently, as on the real socket.
                known = [code for code in item.get("codes", []) if code in self.quotes]
                if item["type"] == "ticker":
                    codes += known
                else:
                    book_codes += known
        # The request replaces the books too: their SNAPSHOT frames are queued first.
        if book_codes or self.book_feed.subscribed(socket):
            self.book_feed.subscribe(socket, book_codes, replace=True)
        # The new request replaces the previous subscription; send the snapshots first,
        # timed at each market's last change (a quiet market's is old).
        self.subscribed_sockets.add(socket)
        for code in codes:
            await self._send(socket, self._frame(code, self.quotes[code], self.quotes[code].changed_ms, "SNAPSHOT"))
        return codes

    async def _error(self, socket: ServerConnection, name: str, message: str) -> None:
        await socket.send(json.dumps({"error": {"name": name, "message": message}}, ensure_ascii=False).encode())
        await asyncio.sleep(0.15)
        await socket.close(1000)
        return None

    def _number(self, value: Decimal) -> str:
        # Fixed scale with trailing zeros, as every real ticker frame and REST body in the
        # samples prints these fields. The exponent form, which Upbit prints elsewhere
        # (0E-8 for a zero change, 1.16539E8 in books), is one of the rarer shapes: one
        # number in ten with them on (the tests' default), none in the benchmarks' load.
        if self.edge_shapes and self.rng.random() < 0.1:
            return java_big_decimal(value)
        return fixed(value)

    def _fields(self, code: str, quote: Quote, now_ms: int,
                number: Callable[[Decimal], str] | None = None) -> dict[str, str]:
        number = number or self._number
        last = quote.price()
        previous = quote.price(-40)
        return {
            "opening_price": number(previous), "high_price": number(quote.price(30)),
            "low_price": number(quote.price(-60)), "trade_price": number(last),
            "prev_closing_price": number(previous), "change": "RISE",
            "change_price": number(last - previous), "change_rate": "0.0000063211",
            "trade_volume": "0.00006321", "acc_trade_price": "95078733694.3792000000000000",
            "acc_trade_volume": fixed(quote.volume()),
        }

    def _frame(self, code: str, quote: Quote, now_ms: int, stream_type: str,
               number: Callable[[Decimal], str] | None = None, volumes_24h: tuple[str, str] | None = None) -> str:
        """A DEFAULT ticker; `number` prints the prices, volumes_24h replaces the 24 h
        (quote, base) volumes."""
        number = number or self._number
        fields = self._fields(code, quote, now_ms, number)
        volume = quote.volume()
        quote_volume_24h, volume_24h = volumes_24h or (number(volume * quote.price()), number(volume))
        # Numbers are written by hand: json.dumps would turn them into strings.
        return (
            f'{{"type":"ticker","code":"{code}","opening_price":{fields["opening_price"]},'
            f'"high_price":{fields["high_price"]},"low_price":{fields["low_price"]},'
            f'"trade_price":{fields["trade_price"]},"prev_closing_price":{fields["prev_closing_price"]},'
            f'"acc_trade_price":{fields["acc_trade_price"]},"change":"RISE",'
            f'"change_price":{fields["change_price"]},"signed_change_price":{fields["change_price"]},'
            f'"change_rate":0.0000063211,"signed_change_rate":0.0000063211,"ask_bid":"BID",'
            f'"trade_volume":0.00006321,"acc_trade_volume":{fields["acc_trade_volume"]},'
            f'"trade_date":"20250926","trade_time":"082645","trade_timestamp":{now_ms - 131},'
            f'"acc_ask_volume":341.67985038,"acc_bid_volume":258.34909014,'
            f'"highest_52_week_price":169900000.00000000,"highest_52_week_date":"2025-08-14",'
            f'"lowest_52_week_price":80635000.00000000,"lowest_52_week_date":"2024-10-10",'
            f'"market_state":"ACTIVE","is_trading_suspended":false,"delisting_date":null,'
            f'"market_warning":"NONE","timestamp":{now_ms},'
            f'"acc_trade_price_24h":{quote_volume_24h},'
            f'"acc_trade_volume_24h":{volume_24h},"stream_type":"{stream_type}"}}'
        )

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        return self._frame(market_id, quote, now_ms, "REALTIME")

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        if kind == "plain_integers":
            # Whole prices printed as plain integers (31883000): a market priced in whole won.
            market_id, quote = next(((code, other) for code, other in self.quotes.items() if other.scale == 0),
                                    (market_id, quote))
            return self._frame(market_id, quote, now_ms, "REALTIME", number=_plain_or_fixed)
        # no_trade_in_24h: the 24 h volumes of a market nobody traded, as 0 and 0E-8.
        return self._frame(market_id, quote, now_ms, "REALTIME", volumes_24h=("0E-8", "0"))

    def wrong_shape_frame(self) -> str:
        return '{"type":"ticker","code":"KRW-BTC","trade_price":{"nested":true}}'

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book(market_id, update, "SNAPSHOT", self._book_price(market_id))

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book(market_id, update, "REALTIME", self._book_price(market_id))

    def _book_price(self, market_id: str) -> Callable[[Decimal], str]:
        """How a market's book prices are printed, the same in every frame: whole-won
        prices as BigDecimal writes them on the wire (1.16539E8), others with 8 decimals."""
        return java_big_decimal if self.quotes[market_id].scale == 0 else fixed

    def _book(self, code: str, update: BookUpdate, stream_type: str | None,
              number: Callable[[Decimal], str], units: int = BOOK_UNITS) -> str:
        """A DEFAULT orderbook frame (stream_type None: a REST item); numbers written by
        hand as JSON numbers, a thin side padded with units of price 0."""
        bids, asks = update.view(units)
        rows = []
        for index in range(units):
            bid_price, bid_size = bids[index] if index < len(bids) else ("0", "0")
            ask_price, ask_size = asks[index] if index < len(asks) else ("0", "0")
            rows.append(f'{{"ask_price":{number(Decimal(ask_price))},"bid_price":{number(Decimal(bid_price))},'
                        f'"ask_size":{ask_size},"bid_size":{bid_size}}}')
        total_asks = sum((Decimal(size) for _, size in asks), Decimal(0))
        total_bids = sum((Decimal(size) for _, size in bids), Decimal(0))
        if stream_type is None:
            return (f'{{"market":"{code}","timestamp":{update.ts_ms},"total_ask_size":{total_asks},'
                    f'"total_bid_size":{total_bids},"orderbook_units":[{",".join(rows)}],"level":0}}')
        return (f'{{"type":"orderbook","code":"{code}","timestamp":{update.ts_ms},"total_ask_size":{total_asks},'
                f'"total_bid_size":{total_bids},"orderbook_units":[{",".join(rows)}],'
                f'"stream_type":"{stream_type}","level":0}}')

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/v1/orderbook":
            codes = query.get("markets", [""])[0].split(",")
            if any(code.upper() not in self.quotes for code in codes):
                return 404, {"error": {"name": 404, "message": "Code not found"}}
            units = min(int(query.get("count", [str(BOOK_UNITS)])[0]), BOOK_UNITS)
            return 200, "[" + ",".join(self._book(code.upper(), self.book_feed.rest_view(code.upper()), None,
                                                  _plain_or_fixed, units) for code in codes) + "]"
        if path == "/v1/market/all":
            return 200, [{"market": code, "korean_name": quote.base, "english_name": quote.base}
                         for code, quote in self.quotes.items()]
        if path == "/v1/ticker":
            codes = query.get("markets", [""])[0].split(",")
            if any(code.upper() not in self.quotes for code in codes):
                return 404, {"error": {"name": 404, "message": "Code not found"}}
            now_ms = int(time.time() * 1000)
            return 200, "[" + ",".join(self._rest_item(code.upper(), now_ms) for code in codes) + "]"
        return 404, {"error": {"name": 404, "message": "Not found"}}

    def _rest_item(self, code: str, now_ms: int) -> str:
        quote = self.quotes[code]
        fields = self._fields(code, quote, now_ms)
        volume = quote.volume()
        return (
            f'{{"market":"{code}","trade_date":"20250730","trade_time":"170315",'
            f'"trade_date_kst":"20250731","trade_time_kst":"020315","trade_timestamp":{now_ms - 37},'
            f'"opening_price":{fields["opening_price"]},"high_price":{fields["high_price"]},'
            f'"low_price":{fields["low_price"]},"trade_price":{fields["trade_price"]},'
            f'"prev_closing_price":{fields["prev_closing_price"]},"change":"RISE",'
            f'"change_price":{fields["change_price"]},"change_rate":0.0017283860,'
            f'"signed_change_price":{fields["change_price"]},"signed_change_rate":0.0017283860,'
            f'"trade_volume":0.02543652,"acc_trade_price":{fields["acc_trade_price"]},'
            f'"acc_trade_price_24h":{self._number(volume * quote.price())},'
            f'"acc_trade_volume":{fields["acc_trade_volume"]},"acc_trade_volume_24h":{self._number(volume)},'
            f'"highest_52_week_price":166800000.00000000,"highest_52_week_date":"2025-07-14",'
            f'"lowest_52_week_price":72100000.00000000,"lowest_52_week_date":"2024-08-05",'
            f'"timestamp":{now_ms}}}'
        )


def _plain_or_fixed(value: Decimal) -> str:
    """A whole number as a plain integer (31883000, 0), any other with 8 decimals."""
    return str(int(value)) if value == value.to_integral_value() else fixed(value)
