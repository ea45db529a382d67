"""Gate (gate.io) Spot, API v4: the public `spot.tickers` and `spot.obu` channels.

Endpoints   wss://api.gateio.ws/ws/v4/ (the trailing slash is part of the path; without
            it the handshake is reported to fail with HTTP 404), https://api.gateio.ws/api/v4
Subscribe   {"time":<unix s>,"id":<int32>,"channel":"spot.tickers","event":"subscribe",
            "payload":["BTC_USDT",...]}; `time` must be within 60 s of the server's clock.
            More requests add pairs. One ack per request:
            {"time":...,"time_ms":...,"channel":"spot.tickers","event":"subscribe",
            "result":{"status":"success"}} (live acks add conn_id, trace_id, payload, id,
            requestId; older ones lack time_ms and `error`; `time` may echo the client's
            value, even as a string). Failure: "error":{"code":2,"message":"unknown
            currency pair XXX"}, and one unknown pair fails its whole request, so pairs
            go PAIRS_PER_SUBSCRIBE to a request.
Limits      none published for spot; the maintainers advise at most 100 connections per
            host and drop clients that read too slowly. Ticker pushes come at most once
            a second per pair, and only when something changed.
Keepalive   {"time":<unix s>,"channel":"spot.ping"} resets the server's idle timer (about
            a minute without traffic); it answers {"time":...,"time_ms":...,
            "channel":"spot.pong","event":"","error":null,"result":null}. The server also
            checks RFC 6455 pings, which websockets answers by itself.
Ticker      {"time":<s>,"time_ms":<ms>,"channel":"spot.tickers","event":"update",
            "result":{"currency_pair","last","lowest_ask","highest_bid",
            "change_percentage","base_volume","quote_volume","high_24h","low_24h"}}.
            Numbers are JSON strings; "" where there is no value (empty book side).
            The result has no timestamp of its own: exchange_ts is the envelope's
            time_ms, or time*1000 from servers older than 2022-11 that omit time_ms.
            No bid/ask sizes and no 24 h open (change_percentage is in percent; an open
            derived from it would not be exact).
Restart     {"event":"upgrade"} on any channel asks the client to reconnect (the
            official SDK does a hard reconnect since 2026-04); no sample payload exists.
Errors      "error":{"code","message"}; 1 bad request body, 2 bad argument, 3 server
            error, 4 authentication. A result {"status":"fail"} is an error too.
REST        /spot/tickers without currency_pair returns every pair in one bare JSON
            array (no timestamps at all), which beats one call per pair under the
            200 requests per 10 s per endpoint budget; pairs this worker does not
            collect are skipped. /spot/currency_pairs is the market list: id, base,
            quote, trade_status (only "tradable" pairs are collected). REST errors are
            HTTP 4xx with {"label":"INVALID_CURRENCY","message":...}.

Book        `spot.obu` (Order Book V2), chosen over the legacy `spot.order_book_update`:
            its first push is the whole book, so a book is built and rebuilt from the
            socket alone, with no REST seed whose `id` must meet the stream (and no stale
            snapshot to handle); it is the docs' newer order book API. Streams
            ob.<pair>.<level>, level 50 (pushed every 20 ms) or 400 (100 ms): the smallest
            that holds book_depth (1-400), and the book keeps that many levels a side. One
            stream a request {"time","id","channel":"spot.obu","event":"subscribe",
            "payload":["ob.BTC_USDT.50"]}; subscribing a stream twice is refused ("Alert
            sub ob.BTC_USDT.50"), so a lost book is rebuilt by unsubscribe then subscribe,
            as the docs say. Pushes carry no `event` and no `time`: {"channel":"spot.obu",
            "result":{"t":<ms>,"full":true,"s":"ob.BTC_USDT.50","u":<id>,"b":[[price,size],
            ...],"a":[...]},"time_ms":...}; a change push has "U" (its first id) instead of
            "full", and applies only when U is the last u + 1; a gap, a repeat or a
            reorder breaks that (resync gap), and a crossed book is lost too. The server
            may send a full push at any time: it replaces the book. Size "0" deletes. No
            checksum. Only the docs' examples of spot.obu exist (their sizes look like
            contract counts): no live capture.
Book REST   /spot/order_book?currency_pair=BTC_USDT&limit=N&with_id=true, for the fallback
            while a socket is down (N: the stream's window, 50, up to 100, at least
            book_depth): {"id","current","update","asks","bids"}, `id` the book's update id
            (published as update_id), `update` the time of its last change (ms, absent
            from 2021 answers). The body does not name the pair: the URL does.
"""

import json
import time
from urllib.parse import parse_qs, urlsplit

import msgspec

from shared import cli
from shared.numbers import Number, plain_all_unless_empty
from shared.record import ExchangeError, FrameError, ServerRestart, Source, Ticker
from shared.venue import BookMessage, Market, Venue

CHANNEL = "spot.tickers"
# Small enough that a pair delisted since startup costs few others their subscription.
PAIRS_PER_SUBSCRIBE = 50
BOOK_CHANNEL = "spot.obu"
# The depths spot.obu serves: 50 levels (pushed every 20 ms) and 400 (every 100 ms).
OBU_LEVELS = (50, 400)
BOOK_PATH = "/api/v4/spot/order_book"
# The deepest REST book asked for beyond `book_depth`: the docs' own call asks for 100 (the
# endpoint's maximum is unconfirmed; third-party docs say 1000).
REST_BOOK_LEVELS = 100

Levels = list[tuple[Number, Number]]


class TickerResult(msgspec.Struct):
    """The ticker fields we use, as both the socket and /spot/tickers spell them."""

    currency_pair: str = ""
    last: Number = ""
    highest_bid: Number = ""
    lowest_ask: Number = ""
    high_24h: Number = ""
    low_24h: Number = ""
    base_volume: Number = ""
    quote_volume: Number = ""


class Result(TickerResult):
    status: str = ""  # acks: "success" or "fail"


class ErrorBody(msgspec.Struct):
    code: int
    message: str


class Frame(msgspec.Struct):
    """A ticker update, an ack, a pong, an error or an upgrade notice: only the keys we use."""

    time: int | str | None = None  # seconds; an ack may echo the client's value as sent
    time_ms: int | None = None
    channel: str = ""
    event: str = ""
    error: ErrorBody | None = None
    result: Result | None = None


class ObuResult(msgspec.Struct):
    """A spot.obu push (or, on an ack, just the status): only the keys we use."""

    s: str = ""  # the stream: ob.BTC_USDT.50
    t: int | None = None  # ms
    full: bool = False  # the whole book (the first push, and whenever the server resends it)
    U: int | None = None  # first update id of a change push; absent on a full one
    u: int | None = None  # last update id
    b: Levels = []
    a: Levels = []
    status: str = ""  # acks: "success" or "fail"


class BookFrame(msgspec.Struct):
    """A spot.obu push, an ack, a pong, an error or an upgrade notice."""

    channel: str = ""
    event: str = ""  # absent on spot.obu pushes
    error: ErrorBody | None = None
    result: ObuResult | None = None


class RestBook(msgspec.Struct):
    """GET /spot/order_book?with_id=true. The body does not name its pair."""

    id: int | None = None  # only with with_id=true
    update: int | None = None  # ms of the book's last change; absent from 2021 answers
    current: int | None = None  # ms of the answer
    bids: Levels = []
    asks: Levels = []


def obu_level(depth: int) -> int:
    """The spot.obu depth that holds a top `depth`: the smallest, as it is pushed fastest."""
    for level in OBU_LEVELS:
        if depth <= level:
            return level
    raise ValueError(f"book_depth {depth}: Gate's spot.obu serves at most {OBU_LEVELS[-1]} levels")


def pair_of_stream(stream: str) -> str:
    """BTC_USDT of the stream ob.BTC_USDT.50."""
    prefix, _, rest = stream.partition(".")
    pair, _, level = rest.rpartition(".")
    if prefix != "ob" or not pair or not level.isdigit():
        raise FrameError(f"spot.obu push of stream {stream!r}, which is no ob.<pair>.<level>")
    return pair


class PairInfo(msgspec.Struct):
    id: str
    base: str
    quote: str
    trade_status: str


def _read_reply(message: Frame | BookFrame, push: str) -> None:
    """Read a frame that is not the channel's push: an ack or a pong is nothing; an
    error, a failed ack and an upgrade notice raise, and so does anything else."""
    if message.error is not None:
        error = message.error
        raise ExchangeError(f"{message.channel} {message.event}: error {error.code}: {error.message}")
    if message.event == "upgrade":
        raise ServerRestart(f"upgrade event on {message.channel or 'the connection'}")
    if message.event in ("subscribe", "unsubscribe"):
        if message.result is not None and message.result.status == "fail":
            raise ExchangeError(f"{message.channel} {message.event}: status fail")
        return
    if message.channel != "spot.pong":
        raise FrameError(f"neither {push}, an ack, a pong, an error nor an upgrade notice")


class Gateio(Venue):
    name = "gateio"
    market_id_form = ("_", False)  # BTC_USDT
    # 200 pairs push at most 200 small frames a second, and even every USDT pair
    # needs far fewer connections than the advised 100 per host.
    markets_per_connection = 200
    protocol_ping_interval_s = 20.0  # what the official SDK sends (websockets' default)
    app_ping_interval_s = 15.0  # inside the ~60 s idle cut, as the docs advise (10-20 s)

    # Book: spot.obu, resubscribed for a fresh full push when a book is lost.
    book_depths = range(1, OBU_LEVELS[-1] + 1)
    book_resync = "resubscribe"
    book_rest_path = BOOK_PATH
    # A level-50 stream pushes every 20 ms: 50 busy pairs are some 2,500 frames/s on one
    # reader, within what Gate asks of a client that must not read slowly.
    book_markets_per_connection = 50

    _frames = msgspec.json.Decoder(Frame)
    _book_frames = msgspec.json.Decoder(BookFrame)
    _rest_books = msgspec.json.Decoder(RestBook)
    _rest_tickers = msgspec.json.Decoder(list[TickerResult])
    _pairs = msgspec.json.Decoder(list[PairInfo])

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{base}_{quote}", base=base, quote=quote)

    def ws_url(self, markets: list[Market]) -> str:
        return self.ws_base + "/"  # Venue strips it; Gate's path needs it

    def app_ping(self) -> str:
        return f'{{"time":{int(time.time())},"channel":"spot.ping"}}'

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        now_s = int(time.time())
        pairs = [market.raw for market in markets]
        return [
            json.dumps({"time": now_s, "id": number + 1, "channel": CHANNEL, "event": "subscribe",
                        "payload": pairs[start:start + PAIRS_PER_SUBSCRIBE]})
            for number, start in enumerate(range(0, len(pairs), PAIRS_PER_SUBSCRIBE))
        ]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        result = message.result
        if message.event == "update" and message.channel == CHANNEL and result is not None:
            return [self._ticker(result, self._exchange_ts(message), received_ns, "ws")]
        _read_reply(message, "a ticker update")
        return []

    @staticmethod
    def _exchange_ts(message: Frame) -> int:
        if message.time_ms is not None:
            return message.time_ms
        if type(message.time) is int:
            return message.time * 1000
        raise FrameError(f"ticker update without a time: time={message.time!r}")

    def _ticker(self, item: TickerResult, exchange_ts: int | None, received_ns: int, source: Source) -> Ticker:
        raw = item.currency_pair
        if not item.last:
            raise FrameError(f"ticker for {raw!r} without last")
        # last is not "" (checked above), so it stays a str.
        last, bid, ask, high_24h, low_24h, volume_24h, quote_volume_24h = plain_all_unless_empty(
            item.last, item.highest_bid, item.lowest_ask, item.high_24h, item.low_24h,
            item.base_volume, item.quote_volume)
        return Ticker(
            self.name, self.symbols[raw], raw, last, bid, ask, None, None, None,  # type: ignore[arg-type]
            high_24h, low_24h, volume_24h, quote_volume_24h, exchange_ts, received_ns, source,
        )

    # --- book: spot.obu, and /spot/order_book for the REST fallback ---------------------

    def book_window(self, depth: int) -> int:
        """The stream's depth: Gate keeps its pushes to it, so a level that falls out
        of it may get no delete."""
        return obu_level(depth)

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        """One request a stream: the docs subscribe spot.obu one stream at a time."""
        return self._obu_requests("subscribe", markets, depth)

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        """The docs' rebuild: unsubscribe, then subscribe, and the next push is full. A
        subscribe alone is refused ("Alert sub ob.BTC_USDT.50")."""
        return self._obu_requests("unsubscribe", markets, depth) + self._obu_requests("subscribe", markets, depth)

    def _obu_requests(self, event: str, markets: list[Market], depth: int) -> list[str]:
        now_s = int(time.time())
        level = obu_level(depth)
        return [
            json.dumps({"time": now_s, "id": number + 1, "channel": BOOK_CHANNEL, "event": event,
                        "payload": [f"ob.{market.raw}.{level}"]})
            for number, market in enumerate(markets)
        ]

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        """The book message of a spot.obu push; [] for an ack or a pong."""
        message = self._book_frames.decode(frame)
        result = message.result
        if message.channel == BOOK_CHANNEL and not message.event and result is not None:
            if result.u is None:
                raise FrameError(f"spot.obu push of {result.s!r} without u")
            if not result.full and result.U is None:
                raise FrameError(f"spot.obu change push of {result.s!r} without U")
            return [BookMessage(pair_of_stream(result.s), result.full, result.b, result.a,
                                update_id=result.u, first_id=None if result.full else result.U,
                                exchange_ts=result.t)]
        _read_reply(message, "a spot.obu push")
        return []

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        """One call a pair (the endpoint takes one), as deep as the stream's window (up to
        REST_BOOK_LEVELS; never less than `depth`): a fallback book of a quiet market is
        kept at the stream's own id, and when a stalled socket speaks again its changes
        apply to it, so it must hold the levels a deletion moves up into the top N."""
        limit = max(depth, min(obu_level(depth), REST_BOOK_LEVELS))
        return [f"{self.rest_base}{BOOK_PATH}?currency_pair={market.raw}&limit={limit}&with_id=true"
                for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        """A REST book: the whole book at `id`, the pair named by the URL."""
        pairs = parse_qs(urlsplit(url).query).get("currency_pair", [])
        if len(pairs) != 1:
            raise FrameError(f"a REST book from {url}, which names no one currency_pair")
        book = self._rest_books.decode(body)
        return [BookMessage(pairs[0], True, book.bids, book.asks, update_id=book.id,
                            exchange_ts=book.update or book.current)]

    def market_list_url(self) -> str:
        return f"{self.rest_base}/api/v4/spot/currency_pairs"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        return [
            Market(raw=pair.id, base=pair.base, quote=pair.quote)
            for pair in self._pairs.decode(body)
            if pair.trade_status == "tradable" and pair.quote in wanted
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return [f"{self.rest_base}/api/v4/spot/tickers"]

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        collected = self.symbols
        return [
            self._ticker(item, None, received_ns, "rest")
            # A pair listed but not yet traded has no last price: nothing to report.
            for item in self._rest_tickers.decode(body)
            if item.currency_pair in collected and item.last
        ]


if __name__ == "__main__":
    cli.main(Gateio)
