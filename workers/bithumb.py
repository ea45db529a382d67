"""Bithumb (Korea): the public `ticker` type on the Upbit-style v1 socket.

Endpoints   wss://ws-api.bithumb.com/websocket/v1, https://api.bithumb.com/v1
            (the legacy wss://pubwss.bithumb.com/pub/ws and /public/... REST still
            answer, with another protocol: not used)
Subscribe   Upbit's request: one JSON array [{"ticket": <uuid>}, {"type": "ticker",
            "codes": [...]}, {"format": "DEFAULT"}], codes upper case QUOTE-BASE
            (KRW-BTC, BTC-ETH). A new request replaces the connection's whole
            subscription, so each connection sends its complete list once. No ack;
            unknown or lower-case codes are ignored silently.
            Snapshot flags: neither is sent. The default (one SNAPSHOT frame per code,
            then REALTIME) is what a collector wants, and it sidesteps a spelling
            conflict: the docs print is_only_snapshot/is_only_realtime, the wire
            honours only isOnlySnapshot/isOnlyRealtime. SNAPSHOT and REALTIME frames
            are both published as they come; their order is not guaranteed.
Limits      10 connects/s per IP (public and private together; 429, then a 10 min
            block); no published cap on codes per connection (493 in one worked).
Keepalive   the socket is dropped after 60 s without client traffic (docs: 120 s),
            with no close frame. RFC 6455 pings count; a text `PING` is answered with
            {"status":"UP"}, which then repeats every 10 s: a heartbeat that keeps the
            watchdog fed on connections whose markets are quiet. The server never pings.
Frames      binary (opcode 2) UTF-8 JSON, one object each. Every price and size is a
            JSON number, printed plain (493100, 0.01775026) and sometimes longer than a
            double holds (728107452.06423197609921044): kept as raw text. The SIMPLE
            format's abbreviated keys (tp, cd...) are read too, as Upbit's.
Errors      {"error":{"name":"WRONG_FORMAT","message":...}} (Korean text), then the
            server closes with 1000.
Ticker      Upbit's DEFAULT keys, but the day fields (opening_price, acc_*) reset at
            00:00 KST; *_24h are rolling. `timestamp` is the message time, ms UTC (true
            UTC on the socket). No best bid/ask in this type. delisting_date is null
            or "" (not read).
REST        /v1/ticker?markets=KRW-BTC,... at most 200 markets a call (more: HTTP 400;
            a long URL: 414); Upbit's calls of 100 fit. Errors come with HTTP 200 as
            {"error":{"name":404,"message":"Code not found"}}; one unknown code fails
            the whole call.
            Epoch fields may hold the KST wall clock (UTC + 9 h): seen on `timestamp`
            in 2026, on trade_timestamp only in 2025. A time hours ahead of its
            arrival is corrected by 9 h, see utc_epoch_ms.
            /v1/market/all for the market list (KRW and BTC quotes, no USDT).
            150 requests/s per IP per category.
"""

from itertools import chain

import msgspec

from shared import cli
from shared.book import BookFrame
from shared.numbers import NumberError, raw_plain_all_or_none
from shared.record import ExchangeError, Level, Ticker
from shared.venue import Market, comma_joined_urls
from workers import upbit

KST_AS_EPOCH_MS = 9 * 3_600_000
# The most levels a side the `orderbook` socket sends (a `.30` code suffix still gets 15).
BOOK_LEVELS = 15
# The socket stamps its books in µs (16 digits, 1790133505546514); an epoch in ms stays
# below this until the year 5138, one in µs is above it since 1973.
MICROSECOND_EPOCHS_FROM = 10**14


class RestError(msgspec.Struct):
    """A /v1 error, which Bithumb sends with HTTP 200."""

    error: upbit.ErrorBody


class BookUnit(msgspec.Struct):
    """One rank of `orderbook_units`: the ask and the bid at that rank, JSON numbers."""

    ask_price: msgspec.Raw
    bid_price: msgspec.Raw
    ask_size: msgspec.Raw
    bid_size: msgspec.Raw


class BookMessage(msgspec.Struct, tag_field="type", tag="orderbook"):
    """A DEFAULT-format `orderbook` frame: only the keys we use."""

    code: str
    orderbook_units: list[BookUnit]
    timestamp: int | None = None  # µs


# The SIMPLE format: the same frame with the docs' abbreviated keys.
SIMPLE_BOOK_KEYS = {"type": "ty", "code": "cd", "orderbook_units": "obu", "timestamp": "tms",
                    "ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs"}
SimpleBookUnit = msgspec.defstruct("SimpleBookUnit", [(field.name, field.type)
                                                      for field in msgspec.structs.fields(BookUnit)],
                                   rename=SIMPLE_BOOK_KEYS)
SimpleBookMessage = msgspec.defstruct(
    "SimpleBookMessage",
    [("code", str), ("orderbook_units", list[SimpleBookUnit]),  # type: ignore[valid-type]
     ("timestamp", int | None, None)],
    rename=SIMPLE_BOOK_KEYS, tag_field="ty", tag="orderbook")


class RestBook(msgspec.Struct):
    """One market of /v1/orderbook: the socket's units, `timestamp` in ms."""

    market: str
    timestamp: int
    orderbook_units: list[BookUnit]


def book_levels(units: list[BookUnit]) -> tuple[list[Level], list[Level]]:
    """(bids, asks) of the units, as sent, without the padding units' zero prices.

    A side shorter than the other is padded with price 0, size 0 (seen with `level`
    grouping); sizes below 0.0001 are printed 0 even at the touch, and are left for
    OrderBook.replace to drop as every zero size is.
    """
    texts = raw_plain_all_or_none(*chain.from_iterable(
        (unit.bid_price, unit.bid_size, unit.ask_price, unit.ask_size) for unit in units))
    if None in texts:
        raise NumberError("null price or size in orderbook_units")
    bids: list[Level] = []
    asks: list[Level] = []
    for index in range(0, len(texts), 4):
        bid_price, bid_size, ask_price, ask_size = texts[index:index + 4]
        if bid_price.strip("0."):  # type: ignore[union-attr]
            bids.append((bid_price, bid_size))  # type: ignore[arg-type]
        if ask_price.strip("0."):  # type: ignore[union-attr]
            asks.append((ask_price, ask_size))  # type: ignore[arg-type]
    return bids, asks


def book_epoch_ms(timestamp: int | None) -> int | None:
    """The socket's book time (µs) in ms; a time already in ms passes unchanged."""
    if timestamp is None or timestamp < MICROSECOND_EPOCHS_FROM:
        return timestamp
    return timestamp // 1000


def utc_epoch_ms(epoch_ms: int | None, received_ns: int) -> int | None:
    """`epoch_ms` as true UTC, from a REST field that may hold KST written as an epoch.

    A true time cannot be hours after the response arrived, so one more than half
    the offset ahead of arrival is the KST form: take 9 h off. A time still far
    ahead after that is not trusted at all (None), rather than published wrong.
    """
    if epoch_ms is None:
        return None
    limit_ms = received_ns // 1_000_000 + KST_AS_EPOCH_MS // 2
    if epoch_ms > limit_ms:
        epoch_ms -= KST_AS_EPOCH_MS
        if epoch_ms > limit_ms:
            return None
    return epoch_ms


class Bithumb(upbit.Upbit):
    """Upbit's frames, symbols and market list; Bithumb's limits, keepalive and REST."""

    name = "bithumb"
    # Kept from Upbit: 300 markets a connection (Bithumb publishes no cap), RFC 6455
    # pings every 20 s (they count against the 60 s idle rule), REST calls of 100
    # markets (inside Bithumb's cap of 200), "Code not found" for an unknown code (with
    # HTTP 200 here). The text PING goes out at the default 20 s; its answer starts the
    # 10 s status heartbeat.
    # Half the 10 connects/s per IP, leaving room for reconnects of other connections.
    connect_gap_s = 0.2

    _rest_error = msgspec.json.Decoder(RestError)
    _book_messages = msgspec.json.Decoder(BookMessage)
    _simple_book_messages = msgspec.json.Decoder(SimpleBookMessage)
    _rest_books = msgspec.json.Decoder(list[RestBook])

    def parse_book_frame(self, frame: bytes) -> BookFrame:
        """An `orderbook` frame, DEFAULT or SIMPLE: the whole book of one market."""
        simple = frame.startswith(b'{"ty":')
        message = (self._simple_book_messages if simple else self._book_messages).decode(frame)
        bids, asks = book_levels(message.orderbook_units)
        return BookFrame(message.code, bids, asks, None, book_epoch_ms(message.timestamp))

    def rest_book_urls(self, markets: list[Market], depth: int) -> list[str]:
        # 15 units a market when several are asked for, 30 for one: the socket's 15 either way.
        return comma_joined_urls(f"{self.rest_base}/v1/orderbook?markets=", markets, upbit.REST_MARKETS_PER_CALL)

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookFrame]:
        if body.lstrip()[:1] == b"{":
            error = self._rest_error.decode(body).error
            raise ExchangeError(f"{error.name}: {error.message}")
        return [BookFrame(book.market, *book_levels(book.orderbook_units), None,
                          utc_epoch_ms(book.timestamp, received_ns))
                for book in self._rest_books.decode(body)]

    def app_ping(self) -> str:
        return "PING"

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        if body.lstrip()[:1] == b"{":
            error = self._rest_error.decode(body).error
            raise ExchangeError(f"{error.name}: {error.message}")
        tickers = super().parse_rest_ticker(body, received_ns)
        for ticker in tickers:
            ticker.exchange_ts = utc_epoch_ms(ticker.exchange_ts, received_ns)
        return tickers


if __name__ == "__main__":
    cli.main(Bithumb)
