"""Korbit (Korea; being renamed "Digital X" by Mirae Asset): the `ticker` and `orderbook`
types on the Open API v2 public socket.

Endpoints   wss://ws-api.korbit.co.kr/v2/public, https://api.korbit.co.kr. The renamed
            service answers the same paths and payloads on ws-api.digitalx.miraeasset.com
            and api.digitalx.miraeasset.com, and the Korbit hosts are to be retired, so the
            hosts live in config/exchanges/korbit.yaml only.
Subscribe   always a JSON array of request objects (a bare object fails with
            {"status":"fail","message":"invalid_format"}):
            [{"method":"subscribe","type":"ticker","symbols":["btc_krw"],"requestId":1},...]
            Symbols are lower-case base_quote and case-sensitive. Subscriptions add up.
            Success is acknowledged only when the request carries a requestId
            ({"status":"success","requestId":1}; the docs print the keys the other way
            round); failures always are ({"status":"fail","code":"INVALID_SYMBOL",
            "message":"The symbol does not exist (nope_krw)","requestId":2}) and the socket
            stays open. One request object per market, each with its own requestId, so one
            unknown or delisted symbol fails alone and is named in the log.
Limits      no published per-connection or WebSocket rate limits; a probe subscribed all
            193 pairs on one connection and opened 14 connections 1.5 s apart unrefused.
Keepalive   the server sends an RFC 6455 ping every 30 s and expects the pong (websockets
            answers by itself); it answers client pings too. No application-level ping.
            Quiet pairs may send nothing for minutes after their snapshot: the server's
            pings and the pongs to ours are what such a socket is heard by.
Ticker      {"symbol","timestamp","type":"ticker","snapshot"?,"data":{...}}: the first frame
            per symbol has "snapshot":true; later ones omit the key (docs: false or null),
            and neither is treated differently. Every price and volume in `data` is a JSON
            string (open/high/low/close/volume/quoteVolume over a rolling 24 h, close = last
            trade); `timestamp` is the server's send time in ms. Best bid/ask come without
            sizes, and a stopped pair reports them as "0": no order, so no price.
            New fields may be added at any time; unknown keys are ignored.
REST        /v2/tickers?symbol=btc_krw,eth_krw in an {"success":true,"data":[...]} envelope
            (rows: the socket's `data` plus `symbol`, no snapshot time); an unknown symbol
            is silently left out. /v2/currencyPairs for the market list (status launched /
            stopped; stopped pairs still have tickers). 50 public requests/s per IP, 429
            with Retry-After beyond. Errors: {"success":false,"error":{"code","message"}}.

Book        type `orderbook`, the only one: every frame is the whole top 30 of one pair,
            bids and asks best first, so each frame replaces the book and a lost one is
            repaired by the next (book_resync "frames"); no sequence, no checksum (the
            docs warn public messages "can be dropped under load": the next frame
            repairs). book_depth 1-30. Requested as the ticker, one request object a pair
            with its requestId, on sockets of their own. Korbit's quirks:
            - the first frame carries "snapshot":true, later ones omit the key: both
              replace the book alike;
            - `data.timestamp` is the book's time (exchange_ts), the frame's own
              `timestamp` the send time;
            - a stopped pair sends one frame with empty sides, then nothing: published
              once, as an empty book;
            - a `level` grouping adds `quoteVolume` to each level: not asked for.
Book REST   /v2/orderbook?symbol=btc_krw: one pair a call, always the top 30 (`limit` is
            ignored), {"success":true,"data":{"timestamp","bids","asks"}}: the reply does
            not name its pair, the URL does. Errors as the ticker's envelope.
"""

import json
from urllib.parse import parse_qs, urlsplit
from typing import Any, Generic, TypeVar

import msgspec

from shared import cli
from shared.numbers import Number, plain_all
from shared.record import ExchangeError, FrameError, Source, Ticker
from shared.venue import BookMessage, Market, Venue, comma_joined_urls

# No cap is published; 100 lower-case symbols keep the URL near 1 KB.
REST_SYMBOLS_PER_CALL = 100
# The levels a side of every `orderbook` frame and REST book holds.
BOOK_LEVELS = 30


class TickerData(msgspec.Struct):
    open: Number
    high: Number
    low: Number
    close: Number
    volume: Number
    quoteVolume: Number
    bestBidPrice: Number
    bestAskPrice: Number


class BookLevel(msgspec.Struct):
    price: Number
    qty: Number  # `quoteVolume` too when a `level` grouping is asked for: not read


class BookData(msgspec.Struct):
    """The whole top 30 of one pair, best first on each side; empty for a stopped pair."""

    timestamp: int  # the book's time (ms); days old on a stopped pair
    bids: list[BookLevel]
    asks: list[BookLevel]


class Control(msgspec.Struct):
    """The keys of a control message (one with a `status`), on every socket."""

    status: str | None = None
    code: str | None = None
    message: str | None = None
    requestId: int | str | None = None

    def answered(self, expected: str) -> list[Any]:
        """[] for an ack; ExchangeError for a failure; anything else is not `expected`."""
        if self.status == "success":
            return []  # subscribe ack, sent for requests with a requestId
        if self.status in ("fail", "error"):
            raise ExchangeError(f"{self.code or self.status}: {self.message} (requestId {self.requestId})")
        raise FrameError(f"neither {expected} nor a control message")


class Frame(Control):
    """A ticker, or a control message: only the keys we use."""

    type: str | None = None
    symbol: str | None = None
    timestamp: int | None = None
    data: TickerData | None = None


class BookFrame(Control):
    """An `orderbook` frame, or a control message. The frame's own `timestamp` is its
    send time, data's the book's."""

    type: str | None = None
    symbol: str | None = None
    data: BookData | None = None


def book_message(raw: str, data: BookData) -> BookMessage:
    return BookMessage(raw, True, [(level.price, level.qty) for level in data.bids],
                       [(level.price, level.qty) for level in data.asks], exchange_ts=data.timestamp)


class RestTicker(TickerData):
    symbol: str


class CurrencyPair(msgspec.Struct):
    symbol: str
    status: str


class ErrorBody(msgspec.Struct):
    code: int | str
    message: str


Data = TypeVar("Data")


class Envelope(msgspec.Struct, Generic[Data]):
    success: bool
    data: Data | None = None
    error: ErrorBody | None = None

    def checked(self) -> Data:
        if not self.success:
            problem = f"{self.error.code}: {self.error.message}" if self.error else "no error given"
            raise ExchangeError(f"success=false ({problem})")
        if self.data is None:
            raise ExchangeError("success=true without data")
        return self.data


class Korbit(Venue):
    name = "korbit"
    market_id_form = ("_", False)  # btc_krw
    # All ~190 launched pairs fit on one socket; two keep a drop's blast radius small.
    markets_per_connection = 100
    protocol_ping_interval_s = 30.0  # answered by the server, at its own ping cadence
    connect_gap_s = 1.0  # no published limit: pace like the probe that was never refused
    rest_min_interval_s = 0.05  # 50 public requests/s per IP, with room to spare
    rest_markets_per_call = REST_SYMBOLS_PER_CALL  # an unknown symbol is left out of the answer
    book_depths = range(1, BOOK_LEVELS + 1)
    book_resync = "frames"
    book_rest_path = "/v2/orderbook"

    _frames = msgspec.json.Decoder(Frame)
    _rest_tickers = msgspec.json.Decoder(Envelope[list[RestTicker]])
    _currency_pairs = msgspec.json.Decoder(Envelope[list[CurrencyPair]])

    _book_frames = msgspec.json.Decoder(BookFrame)
    _rest_books = msgspec.json.Decoder(Envelope[BookData])

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return self._subscribe_messages("orderbook", markets)

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        """An `orderbook` frame is the whole top 30 of one pair, snapshot or not alike."""
        message = self._book_frames.decode(frame)
        if message.type == "orderbook" and message.data is not None and message.symbol is not None:
            return [book_message(message.symbol, message.data)]
        return message.answered("an orderbook")

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        # One pair a call (the reply does not name it); always 30 levels, `limit` is ignored.
        return [f"{self.rest_base}{self.book_rest_path}?symbol={market.raw}" for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        """The book of the pair the call asked for, named only in its URL."""
        [raw] = parse_qs(urlsplit(url).query)["symbol"]
        return [book_message(raw, self._rest_books.decode(body).checked())]

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{base.lower()}_{quote.lower()}", base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return self._subscribe_messages("ticker", markets)

    def _subscribe_messages(self, kind: str, markets: list[Market]) -> list[str]:
        return [json.dumps([
            {"method": "subscribe", "type": kind, "symbols": [market.raw], "requestId": number}
            for number, market in enumerate(markets, 1)
        ], separators=(",", ":"))]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        if message.type == "ticker" and message.data is not None and message.symbol is not None:
            return [self._ticker(message.symbol, message.data, message.timestamp, received_ns, "ws")]
        return message.answered("a ticker")

    def _ticker(self, raw: str, data: TickerData, exchange_ts: int | None, received_ns: int,
                source: Source) -> Ticker:
        # A stopped pair reports its best prices as "0": no order, which the record
        # contract turns into null (shared.record.check_values).
        last, bid, ask, open_24h, high_24h, low_24h, volume_24h, quote_volume_24h = plain_all(
            data.close, data.bestBidPrice, data.bestAskPrice, data.open, data.high, data.low, data.volume,
            data.quoteVolume)
        return Ticker(
            self.name, self.symbols[raw], raw, last, bid, ask, None, None,
            open_24h, high_24h, low_24h, volume_24h, quote_volume_24h, exchange_ts, received_ns, source,
        )

    def market_list_url(self) -> str:
        return f"{self.rest_base}/v2/currencyPairs"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        markets = []
        for pair in self._currency_pairs.decode(body).checked():
            # baseCurrency/quoteCurrency are not in every version of this reply; the
            # underscore in the symbol always separates them.
            base, _, quote = pair.symbol.partition("_")
            if pair.status == "launched" and quote.upper() in wanted and base:
                markets.append(Market(raw=pair.symbol, base=base.upper(), quote=quote.upper()))
        return markets

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return comma_joined_urls(f"{self.rest_base}/v2/tickers?symbol=", markets, REST_SYMBOLS_PER_CALL)

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        # A row has no snapshot time, and lastTradedAt can be hours old on a quiet pair.
        return [
            self._ticker(row.symbol, row, None, received_ns, "rest")
            for row in self._rest_tickers.decode(body).checked()
        ]


if __name__ == "__main__":
    cli.main(Korbit)
