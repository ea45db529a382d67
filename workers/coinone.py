"""Coinone (Korea): the public `TICKER` and `ORDERBOOK` channels on the v1 public socket.

Endpoints   wss://stream.coinone.co.kr (no path), https://api.coinone.co.kr (Public API v2;
            v1 is deprecated)
Subscribe   one message per pair, no batching:
            {"request_type":"SUBSCRIBE","channel":"TICKER",
             "topic":{"quote_currency":"KRW","target_currency":"BTC"}}
            On open the server sends {"response_type":"CONNECTED",...}; each subscribe is
            acked by {"response_type":"SUBSCRIBED","channel":...,"data":<topic as sent>}.
            Subscriptions add up. request_type/channel must be upper case (else error
            160011); a pair it doesn't list is acked first and then answered by
            {"response_type":"ERROR","error_code":160012,"message":"Invalid Topic"}, which
            does not name the pair: validate against the market list instead.
Limits      20 connections per IP (the 21st is closed with code 4290). No cap on pairs per
            connection was published; all 363 KRW pairs were seen on one socket, so one
            connection carries every KRW pair. No message-rate limit is published; the
            subscribe burst is paced anyway.
Keepalive   the client sends {"request_type":"PING"} (answered by {"response_type":"PONG"})
            every 20 s; the server closes a connection 30 min after the last PING (a socket
            that never subscribed dies after ~60 s). The server sends no protocol pings and
            none is sent to it: the PONGs keep the silence watchdog fed on quiet pairs.
            "Connections may be closed when the socket is updated", with no announcement
            frame: a plain reconnect and resubscribe.
Ticker      {"response_type":"DATA","channel":"TICKER","data":{...}} in text frames. Every
            price and size is a JSON string; `timestamp` is a JSON number (ms). first/high/
            low are the UTC day per the docs (the REST ticker calls the same values 24 h);
            quote_volume/target_volume are the rolling 24 h. Best bid/ask prices are null on
            an empty side. The ticker is trade-driven: on subscribe the server repeats the
            current ticker (its timestamp may be ~10 s old), and a repeated subscribe repeats
            it again. `id` (ms timestamp + 3-digit counter, a digit string) grows with every
            update and is the same number on REST: a ticker whose id is not newer than the
            last one published for its pair is a repeat and is dropped.
            A subscribe with "format":"SHORT" gets 1-3 letter keys instead,
            {"r":"DATA","c":"TICKER","d":{"qc":"KRW","tc":"BTC","la":...}}: not asked for,
            but read, for captures made by other tools.
REST        /public/v2/ticker_new/KRW: every KRW pair in one ~117 KB call (currencies in
            lower case there, best_asks/best_bids one-level arrays, prices sometimes with a
            ".0" suffix); /public/v2/markets/KRW for the market list (KRW is the only quote
            market). Errors come back with HTTP 200 and {"result":"error",...}. 1,200
            requests/min per IP on v2 (an older docs page says 300/min: the gap between calls
            keeps under both).
Symbols     two fields, quote and target; raw_symbol here is "KRW/BTC", as in the REST
            paths, and the unified symbol is BTC-KRW.

Book        the ORDERBOOK channel, the only one: every frame is the whole book of one
            pair, 16 levels a side, sent on subscribe and on every change, so each frame
            replaces the book and a lost one is repaired by the next (book_resync
            "frames"); no checksum. book_depth 1-16. Subscribed as the ticker, one
            SUBSCRIBE a pair, on sockets of their own (the 20-per-IP budget holds: one
            book socket carries every KRW pair). Coinone's quirks:
            - `id` (ms + 3-digit counter, a string) is the update_id: "a larger id is a
              newer book", not consecutive, so no gap can be seen; a frame whose id is not
              above the last applied one is an older book (a repeat follows a repeated
              subscribe) and is skipped, counted in book_skipped (book_snapshot_ids_grow);
            - asks arrive worst first (bids best first): turned round;
            - the first frame's `timestamp` can be ~10 s older than its book, so the
              record's exchange_ts is the id's ms;
            - the SHORT format ("format":"SHORT", 1-letter keys) is read, not asked for.
Book REST   /public/v2/orderbook/KRW/{target}?size=N, one pair a call; N one of 5, 10,
            15, 16 (any other: error 107 under HTTP 200), the smallest that holds
            book_depth. Asks best first; `id` in the socket's id space (the same book at
            the same id), so an older REST book is skipped like an older frame.
"""

import json
from urllib.parse import urlsplit

import msgspec

from shared import cli
from shared.numbers import Number, plain, plain_all, plain_or_none
from shared.record import ExchangeError, FrameError, Source, Ticker
from shared.venue import BookMessage, Market, Venue

# The only quote market Coinone lists (USDT, BTC and USDC markets are empty).
LISTED_QUOTE = "KRW"
# The levels a side of every ORDERBOOK frame holds.
BOOK_LEVELS = 16
# The REST book's `size` values (default 15; any other is error 107, with HTTP 200).
BOOK_SIZES = (5, 10, 15, 16)
TRADE_STATUS_HALTED = 0  # markets list: 0 no trading, 1 trading, 2 no buy, 3 no sell


class TickerFields(msgspec.Struct):
    """What the socket's ticker and the REST ticker row have in common."""

    quote_currency: str
    target_currency: str
    timestamp: int
    id: str
    last: Number
    first: Number
    high: Number
    low: Number
    target_volume: Number
    quote_volume: Number


class TickerData(TickerFields):
    # null when that side of the book is empty
    ask_best_price: Number | None = None
    ask_best_qty: Number | None = None
    bid_best_price: Number | None = None
    bid_best_qty: Number | None = None


class DataFrame(msgspec.Struct, tag_field="response_type", tag="DATA"):
    channel: str
    data: TickerData


class ErrorFrame(msgspec.Struct, tag_field="response_type", tag="ERROR"):
    error_code: int
    message: str
    field: str | None = None

    def error(self) -> ExchangeError:
        field = f" ({self.field})" if self.field else ""
        return ExchangeError(f"error {self.error_code}: {self.message}{field}")


# Frames that carry nothing to publish: the greeting, acks and the keepalive answer.
class Connected(msgspec.Struct, tag_field="response_type", tag="CONNECTED"):
    pass


class Subscribed(msgspec.Struct, tag_field="response_type", tag="SUBSCRIBED"):
    pass


class Unsubscribed(msgspec.Struct, tag_field="response_type", tag="UNSUBSCRIBED"):
    pass


class Pong(msgspec.Struct, tag_field="response_type", tag="PONG"):
    pass


Frame = DataFrame | ErrorFrame | Connected | Subscribed | Unsubscribed | Pong


# The SHORT format: TickerData with these keys abbreviated (the docs' ticker table).
SHORT_KEYS = {"quote_currency": "qc", "target_currency": "tc", "timestamp": "t", "id": "i", "last": "la",
              "first": "fi", "high": "hi", "low": "lo", "target_volume": "tv", "quote_volume": "qv",
              "ask_best_price": "abp", "ask_best_qty": "abq", "bid_best_price": "bbp", "bid_best_qty": "bbq"}
ShortTicker = msgspec.defstruct("ShortTicker", [(field.name, field.type, field.default)
                                                for field in msgspec.structs.fields(TickerData)], rename=SHORT_KEYS)


class ShortDataFrame(msgspec.Struct, tag_field="r", tag="DATA"):
    c: str
    d: ShortTicker  # type: ignore[valid-type]


class Reply(msgspec.Struct):
    """The REST envelope; errors arrive with HTTP 200 and result "error"."""

    result: str
    error_code: str | int | None = None
    error_msg: str | None = None
    # The rate-limit page shows the error keys in camel case: accept both spellings.
    errorCode: str | int | None = None
    errorMsg: str | None = None

    def check(self) -> None:
        if self.result != "success":
            code = self.error_code if self.error_code is not None else self.errorCode
            raise ExchangeError(f"error {code}: {self.error_msg or self.errorMsg}")


# (price, size) at the best level of one side; (None, None) when that side is empty.
BestLevel = tuple[str | None, str | None]


class Level(msgspec.Struct):
    price: Number
    qty: Number


class RestTicker(TickerFields):
    best_asks: list[Level] = []
    best_bids: list[Level] = []


class BookData(msgspec.Struct):
    """The `data` of an ORDERBOOK frame: the whole book of one pair."""

    quote_currency: str
    target_currency: str
    id: str  # ms time + 3-digit counter: a larger id is a newer book (not consecutive)
    asks: list[Level]  # worst (highest) first on the socket, best first in REST
    bids: list[Level]  # best first


class BookDataFrame(msgspec.Struct, tag_field="response_type", tag="DATA"):
    channel: str
    data: BookData


# What a book socket receives: its books, and the same greeting, acks, pongs and errors.
BookSocketFrame = BookDataFrame | ErrorFrame | Connected | Subscribed | Unsubscribed | Pong


# The SHORT format of the ORDERBOOK frame (the docs' keys), read like the ticker's.
SHORT_BOOK_KEYS = {"quote_currency": "qc", "target_currency": "tc", "id": "i", "asks": "a", "bids": "b",
                   "price": "p", "qty": "q", "data": "d"}
ShortLevel = msgspec.defstruct("ShortLevel", [("price", Number), ("qty", Number)], rename=SHORT_BOOK_KEYS)
ShortBookData = msgspec.defstruct(
    "ShortBookData", [("quote_currency", str), ("target_currency", str), ("id", str),
                      ("asks", list[ShortLevel]), ("bids", list[ShortLevel])],  # type: ignore[valid-type]
    rename=SHORT_BOOK_KEYS)
ShortBookDataFrame = msgspec.defstruct("ShortBookDataFrame", [("data", ShortBookData)], rename=SHORT_BOOK_KEYS,
                                       tag_field="c", tag="ORDERBOOK")


class BookReply(Reply):
    """/public/v2/orderbook/{quote}/{target}: BookData's keys in the REST envelope (an
    error reply has none of them)."""

    quote_currency: str = ""
    target_currency: str = ""
    id: str = ""
    asks: list[Level] = []  # best first
    bids: list[Level] = []


def book_message(data: BookData | BookReply, asks_worst_first: bool) -> BookMessage:
    """The BookMessage of a socket or REST book.

    `id` is its update_id and, divided by 1000, its time: the `timestamp` of the first
    frame after a subscribe is ~10 s older than the book it comes with. The socket's
    asks are turned best first here; the book would sort them anyway, but a side that
    comes sorted costs it one comparison a level.
    """
    update_id = int(data.id)
    asks = [(level.price, level.qty) for level in data.asks]
    if asks_worst_first:
        asks.reverse()
    return BookMessage(f"{data.quote_currency}/{data.target_currency}", True,
                       [(level.price, level.qty) for level in data.bids], asks, update_id=update_id,
                       exchange_ts=update_id // 1000)


def _best(levels: list[Level]) -> BestLevel:
    """The one level REST sends per side, as a BestLevel."""
    if not levels:
        return None, None
    return plain(levels[0].price), plain(levels[0].qty)


class TickerReply(Reply):
    tickers: list[RestTicker] = []


class MarketInfo(msgspec.Struct):
    quote_currency: str
    target_currency: str
    trade_status: int


class MarketsReply(Reply):
    markets: list[MarketInfo] = []


class Coinone(Venue):
    name = "coinone"
    market_id_form = ("/", True)  # KRW/BTC, from quote_currency and target_currency
    # Every KRW pair (363 in 2026) on one socket, as probed; a second connection would only
    # spend the 20-per-IP budget, and the all-pairs REST fallback stands for one connection.
    markets_per_connection = 400
    protocol_ping_interval_s = None  # keepalive is the JSON PING, see app_ping
    app_ping_interval_s = 20.0
    subscribe_gap_s = 0.01  # 363 subscribes in ~4 s: modest, though bursts were accepted
    rest_min_interval_s = 0.2  # 300/min, the stricter of the two documented limits
    parse_repeatable = False  # a ticker id seen once is a repeat the second time (_is_new)
    book_depths = range(1, BOOK_LEVELS + 1)
    book_resync = "frames"
    book_snapshot_ids_grow = True
    book_rest_path = "/public/v2/orderbook"  # + /{quote}/{target}: see is_book_rest

    _frames = msgspec.json.Decoder(Frame)
    _short_frames = msgspec.json.Decoder(ShortDataFrame)
    _rest_tickers = msgspec.json.Decoder(TickerReply)
    # trade_status is documented as a number; strict=False also takes "1".
    _markets = msgspec.json.Decoder(MarketsReply, strict=False)
    _book_frames = msgspec.json.Decoder(BookSocketFrame)
    _short_book_frames = msgspec.json.Decoder(ShortBookDataFrame)
    _rest_books = msgspec.json.Decoder(BookReply)

    def __init__(self, ws_url: str, rest_url: str, book_ws_url: str | None = None) -> None:
        super().__init__(ws_url, rest_url, book_ws_url)
        # raw id -> id of the newest ticker published for it (see the docstring: repeats).
        self._newest_ids: dict[str, int] = {}

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{quote}/{base}", base=base, quote=quote)

    def app_ping(self) -> str:
        return '{"request_type":"PING"}'

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return self._subscribe_messages("TICKER", markets)

    def _subscribe_messages(self, channel: str, markets: list[Market]) -> list[str]:
        return [
            json.dumps({"request_type": "SUBSCRIBE", "channel": channel,
                        "topic": {"quote_currency": market.quote, "target_currency": market.base}})
            for market in markets
        ]

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return self._subscribe_messages("ORDERBOOK", markets)

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        """An ORDERBOOK frame, DEFAULT or SHORT, is the whole book of one pair."""
        if frame.startswith(b'{"r":'):
            return [book_message(self._short_book_frames.decode(frame).data, asks_worst_first=True)]
        message = self._book_frames.decode(frame)
        if type(message) is BookDataFrame:
            if message.channel != "ORDERBOOK":
                raise FrameError(f"data on channel {message.channel!r} on a book socket")
            return [book_message(message.data, asks_worst_first=True)]
        if type(message) is ErrorFrame:
            raise message.error()
        return []

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        """One call a pair, for the smallest size it takes that holds `depth` levels."""
        size = next(size for size in BOOK_SIZES if size >= depth)
        return [f"{self.rest_base}{self.book_rest_path}/{market.quote}/{market.base}?size={size}"
                for market in markets]

    def is_book_rest(self, url: str) -> bool:
        return urlsplit(url).path.startswith(f"{self.book_rest_path}/")

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        reply = self._rest_books.decode(body)
        reply.check()
        return [book_message(reply, asks_worst_first=False)]

    def _is_new(self, raw: str, ticker_id: str) -> bool:
        number = int(ticker_id)
        if number <= self._newest_ids.get(raw, -1):
            return False
        self._newest_ids[raw] = number
        return True

    def _ticker(self, fields: TickerFields, symbol: str, raw: str, bid: BestLevel, ask: BestLevel,
                received_ns: int, source: Source) -> Ticker:
        last, open_24h, high_24h, low_24h, volume_24h, quote_volume_24h = plain_all(
            fields.last, fields.first, fields.high, fields.low, fields.target_volume, fields.quote_volume)
        return Ticker(
            self.name, symbol, raw, last, bid[0], ask[0], bid[1], ask[1],
            open_24h, high_24h, low_24h, volume_24h, quote_volume_24h, fields.timestamp, received_ns, source,
        )

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        if frame.startswith(b'{"r":'):
            short = self._short_frames.decode(frame)
            return self._from_data(short.c, short.d, received_ns)
        message = self._frames.decode(frame)
        if type(message) is DataFrame:
            return self._from_data(message.channel, message.data, received_ns)
        if type(message) is ErrorFrame:
            raise message.error()
        return []

    def _from_data(self, channel: str, data: TickerData, received_ns: int) -> list[Ticker]:
        if channel != "TICKER":
            raise FrameError(f"data on channel {channel!r}, which is never subscribed")
        raw = f"{data.quote_currency}/{data.target_currency}"
        symbol = self.symbols[raw]
        if not self._is_new(raw, data.id):
            return []
        return [self._ticker(
            data, symbol, raw, (plain_or_none(data.bid_best_price), plain_or_none(data.bid_best_qty)),
            (plain_or_none(data.ask_best_price), plain_or_none(data.ask_best_qty)), received_ns, "ws",
        )]

    def market_list_url(self) -> str:
        return f"{self.rest_base}/public/v2/markets/{LISTED_QUOTE}"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        reply = self._markets.decode(body)
        reply.check()
        wanted = set(quotes)
        return [
            self.market(info.target_currency.upper(), info.quote_currency.upper())
            for info in reply.markets
            if info.quote_currency.upper() in wanted and info.trade_status != TRADE_STATUS_HALTED
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        # One call per quote returns every pair of that quote; rows of pairs this worker
        # does not collect are skipped by parse_rest_ticker.
        quotes = sorted({market.quote for market in markets})
        return [f"{self.rest_base}/public/v2/ticker_new/{quote}" for quote in quotes]

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        reply = self._rest_tickers.decode(body)
        reply.check()
        tickers = []
        for row in reply.tickers:
            raw = f"{row.quote_currency.upper()}/{row.target_currency.upper()}"
            symbol = self.symbols.get(raw)
            if symbol is None or not self._is_new(raw, row.id):
                continue
            tickers.append(self._ticker(row, symbol, raw, _best(row.best_bids), _best(row.best_asks),
                                        received_ns, "rest"))
        return tickers


if __name__ == "__main__":
    cli.main(Coinone)
