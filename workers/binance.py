"""Binance Spot: the `<symbol>@ticker` stream, and the book's `<symbol>@depth<L>@100ms`
(up to 20 levels) or `<symbol>@depth@100ms` (beyond), on the combined-stream endpoint.

Endpoints   wss://stream.binance.com:9443/stream (combined: {"stream", "data"} frames;
            the raw endpoint /ws sends the bare event, and frames of either form are
            read, so a ws_url on /ws works and captures of other tools replay; not
            for the partial-depth book stream, see Book)
            https://data-api.binance.vision (public market data REST)
Subscribe   {"method":"SUBSCRIBE","params":["btcusdt@ticker",...],"id":1}
            ack {"result":null,"id":1}; stream names are lower case, and an unknown
            name is accepted silently and never sends data. (Streams may also be
            named in the URL, /stream?streams=a@ticker/b@ticker or /ws/a@ticker:
            not used, the subscription is one message per connection either way.)
Limits      5 incoming messages/s per connection (pings count), 1024 streams per
            connection, 300 connects per 5 min per IP, 24 h connection lifetime.
Keepalive   the server pings every 20 s and drops a client that doesn't pong within
            a minute; websockets answers pings by itself.
Ticker      every number is a JSON string; E is the event time in ms. A
            {"e":"serverShutdown"} event announces a restart: reconnect at once.
Errors      {"error":{"code","msg"},"id"} as client libraries parse it, or the bare
            {"code","msg"} the docs print: both are read.
REST        /api/v3/ticker/24hr?symbols=[...] (weight 2 up to 20 symbols, 40 up to 100)
            /api/v3/exchangeInfo for the market list (base/quote are not derivable
            from the symbol string: BTCUSDT vs BTCUSDC, 1000SATSUSDT)

Book        up to 20 levels: the partial-depth stream `<symbol>@depth<L>@100ms`, L the
            least of 5, 10, 20 that holds book_depth, the exchange's own top L every
            100 ms: {"lastUpdateId","bids","asks"}, best first, nothing else. Chosen where
            it serves (the notes recommend it) because every frame is the complete truth:
            it replaces the kept book (book_resync "frames": a lost frame is repaired by the
            next), needs no REST seed, and holds no book beyond the top L. The frame names
            neither its symbol nor its time: the symbol is read from the combined
            envelope's stream name, so the book socket always opens the combined endpoint
            /stream (whatever path ws_url names: a bare /ws frame could not be placed);
            exchange_ts is null. lastUpdateId is the diff stream's `u` at that moment and
            never repeats: a frame whose id is not above the last applied one is an older
            book or the same again, skipped and counted in book_skipped
            (book_snapshot_ids_grow). It cannot show a lost frame (ids advance by the
            changes in between), which the next frame makes good anyway.
            Beyond 20 levels: the diff stream `<symbol>@depth@100ms` ({"e":"depthUpdate",
            "E","s","U","u","b","a"}: the levels that changed, a quantity "0.00000000"
            deletes) on a REST seed, by the documented procedure: changes are held until
            GET /api/v3/depth answers; those with u <= its lastUpdateId are dropped, the
            first kept one must have U <= lastUpdateId + 1 <= u (a later U: the snapshot
            is older than the stream, fetched again: snapshot_stale), and then each U is
            the last u + 1 (otherwise a gap: the book is rebuilt from a new snapshot).
            Its cost: a REST snapshot per market at start and after a loss (weight 5 up
            to 100 levels, of 6,000 a minute), and the book kept beyond the top N
            (book_window: as many levels as the snapshot; a level outside it is unknown
            until it changes, as the docs note). Either stream: no checksum; prices and
            quantities are strings with the symbol's fixed decimals.
Book REST   /api/v3/depth?symbol=BTCUSDT&limit=L, L the least of 100, 500, 1000, 5000
            that holds five times the depth (weight 5, 25, 50, 250): {"lastUpdateId",
            "bids", "asks"}, best first; the body does not name its symbol, the URL does.
"""

import json
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import msgspec

from shared import cli
from shared.numbers import Number, plain_all
from shared.record import ExchangeError, FrameError, Level, ServerRestart, Ticker
from shared.venue import BookMessage, BookResync, Market, Venue

REST_SYMBOLS_PER_CALL = 100
# The partial-depth stream's levels (`@depth5@100ms` ...); deeper books: the diff stream.
PARTIAL_DEPTHS = (5, 10, 20)
DIFF_STREAM = "@depth@100ms"
COMBINED_PATH = "/stream"
# GET /api/v3/depth's limits, by weight; a snapshot holds five times the depth.
DEPTH_LIMITS = (100, 500, 1000, 5000)
SNAPSHOT_LEVELS_PER_DEPTH = 5


# A ticker push is not tracked by the garbage collector (gc=False), as the book's
# structs below: a decoded frame holds no reference cycle.
class TickerEvent(msgspec.Struct, tag_field="e", tag="24hrTicker", gc=False):
    E: int
    s: str
    c: Number
    b: Number
    B: Number
    a: Number
    A: Number
    o: Number
    h: Number
    l: Number  # noqa: E741 - Binance's own key
    v: Number
    q: Number


class ServerShutdown(msgspec.Struct, tag_field="e", tag="serverShutdown", gc=False):
    E: int


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: int
    s: str
    U: int
    u: int
    b: list[list[str]]
    a: list[list[str]]


class ErrorBody(msgspec.Struct, gc=False):
    code: int
    msg: str


class Frame(msgspec.Struct, gc=False):
    """Every frame either endpoint sends: a stream event in the combined envelope or
    bare (`e` set: decoded again as an Event), an ack, or an error."""

    stream: str | None = None
    data: TickerEvent | ServerShutdown | None = None
    e: str | None = None
    id: int | str | None = None
    result: None = None
    code: int | None = None
    msg: str | None = None
    error: ErrorBody | None = None


# Not tracked by the garbage collector (gc=False), as a decoded push holds no reference
# cycle: made and freed cheaper (bench.book depth20: ~350 instructions a frame).
class PartialDepth(msgspec.Struct, gc=False):
    """A partial-depth push: the top L, best first; no event type, symbol or time."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


class PartialDepthFrame(msgspec.Struct, gc=False):
    """A partial-depth push in the combined envelope: nearly every frame of a book socket
    at a depth of 20 or less, decoded in one pass (a BookFrame leaves `data` to a second)."""

    stream: str
    data: PartialDepth


class BookFrame(msgspec.Struct):
    """A book socket's frame: a stream event in the combined envelope (its data read by
    the stream's name: a diff or a partial-depth push) or bare (a diff), an ack, or an error."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent
    e: str | None = None
    id: int | str | None = None
    result: None = None
    code: int | None = None
    msg: str | None = None
    error: ErrorBody | None = None


class RestDepth(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class RestTicker(msgspec.Struct):
    symbol: str
    lastPrice: Number
    bidPrice: Number
    bidQty: Number
    askPrice: Number
    askQty: Number
    openPrice: Number
    highPrice: Number
    lowPrice: Number
    volume: Number
    quoteVolume: Number
    closeTime: int


class SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str


class ExchangeInfo(msgspec.Struct):
    symbols: list[SymbolInfo]


class Binance(Venue):
    name = "binance"
    markets_per_connection = 200  # well under the 1024-stream cap; one subscribe message each
    rest_markets_per_call = REST_SYMBOLS_PER_CALL
    rest_unknown_market = "Invalid symbol."  # HTTP 400 {"code":-1121,"msg":"Invalid symbol."}
    protocol_ping_interval_s = 20.0  # counts toward 5 msg/s: one every 20 s is harmless
    book_depths = range(1, DEPTH_LIMITS[-1] + 1)
    book_rest_path = "/api/v3/depth"
    # A depth call names one symbol (weight 5 up to 100 levels, of 6,000 a minute): at
    # most 16 a second leaves a fifth of the weight to the ticker's calls.
    rest_min_interval_s = 0.06

    _frames = msgspec.json.Decoder(Frame)
    _bare_events = msgspec.json.Decoder(TickerEvent | ServerShutdown)
    _rest_tickers = msgspec.json.Decoder(list[RestTicker])
    _exchange_info = msgspec.json.Decoder(ExchangeInfo)
    _book_frames = msgspec.json.Decoder(BookFrame)
    _book_events = msgspec.json.Decoder(DepthUpdate | ServerShutdown)
    _partial_depth_frames = msgspec.json.Decoder(PartialDepthFrame)
    _partial_depths = msgspec.json.Decoder(PartialDepth)
    _rest_depth = msgspec.json.Decoder(RestDepth)

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=base + quote, base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        streams = [market.raw.lower() + "@ticker" for market in markets]
        return [json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        event = message.data if message.e is None else self._bare_events.decode(frame)
        if type(event) is TickerEvent:
            raw = event.s
            return [Ticker(
                self.name, self.symbols[raw], raw,
                *plain_all(event.c, event.b, event.a, event.B, event.A,
                           event.o, event.h, event.l, event.v, event.q),
                event.E, received_ns, "ws",
            )]
        _no_event(message, event)
        return []

    def market_list_url(self) -> str:
        return f"{self.rest_base}/api/v3/exchangeInfo?permissions=SPOT"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        return [
            Market(raw=info.symbol, base=info.baseAsset, quote=info.quoteAsset)
            for info in self._exchange_info.decode(body).symbols
            if info.status == "TRADING" and info.quoteAsset in wanted
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        urls = []
        for start in range(0, len(markets), REST_SYMBOLS_PER_CALL):
            chunk = [market.raw for market in markets[start:start + REST_SYMBOLS_PER_CALL]]
            symbols = quote(json.dumps(chunk, separators=(",", ":")))
            urls.append(f"{self.rest_base}/api/v3/ticker/24hr?symbols={symbols}")
        return urls

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        return [
            Ticker(
                self.name, self.symbols[item.symbol], item.symbol,
                *plain_all(item.lastPrice, item.bidPrice, item.askPrice, item.bidQty, item.askQty,
                           item.openPrice, item.highPrice, item.lowPrice, item.volume, item.quoteVolume),
                item.closeTime, received_ns, "rest",
            )
            for item in self._rest_tickers.decode(body)
        ]

    # --- order book ------------------------------------------------------------------

    def book_resync_at(self, depth: int) -> BookResync:
        return "frames" if partial_levels(depth) else "rest"

    def book_snapshot_ids_grow_at(self, depth: int) -> bool:
        return bool(partial_levels(depth))

    def book_window(self, depth: int) -> int:
        return depth if partial_levels(depth) else snapshot_limit(depth)

    def book_ws_url(self, markets: list[Market], depth: int) -> str:
        base = super().book_ws_url(markets, depth)  # book_ws_url as configured, else ws_url
        if not partial_levels(depth):
            return base
        return urlunsplit(urlsplit(base)._replace(path=COMBINED_PATH, query=""))

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        levels = partial_levels(depth)
        stream = f"@depth{levels}@100ms" if levels else DIFF_STREAM
        return [json.dumps({"method": "SUBSCRIBE", "params": [market.raw.lower() + stream for market in markets],
                            "id": 1})]

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        push: PartialDepthFrame | None
        try:
            push = self._partial_depth_frames.decode(frame)
        except msgspec.ValidationError:
            push = None  # not shaped as a partial-depth push: read as any frame below
        if push is not None and _is_partial_depth(push.stream):
            return [_partial_depth_message(push.stream, push.data)]
        message = self._book_frames.decode(frame)
        stream, data = message.stream, message.data
        if stream is not None and data and _is_partial_depth(stream):
            return [_partial_depth_message(stream, self._partial_depths.decode(data))]
        if data:
            event = self._book_events.decode(data)
        elif message.e is not None:
            event = self._book_events.decode(frame)
        else:
            event = None
        if type(event) is DepthUpdate:
            return [BookMessage(event.s, False, event.b, event.a, event.u, event.U, exchange_ts=event.E)]
        _no_event(message, event)
        return []

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        limit = snapshot_limit(depth)
        return [f"{self.rest_base}{self.book_rest_path}?symbol={market.raw}&limit={limit}" for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        symbol = parse_qs(urlsplit(url).query).get("symbol", [""])[0]
        if not symbol:
            raise FrameError("a REST depth whose URL names no symbol")
        depth = self._rest_depth.decode(body)
        return [BookMessage(symbol, True, depth.bids, depth.asks, depth.lastUpdateId)]


def _is_partial_depth(stream: str) -> bool:
    return not stream.endswith(DIFF_STREAM) and "@depth" in stream


def _partial_depth_message(stream: str, book: PartialDepth) -> BookMessage:
    # btcusdt@depth10@100ms: the symbol, lower case (Binance's are [A-Z0-9]).
    return BookMessage(stream[:stream.index("@")].upper(), True, book.bids, book.asks, book.lastUpdateId)


def partial_levels(depth: int) -> int | None:
    """The partial-depth stream's levels for a book of `depth` (5, 10 or 20); None beyond 20."""
    return next((levels for levels in PARTIAL_DEPTHS if levels >= depth), None)


def snapshot_limit(depth: int) -> int:
    """The REST snapshot's levels for a book of `depth`: the least limit that holds five
    times the depth, so that the top N rarely reaches a level the snapshot did not show."""
    wanted = depth * SNAPSHOT_LEVELS_PER_DEPTH
    return next((limit for limit in DEPTH_LIMITS if limit >= wanted), DEPTH_LIMITS[-1])


def _no_event(message: Frame | BookFrame, event: object) -> None:
    """A frame without a stream event: an ack is nothing; a shutdown notice or an error raises."""
    if type(event) is ServerShutdown:
        raise ServerRestart("serverShutdown event")
    if message.error is not None:
        raise ExchangeError(f"error {message.error.code}: {message.error.msg}")
    if message.code is not None:
        raise ExchangeError(f"error {message.code}: {message.msg}")
    if message.id is not None and message.stream is None:
        return  # subscribe ack: {"result":null,"id":1}
    raise FrameError("neither a stream event, an ack nor an error")


if __name__ == "__main__":
    cli.main(Binance)
