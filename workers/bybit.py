"""Bybit Spot (API v5): the public `tickers.{symbol}` and `orderbook.{N}.{symbol}` topics.

Endpoints   wss://stream.bybit.com/v5/public/spot, https://api.bybit.com
Subscribe   {"op":"subscribe","args":["tickers.BTCUSDT",...]}; spot takes at most 10
            args per request (more: {"success":false,"ret_msg":"args size >10"}), and a
            failed request fails as a whole. One ack per request:
            {"success":true,"ret_msg":"subscribe","conn_id":...,"op":"subscribe"}
            (req_id and conn_id are present only sometimes).
Limits      the args of one connection may total 21,000 characters (~1,000 topics);
            500 new connections per 5 min per IP; 1,000 spot connections per IP.
Keepalive   the client sends {"op":"ping"} every 20 s; spot answers
            {"success":true,"ret_msg":"pong","op":"ping"} (other markets answer with
            "op":"pong", older servers {"pong":<ms>}: all three are accepted). A socket
            with neither pings nor data is cut after ~10 min.
Ticker      {"topic":"tickers.BTCUSDT","ts":<ms>,"type":"snapshot","cs":<seq>,"data":{...}};
            spot sends full snapshots only, every 50 ms while the market moves. Prices
            and volumes are JSON strings; ts (the frame's generation time) is a number.
            prevPrice24h (the price 24 h ago) is the rolling open; volume24h is in the
            base coin, turnover24h in the quote coin. There is no best bid/ask in the
            spot ticker, so those stay null. The docs call `data` an array; every spot
            payload seen is an object, and both are accepted.
REST        /v5/market/tickers?category=spot without `symbol` returns every spot market
            in one call (bid1/ask1 included), which beats one call per symbol under the
            600 requests per 5 s per IP budget; markets this worker does not collect are
            skipped (so while one connection falls back, its poll refreshes the other
            connections' markets too). /v5/market/instruments-info?category=spot is the market list (no
            pagination on spot; base/quote are not derivable from BTCUSDC vs BTCUSDE).
            Errors come back as HTTP 200 with a non-zero retCode.
Book        `orderbook.{N}.{symbol}`, the docs' recommended book: a snapshot, then
            deltas. N is the smallest of 50, 200 and 1000 that holds book_depth: 50
            (pushed every 20 ms) unless more is asked (200 every 100 ms, 1000 every
            200 ms); `orderbook.1` sends snapshots only and cannot serve a depth.
            {"topic":"orderbook.50.BTCUSDT","ts":<ms>,"type":"snapshot"|"delta",
            "data":{"s","b","a","u","seq"},"cts":<ms>}: spot writes `ts` before `type`
            (keys are read by name); levels are [price, size] strings without padding,
            a size "0" (or "0.0") deletes, and a delete of a price the book does not
            hold is harmless. The first push after a subscribe is a snapshot, and it
            may come before the ack. A snapshot may come again at any time (Bybit resets
            a book after an internal problem, with `u` 1 after a service restart): it
            always replaces the book. `data.u` numbers the topic's pushes: a delta's is
            the last one's + 1 (the samples show it and client libraries rely on it;
            the WS page does not say so, the REST page calls it "always in sequence"),
            anything else is a gap. There is no checksum and no resend: a lost book is
            rebuilt by unsubscribing its topic and subscribing it again, which brings
            a new snapshot (a topic subscribed twice is refused with "error:already
            subscribed,topic:..." and goes on without one). The book keeps N levels a
            side: a level that leaves the window needs no delete. exchange_ts is `ts`
            (`cts`, the matching engine's time, is missing from some pushes). Books
            have sockets of their own, 100 markets each (a busy topic pushes 50 frames
            a second).
REST book   /v5/market/orderbook?category=spot&symbol=X&limit=N (1..1000, one symbol a
            call): {"result":{"s","a","b","ts","u","seq","cts"}}. Its `u` is the
            1000-level stream's, so it cannot seed an orderbook.50 book: the REST book
            serves the fallback only, and its records carry no update_id. A stream change
            after it (a silent socket speaking again) loses the book: resubscribed.
"""

import json
from typing import Generic, TypeVar

import msgspec

from shared import cli
from shared.numbers import Number, plain_all_unless_empty, plain_unless_empty
from shared.record import ExchangeError, FrameError, Source, Ticker
from shared.venue import BookMessage, Market, Venue

ARGS_PER_SUBSCRIBE = 10  # the spot cap
# The spot book streams that send a snapshot and then deltas, by their levels a side.
BOOK_STREAM_LEVELS = (50, 200, 1000)


class TickerData(msgspec.Struct):
    symbol: str
    lastPrice: Number
    prevPrice24h: Number
    highPrice24h: Number
    lowPrice24h: Number
    volume24h: Number
    turnover24h: Number


Data = TypeVar("Data")


class Frame(msgspec.Struct, Generic[Data]):
    """A push (ticker or book), an ack, a pong or an error: only the keys we use."""

    ts: int | None = None
    data: Data | None = None
    type: str | None = None  # a book push: "snapshot" or "delta"
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None
    pong: int | str | None = None  # legacy {"pong":<ms>}, seen both ways


Level = tuple[Number, Number]  # [price, size]


class BookData(msgspec.Struct):
    s: str
    b: list[Level]
    a: list[Level]
    u: int


class RestBook(msgspec.Struct):
    # An error answer carries "result":{}, hence the defaults.
    s: str = ""
    b: list[Level] = []
    a: list[Level] = []
    ts: int | None = None


class RestTicker(TickerData):
    bid1Price: Number = ""
    bid1Size: Number = ""
    ask1Price: Number = ""
    ask1Size: Number = ""


class Instrument(msgspec.Struct):
    symbol: str
    baseCoin: str
    quoteCoin: str
    status: str


Item = TypeVar("Item")


class ListResult(msgspec.Struct, Generic[Item]):
    # An error answer carries "result":{}, hence the default.
    items: list[Item] = msgspec.field(name="list", default_factory=list)


class Envelope(msgspec.Struct, Generic[Item]):
    retCode: int
    retMsg: str
    result: Item
    time: int | None = None

    def checked(self) -> Item:
        if self.retCode != 0:
            raise ExchangeError(f"retCode {self.retCode}: {self.retMsg}")
        return self.result


class Bybit(Venue):
    name = "bybit"
    # 500 topics of up to ~27 characters stay under the 21,000-character args budget.
    markets_per_connection = 500
    protocol_ping_interval_s = 20.0  # allowed, and catches a dead peer between app pings
    app_ping_interval_s = 20.0
    connect_gap_s = 0.6  # 500 connects per 5 min per IP, sustained
    book_depths = range(1, BOOK_STREAM_LEVELS[-1] + 1)
    book_resync = "resubscribe"
    book_rest_path = "/v5/market/orderbook"
    # A busy orderbook.50 topic pushes up to 50 frames a second.
    book_markets_per_connection = 100

    _frames = msgspec.json.Decoder(Frame[TickerData | list[TickerData]])
    _book_frames = msgspec.json.Decoder(Frame[BookData])
    _rest_tickers = msgspec.json.Decoder(Envelope[ListResult[RestTicker]])
    _instruments = msgspec.json.Decoder(Envelope[ListResult[Instrument]])
    _rest_books = msgspec.json.Decoder(Envelope[RestBook])

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=base + quote, base=base, quote=quote)

    def app_ping(self) -> str:
        return '{"op":"ping"}'

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return _requests("subscribe", [f"tickers.{market.raw}" for market in markets])

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        data = message.data
        if data is not None:
            if message.ts is None:
                raise FrameError("ticker data without ts")
            items = data if type(data) is list else [data]
            return [self._ws_ticker(item, message.ts, received_ns) for item in items]
        if _is_control(message):
            return []
        raise FrameError("neither a ticker, an ack, a pong nor an error")

    def _ws_ticker(self, item: TickerData, ts: int, received_ns: int) -> Ticker:
        if not item.lastPrice:
            raise FrameError(f"ticker for {item.symbol!r} without lastPrice")
        return self._ticker(item, None, None, None, None, ts, received_ns, "ws")

    def _ticker(self, item: TickerData, bid: str | None, ask: str | None, bid_size: str | None,
                ask_size: str | None, ts: int | None, received_ns: int, source: Source) -> Ticker:
        raw = item.symbol
        # Bybit writes "" where it has no value (an empty book's bid1/ask1). lastPrice is
        # not "" (both callers check), so `last` stays a str.
        last, open_24h, high_24h, low_24h, volume_24h, turnover_24h = plain_all_unless_empty(
            item.lastPrice, item.prevPrice24h, item.highPrice24h, item.lowPrice24h, item.volume24h, item.turnover24h)
        return Ticker(
            self.name, self.symbols[raw], raw, last, bid, ask, bid_size, ask_size,  # type: ignore[arg-type]
            open_24h, high_24h, low_24h, volume_24h, turnover_24h, ts, received_ns, source,
        )

    # The book channel. -----------------------------------------------------------

    def book_window(self, depth: int) -> int:
        """The levels a side of the stream that serves `depth`, which the book keeps."""
        for levels in BOOK_STREAM_LEVELS:
            if depth <= levels:
                return levels
        raise ValueError(f"at most {BOOK_STREAM_LEVELS[-1]} levels, not {depth}")

    def book_topic(self, market: Market, depth: int) -> str:
        return f"orderbook.{self.book_window(depth)}.{market.raw}"

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return _requests("subscribe", [self.book_topic(market, depth) for market in markets])

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        # A subscribed topic subscribed again is refused ("error:already subscribed") and
        # sends no snapshot: it is unsubscribed first.
        topics = [self.book_topic(market, depth) for market in markets]
        return _requests("unsubscribe", topics) + _requests("subscribe", topics)

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        message = self._book_frames.decode(frame)
        data = message.data
        if data is not None:
            if message.type == "delta":
                return [BookMessage(data.s, False, data.b, data.a, update_id=data.u, first_id=data.u,
                                    exchange_ts=message.ts)]
            if message.type == "snapshot":
                return [BookMessage(data.s, True, data.b, data.a, update_id=data.u, exchange_ts=message.ts)]
            raise FrameError(f"book push of type {message.type!r}")
        if _is_control(message):
            return []
        raise FrameError("neither a book push, an ack, a pong nor an error")

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        return [f"{self.rest_base}{self.book_rest_path}?category=spot&symbol={market.raw}&limit={depth}"
                for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        # Its `u` numbers the 1000-level stream, not the one subscribed: no update_id.
        book = self._rest_books.decode(body).checked()
        if not book.s:
            raise FrameError("order book answer without a symbol")
        return [BookMessage(book.s, True, book.b, book.a, exchange_ts=book.ts)]

    def market_list_url(self) -> str:
        return f"{self.rest_base}/v5/market/instruments-info?category=spot"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        return [
            Market(raw=info.symbol, base=info.baseCoin, quote=info.quoteCoin)
            for info in self._instruments.decode(body).checked().items
            if info.status == "Trading" and info.quoteCoin in wanted
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return [f"{self.rest_base}/v5/market/tickers?category=spot"]

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        envelope = self._rest_tickers.decode(body)
        collected = self.symbols
        return [
            self._ticker(item, plain_unless_empty(item.bid1Price), plain_unless_empty(item.ask1Price),
                         plain_unless_empty(item.bid1Size), plain_unless_empty(item.ask1Size),
                         envelope.time, received_ns, "rest")
            # lastPrice is "" for a market that has not traded yet: nothing to report.
            for item in envelope.checked().items
            if item.symbol in collected and item.lastPrice
        ]


def _requests(op: str, topics: list[str]) -> list[str]:
    """`op` requests for the topics, at most ARGS_PER_SUBSCRIBE a request."""
    return [
        json.dumps({"op": op, "args": topics[start:start + ARGS_PER_SUBSCRIBE]})
        for start in range(0, len(topics), ARGS_PER_SUBSCRIBE)
    ]


def _is_control(message: Frame[Data]) -> bool:
    """True for a subscribe/unsubscribe ack or a pong; ExchangeError for a refusal."""
    if message.success is False:
        raise ExchangeError(f"{message.op}: {message.ret_msg}")
    return bool(message.success or message.op == "pong" or message.pong is not None)


if __name__ == "__main__":
    cli.main(Bybit)
