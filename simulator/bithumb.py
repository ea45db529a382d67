"""Bithumb as the simulator plays it: Upbit's v1 socket (binary frames, one JSON-array
request that replaces the connection's subscription, error frames followed by a close
with 1000) with Bithumb's own rules:

  - `isOnlySnapshot` / `isOnlyRealtime` are honoured in camelCase only; the
    snake_case spelling printed in the docs is ignored, as on the wire;
  - trade types are accepted (and not simulated), unknown types and empty codes are
    INVALID_PARAM, a request without a type is WRONG_FORMAT;
  - orderbook: the whole book of a code in every frame (simulator/books.py keeps it), 15
    units, `timestamp` in µs, a thin side padded with units of price 0; sizes printed
    plain (the true book's 8 decimals: Bithumb's 4, and its dust printed 0, are left to
    the unit tests on real frames); REST /v1/orderbook, 30 units for one market, 15
    a market for several;
  - a text PING is answered with {"status":"UP"}, which then repeats every 10 s, on a
    subscribed socket too;
  - a client that sent neither a message nor an RFC 6455 ping for 60 s is dropped
    without a close frame (Upbit's rule, the core's abort);
  - numbers are JSON numbers printed plain, without exponent or trailing zeros;
  - REST /v1/ticker takes at most 200 markets, answers an unknown code with an error
    under HTTP 200, and writes its epoch fields as KST wall clock (UTC + 9 h), as
    seen on the wire in 2026.
"""

import json
import time
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from websockets.asyncio.server import ServerConnection

from simulator import upbit
from simulator.books import BookUpdate, Level
from simulator.core import Quote

KST_AS_EPOCH_MS = 9 * 3_600_000
# Units an orderbook frame holds, and a REST book of several markets; one market's REST book holds 30.
BOOK_UNITS = 15
REST_BOOK_UNITS_ONE_MARKET = 30
REST_MARKETS_PER_CALL = 200
# Types the real socket accepts; ticker and orderbook are simulated.
KNOWN_TYPES = ("ticker", "trade", "orderbook")
# Key order of a real DEFAULT ticker frame and of a real /v1/ticker item.
WS_TICKER_KEYS = (
    "type", "code", "opening_price", "high_price", "low_price", "trade_price", "prev_closing_price",
    "change", "change_price", "signed_change_price", "change_rate", "signed_change_rate", "trade_volume",
    "acc_trade_volume", "acc_trade_volume_24h", "acc_trade_price", "acc_trade_price_24h", "trade_date",
    "trade_time", "trade_timestamp", "ask_bid", "acc_ask_volume", "acc_bid_volume", "highest_52_week_price",
    "highest_52_week_date", "lowest_52_week_price", "lowest_52_week_date", "market_state",
    "is_trading_suspended", "delisting_date", "market_warning", "timestamp", "stream_type",
)
REST_TICKER_KEYS = (
    "market", "trade_date", "trade_time", "trade_date_kst", "trade_time_kst", "trade_timestamp",
    "opening_price", "high_price", "low_price", "trade_price", "prev_closing_price", "change", "change_price",
    "change_rate", "signed_change_price", "signed_change_rate", "trade_volume", "acc_trade_price",
    "acc_trade_price_24h", "acc_trade_volume", "acc_trade_volume_24h", "highest_52_week_price",
    "highest_52_week_date", "lowest_52_week_price", "lowest_52_week_date", "timestamp",
)
WRONG_FORMAT = "Format 이 맞지 않습니다."
NO_TICKET = "티켓이 존재하지 않거나, 유효하지 않습니다."


def plain_number(value: Decimal) -> str:
    """A JSON number as Bithumb prints it: 493100, 3.2529, 8227950466.316009."""
    return format(value.normalize(), "f")


def json_object(fields: dict[str, str], keys: tuple[str, ...]) -> str:
    """A JSON object of already-encoded values in the exchange's key order.

    Numbers are written as printed: json.dumps would turn them into strings.
    """
    return "{" + ",".join(f'"{key}":{fields[key]}' for key in keys) + "}"


def _book_body(bids: list[Level], asks: list[Level]) -> str:
    """The totals and `orderbook_units` of a book: JSON numbers printed plain, asks and
    bids paired rank by rank, the shorter side padded with units of price 0."""
    empty = ("0", "0")
    units = ",".join(
        f'{{"ask_price":{_plain(ask[0])},"bid_price":{_plain(bid[0])},'
        f'"ask_size":{_plain(ask[1])},"bid_size":{_plain(bid[1])}}}'
        for ask, bid in zip_longest(asks, bids, fillvalue=empty))
    total_ask, total_bid = (plain_number(sum((Decimal(size) for _, size in side), Decimal(0))) for side in (asks, bids))
    return f'"total_ask_size":{total_ask},"total_bid_size":{total_bid},"orderbook_units":[{units}]'


def _plain(text: str) -> str:
    """A level's text (simulator/books.py's fixed decimals) printed plain, as
    plain_number prints it, without a Decimal for each of a frame's sixty numbers."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def date_and_time(epoch_ms: int) -> tuple[str, str]:
    """("yyyyMMdd", "HHmmss") of an epoch read as UTC."""
    moment = time.gmtime(epoch_ms // 1000)
    return time.strftime("%Y%m%d", moment), time.strftime("%H%M%S", moment)


class BithumbSim(upbit.UpbitSim):
    name = "bithumb"
    default_quote = "KRW"
    pings_answered_when_subscribed = True
    edge_kinds = ()  # its numbers are printed plain already (493100, 0.01775026)

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        if message in ("PING", b"PING"):
            await self.answer_ping(socket)
            return None
        try:
            request = json.loads(message)
        except ValueError:
            return await self._error(socket, "WRONG_FORMAT", WRONG_FORMAT)
        if not isinstance(request, list) or not request or not all(isinstance(item, dict) for item in request):
            return await self._error(socket, "WRONG_FORMAT", WRONG_FORMAT)
        if not any(item.get("ticket") for item in request):
            return await self._error(socket, "NO_TICKET", NO_TICKET)
        types = [item for item in request if "type" in item]
        if not types:
            return await self._error(socket, "WRONG_FORMAT", WRONG_FORMAT)
        codes: list[str] = []
        book_codes: list[str] = []
        only_snapshot = only_realtime = False
        for item in types:
            if item["type"] not in KNOWN_TYPES:
                unsupported = f"{item['type']} 은 지원하지 않는 타입입니다."
                return await self._error(socket, "INVALID_PARAM", unsupported)
            if not item.get("codes"):
                return await self._error(socket, "INVALID_PARAM", "codes 필드가 비어 있습니다.")
            if item["type"] == "ticker":
                # Unknown, lower-case or BASE_QUOTE codes are ignored silently.
                codes += [code for code in item["codes"] if code in self.quotes]
                only_snapshot = item.get("isOnlySnapshot") is True
                only_realtime = item.get("isOnlyRealtime") is True
            elif item["type"] == "orderbook":
                book_codes += [code for code in item["codes"] if code in self.quotes]
        # The request replaces the socket's books too: their SNAPSHOT frames are queued first.
        if book_codes or self.book_feed.subscribed(socket):
            self.book_feed.subscribe(socket, book_codes, replace=True)
        if not only_realtime:
            # Timed at each market's last change, as Upbit's.
            for code in codes:
                await self._send(socket, self._frame(code, self.quotes[code], self.quotes[code].changed_ms, "SNAPSHOT"))
        # The request replaces the previous subscription.
        return [] if only_snapshot else codes

    def _common_fields(self, quote: Quote) -> dict[str, str]:
        """JSON texts of the fields the socket and REST tickers share."""
        last = quote.price()
        previous = quote.price(-40)
        volume = quote.volume()
        change = plain_number(last - previous)  # 40 ticks: a rising market
        rate = plain_number(((last - previous) / previous).quantize(Decimal("1E-8")))
        return {
            "opening_price": plain_number(previous), "high_price": plain_number(quote.price(30)),
            "low_price": plain_number(quote.price(-60)), "trade_price": plain_number(last),
            "prev_closing_price": plain_number(previous), "change": '"RISE"',
            "change_price": change, "signed_change_price": change,
            "change_rate": rate, "signed_change_rate": rate, "trade_volume": "3.2529",
            "acc_trade_volume": plain_number(volume.scaleb(-1)), "acc_trade_volume_24h": plain_number(volume),
            "acc_trade_price": plain_number(volume.scaleb(-1) * previous),
            # Up to 16 decimals: more digits than a double holds, as on the wire.
            "acc_trade_price_24h": plain_number(volume * last),
            "highest_52_week_price": plain_number(quote.price(quote.ticks)),
            "highest_52_week_date": '"2026-06-18"',
            "lowest_52_week_price": plain_number(quote.price(-(quote.ticks // 2))),
            "lowest_52_week_date": '"2025-10-10"',
        }

    def _frame(self, code: str, quote: Quote, now_ms: int, stream_type: str) -> str:
        fields = self._common_fields(quote)
        trade_ms = now_ms - 113
        # The socket's trade_date/trade_time are KST; its epochs are true UTC.
        trade_date, trade_time = date_and_time(trade_ms + KST_AS_EPOCH_MS)
        fields.update(
            type='"ticker"', code=f'"{code}"', trade_date=f'"{trade_date}"', trade_time=f'"{trade_time}"',
            trade_timestamp=str(trade_ms), timestamp=str(now_ms), stream_type=f'"{stream_type}"',
            ask_bid='"BID"', acc_ask_volume="106.7561", acc_bid_volume="113.2886", market_state='"ACTIVE"',
            is_trading_suspended="false", delisting_date='""', market_warning='"NONE"',
        )
        return json_object(fields, WS_TICKER_KEYS)

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book_frame(market_id, update, "SNAPSHOT")

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        return self._book_frame(market_id, update, "REALTIME")

    def _book_frame(self, code: str, update: BookUpdate, stream_type: str) -> str:
        """An `orderbook` frame: 15 units, the time in µs."""
        timestamp_us = update.ts_ms * 1000 + update.update_id % 1000
        return ('{"type":"orderbook","code":"%s",%s,"level":1,"timestamp":%d,"stream_type":"%s"}'
                % (code, _book_body(*update.view(BOOK_UNITS)), timestamp_us, stream_type))

    def _rest_books(self, codes: list[str]) -> str:
        """/v1/orderbook: one item a market, 30 units for one market and 15 for several,
        `timestamp` in ms."""
        units = REST_BOOK_UNITS_ONE_MARKET if len(codes) == 1 else BOOK_UNITS
        views = [(code, self.book_feed.rest_view(code)) for code in codes]
        return "[" + ",".join('{"market":"%s","timestamp":%d,%s}'
                              % (code, update.ts_ms, _book_body(*update.view(units))) for code, update in views) + "]"

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/v1/market/all":
            details = query.get("isDetails", ["false"])[0] == "true"
            return 200, [{"market": code, "korean_name": quote.base, "english_name": quote.base,
                          **({"market_warning": "NONE"} if details else {})}
                         for code, quote in self.quotes.items()]
        if path == "/v1/orderbook":
            codes = [code.upper() for code in query.get("markets", [""])[0].split(",")]
            if any(code not in self.quotes for code in codes):
                return 200, {"error": {"name": 404, "message": "Code not found"}}
            return 200, self._rest_books(codes)
        if path == "/v1/ticker":
            if "markets" not in query:
                return 200, {"error": {"name": 400, "message": "Missing request parameter: markets"}}
            # The REST API, unlike the socket, accepts lower-case codes.
            codes = [code.upper() for code in query["markets"][0].split(",")]
            if len(codes) > REST_MARKETS_PER_CALL:
                return 400, {"error": {"name": 400, "message":
                                       "Parameter 'markets' must be less than or equal to 200 items."}}
            if any(code not in self.quotes for code in codes):
                return 200, {"error": {"name": 404, "message": "Code not found"}}
            now_ms = int(time.time() * 1000)
            return 200, "[" + ",".join(self._rest_item(code, now_ms) for code in codes) + "]"
        return 404, {"name": "not_found", "message": "Not Found"}

    def _rest_item(self, code: str, now_ms: int) -> str:
        fields = self._common_fields(self.quotes[code])
        trade_ms = now_ms - 37
        trade_date, trade_time = date_and_time(trade_ms)
        trade_date_kst, trade_time_kst = date_and_time(trade_ms + KST_AS_EPOCH_MS)
        # trade_date/trade_time are UTC here, and both epochs carry the KST shift.
        fields.update(
            market=f'"{code}"', trade_date=f'"{trade_date}"', trade_time=f'"{trade_time}"',
            trade_date_kst=f'"{trade_date_kst}"', trade_time_kst=f'"{trade_time_kst}"',
            trade_timestamp=str(trade_ms + KST_AS_EPOCH_MS), timestamp=str(now_ms + KST_AS_EPOCH_MS),
        )
        return json_object(fields, REST_TICKER_KEYS)
