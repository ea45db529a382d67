"""OKX Spot (API v5): the public `tickers` and `books` channels on the v5 public socket.

Endpoints   wss://ws.okx.com:8443/ws/v5/public (no login), https://www.okx.com
Subscribe   {"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},...]}:
            one arg per instrument, many args per request (all args of one request
            together at most 64 KB). The optional `id` (a 2025 addition, echoed in
            replies) is not sent, so older and newer servers answer alike. Every arg
            gets its own ack: {"event":"subscribe","arg":{...},"connId":...} (2022
            servers send no connId; `id` comes back only when sent). A subscribe for
            an arg already subscribed is acked again without doubling its data.
Errors      {"event":"error","code":"60018","msg":"...","connId":...}; codes are
            strings: 60012 bad request, 60018 no such channel/instId, 60014 too frequent.
Limits      3 new connections per second per IP; 480 subscribe/unsubscribe/login
            requests per hour per connection (requests, not args): each connection
            sends its whole list in one request, once per connect. No documented
            channel cap per connection (close codes 4008/4009 exist).
Keepalive   the server closes a socket with no traffic for 30 s (close 4004 "No data
            received in 30s"). The client sends the text frame `ping` (not JSON) and
            gets the text frame `pong`. OKX does not answer RFC 6455 pings reliably,
            so none are sent; a quiet socket is probed with `ping`, and its `pong` is
            what it is heard by.
Restart     {"event":"notice","code":"64008","msg":"The connection will soon be closed
            for a service upgrade..."} about 60 s before an upgrade: reconnect now.
Ticker      {"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{...}]}; `data` is
            an array (one element in practice), the full ticker on every push, at most
            one push per 100 ms per instrument and none while nothing changes. Every
            number is a JSON string, `ts` too (ms UTC). For SPOT, vol24h is the base
            volume and volCcy24h the quote volume; open24h is the price 24 h ago. Field
            order varies between servers. An empty book may show "" for bid/ask, which
            becomes null (not seen in captures; handled anyway).
REST        /api/v5/market/tickers?instType=SPOT returns every spot market in one call
            (same ticker fields), so one call serves the snapshot and the fallback;
            markets this worker does not collect are skipped. /api/v5/public/instruments
            ?instType=SPOT is the market list (baseCcy/quoteCcy, `state` live). Both 20
            requests per 2 s per IP. Envelope {"code":"0","msg":"","data":[...]}: a
            non-"0" code is an error.

Book        channel `books` (400 levels, 100 ms, no login): a snapshot on subscribe, then
            changes, each with seqId and prevSeqId and a CRC32 `checksum` of the book
            after it; the top N (1-400) is kept from them. Chosen over `books5` (5 levels
            only) and the -l2-tbt channels (login, VIP). Levels are
            [price, size, "0", orders], strings as sent ("30244", no trailing zeros); a
            size "0" deletes. An update applies when its prevSeqId is the last seqId
            (first_id = prevSeqId + 1); a keep-alive after ~60 s without changes has
            empty sides and seqId == prevSeqId, and after maintenance seqId may start
            lower, still chained by prevSeqId. The checksum is of the first 25 levels a
            side, bid:ask interleaved, as a signed int (shared.book.OKX). A lost book
            (gap, checksum, crossed) is resubscribed: unsubscribe and subscribe that
            instrument, which sends a fresh snapshot (two requests of the 480 an hour a
            connection may make). Frames of 2022 servers have no seqId: then the
            checksum alone guards the book. The docs ask for fewer than 30 `books`
            channels a connection: 25.
Book REST   /api/v5/market/books?instId=BTC-USDT&sz=400 (one instrument a call; the body
            does not name it, the URL does): levels as on the socket, no seqId, so a REST
            book is published (the fallback), and a stream change that comes after it (a
            silent socket speaking again) loses the book: resubscribed (resync gap) for
            the next snapshot. 40 requests per 2 s per IP.
"""

import json

import msgspec

from urllib.parse import parse_qs, urlsplit

from shared import cli
from shared.book import OKX
from shared.numbers import Number, plain_all_unless_empty
from shared.record import ExchangeError, FrameError, ServerRestart, Source, Ticker
from shared.venue import BookMessage, Market, Venue, snapshot_levels

CHANNEL = "tickers"
BOOK_CHANNEL = "books"
BOOK_LEVELS = 400
SERVICE_UPGRADE = "64008"


# A ticker push is not tracked by the garbage collector (gc=False), as the book frame's
# structs below: a decoded frame holds no reference cycle.
class TickerData(msgspec.Struct, gc=False):
    instId: str
    last: Number
    bidPx: Number
    bidSz: Number
    askPx: Number
    askSz: Number
    open24h: Number
    high24h: Number
    low24h: Number
    vol24h: Number
    volCcy24h: Number
    ts: int  # a JSON string of digits; the decoder is not strict, so a JSON number works too


class Arg(msgspec.Struct, gc=False):
    channel: str


class Frame(msgspec.Struct, gc=False):
    """A ticker push, an ack, an error or a notice: only the keys we use."""

    arg: Arg | None = None
    data: list[TickerData] | None = None
    event: str | None = None
    code: str | int | None = None
    msg: str = ""


# The book frame's structs are not tracked by the garbage collector (gc=False): a decoded
# frame holds no reference cycle, and untracked structs are made and freed cheaper
# (bench.book okx-deep: ~500 instructions a message).
class BookData(msgspec.Struct, gc=False):
    asks: list[list[str]]
    bids: list[list[str]]
    ts: int  # a JSON string of digits (the decoder is not strict)
    checksum: int | None = None
    prevSeqId: int | None = None
    seqId: int | None = None


class BookArg(msgspec.Struct, gc=False):
    channel: str
    instId: str | None = None


class BookFrame(msgspec.Struct, gc=False):
    """A `books` push, an ack, an error or a notice: only the keys we use."""

    arg: BookArg | None = None
    action: str | None = None
    data: list[BookData] | None = None
    event: str | None = None
    code: str | int | None = None
    msg: str = ""


class RestBooks(msgspec.Struct):
    code: str | int
    msg: str
    data: list[BookData]


class Envelope(msgspec.Struct):
    code: str | int
    msg: str
    data: list[TickerData]


class Instrument(msgspec.Struct):
    instId: str
    baseCcy: str
    quoteCcy: str
    state: str


class Instruments(msgspec.Struct):
    code: str | int
    msg: str
    data: list[Instrument]


def _checked(code: str | int, message: str) -> None:
    if str(code) != "0":
        raise ExchangeError(f"code {code}: {message}")


class Okx(Venue):
    name = "okx"
    market_id_form = ("-", False)  # BTC-USDT
    # A request of 200 args is ~10 KB, far under 64 KB; the USDT markets fit on two
    # connections, so even their simultaneous reconnects stay within 3 connects/s.
    markets_per_connection = 200
    protocol_ping_interval_s = None
    app_ping_interval_s = 20.0  # under the 30 s silence rule
    connect_gap_s = 0.4  # 3 new connections per second per IP
    book_depths = range(1, BOOK_LEVELS + 1)
    book_resync = "resubscribe"
    # 480 subscribe and unsubscribe requests an hour a connection, and a resubscribe is two.
    book_resubscribe_gap_s = 15.0
    book_checksum = OKX
    book_markets_per_connection = 25
    book_rest_path = "/api/v5/market/books"
    # A book call names one instrument (40 requests per 2 s): a fallback over hundreds of
    # books would break the limit unpaced. The ticker's one call a poll barely notices.
    rest_min_interval_s = 0.05

    # Not strict: `ts` arrives as a string of digits; every other field is a str anyway.
    _frames = msgspec.json.Decoder(Frame, strict=False)
    _rest_tickers = msgspec.json.Decoder(Envelope, strict=False)
    _instruments = msgspec.json.Decoder(Instruments)
    _book_frames = msgspec.json.Decoder(BookFrame, strict=False)
    _rest_books = msgspec.json.Decoder(RestBooks, strict=False)

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{base}-{quote}", base=base, quote=quote)

    def app_ping(self) -> str:
        return "ping"

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        args = [{"channel": CHANNEL, "instId": market.raw} for market in markets]
        return [json.dumps({"op": "subscribe", "args": args}, separators=(",", ":"))]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        if frame == b"pong":
            return []
        message = self._frames.decode(frame)
        if message.data is not None:
            if message.arg is None or message.arg.channel != CHANNEL:
                raise FrameError("data of a channel other than tickers")
            # A loop, not a comprehension: that is a call of its own in CPython 3.11, for
            # a list that holds one ticker.
            tickers: list[Ticker] = []
            for item in message.data:
                tickers.append(self._ticker(item, received_ns, "ws"))
            return tickers
        _no_data(message)
        return []

    def _ticker(self, item: TickerData, received_ns: int, source: Source) -> Ticker:
        raw = item.instId
        if not item.last:
            raise FrameError(f"ticker for {raw!r} without a last price")
        return Ticker(
            self.name, self.symbols[raw], raw,
            # last is not "" (checked above), so it stays a str.
            *plain_all_unless_empty(item.last, item.bidPx, item.askPx, item.bidSz, item.askSz,
                                    item.open24h, item.high24h, item.low24h, item.vol24h, item.volCcy24h),
            item.ts, received_ns, source,
        )

    def market_list_url(self) -> str:
        return f"{self.rest_base}/api/v5/public/instruments?instType=SPOT"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        instruments = self._instruments.decode(body)
        _checked(instruments.code, instruments.msg)
        wanted = set(quotes)
        return [
            Market(raw=info.instId, base=info.baseCcy, quote=info.quoteCcy)
            for info in instruments.data
            if info.state == "live" and info.quoteCcy in wanted
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return [f"{self.rest_base}/api/v5/market/tickers?instType=SPOT"]

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        envelope = self._rest_tickers.decode(body)
        _checked(envelope.code, envelope.msg)
        collected = self.symbols
        return [
            self._ticker(item, received_ns, "rest")
            # A market that has not traded yet has no last price: nothing to report.
            for item in envelope.data
            if item.instId in collected and item.last
        ]

    # --- order book ------------------------------------------------------------------

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return [self._book_request("subscribe", markets)]

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return [self._book_request("unsubscribe", markets), self._book_request("subscribe", markets)]

    @staticmethod
    def _book_request(op: str, markets: list[Market]) -> str:
        args = [{"channel": BOOK_CHANNEL, "instId": market.raw} for market in markets]
        return json.dumps({"op": op, "args": args}, separators=(",", ":"))

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        if frame == b"pong":
            return []
        message = self._book_frames.decode(frame)
        if message.data is None:
            _no_data(message)
            return []
        if message.arg is None or message.arg.channel != BOOK_CHANNEL or message.arg.instId is None:
            raise FrameError("book data without its books channel and instId")
        raw = message.arg.instId
        if message.action == "snapshot":
            return [BookMessage(raw, True, snapshot_levels(data.bids), snapshot_levels(data.asks), data.seqId,
                                None, data.checksum, data.ts) for data in message.data]
        if message.action != "update":
            raise FrameError(f"book action {message.action!r}")
        return [BookMessage(raw, False, data.bids, data.asks, data.seqId,
                            None if data.prevSeqId is None else data.prevSeqId + 1, data.checksum, data.ts)
                for data in message.data]

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        return [f"{self.rest_base}{self.book_rest_path}?instId={market.raw}&sz={BOOK_LEVELS}" for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        books = self._rest_books.decode(body)
        _checked(books.code, books.msg)
        instrument = parse_qs(urlsplit(url).query).get("instId", [""])[0]
        if not instrument:
            raise FrameError("a REST book whose URL names no instId")
        return [BookMessage(instrument, True, snapshot_levels(data.bids), snapshot_levels(data.asks),
                            exchange_ts=data.ts) for data in books.data]


def _no_data(message: Frame | BookFrame) -> None:
    """A frame without data: an ack is nothing, an error or a notice raises."""
    event = message.event
    if event in ("subscribe", "unsubscribe") and message.arg is not None:
        return  # one ack per arg
    if event == "error":
        raise ExchangeError(f"error {message.code}: {message.msg}")
    if event == "notice":
        if str(message.code) == SERVICE_UPGRADE:
            raise ServerRestart(f"notice {message.code}: {message.msg}")
        raise ExchangeError(f"notice {message.code}: {message.msg}")
    raise FrameError("neither data, an ack, an error nor a notice")


if __name__ == "__main__":
    cli.main(Okx)
