"""Upbit (Korea): the public `ticker` and `orderbook` types on the v1 quotation socket.

Endpoints   wss://api.upbit.com/websocket/v1, https://api.upbit.com/v1
Subscribe   one JSON array: [{"ticket": <uuid>}, {"type": "ticker", "codes": [...]},
            {"format": "DEFAULT"}]. Codes are upper case QUOTE-BASE (KRW-BTC). A new
            request replaces the whole subscription of the connection, so every
            connection sends its complete list once. No ack: the first SNAPSHOT frame
            is the confirmation; unknown codes are ignored silently.
Limits      5 connects/s per IP; 5 messages/s and 100/min per connection. No Origin
            header (it drops the limit to 1 request per 10 s).
Keepalive   the client pings (RFC 6455); idle sockets are dropped after ~60 s on the
            wire (docs say 120 s). The pongs (~165 ms) are what a socket on quiet
            markets is heard by. `{"status":"UP"}` frames answer a text PING, but on
            a subscribed socket it went unanswered on the wire: not used.
Frames      binary (opcode 2) UTF-8 JSON. Prices are JSON numbers printed with raw
            BigDecimal scale: 158219000.00000000, 0E-8, 1.16539E8, and fractions
            longer than a double holds, so they are kept as raw text, never floats.
            The format object chooses the form: DEFAULT (asked for: one object, full
            keys such as trade_price), SIMPLE (abbreviated keys: tp), JSON_LIST and
            SIMPLE_LIST (the frame is an array of those objects). Every form is read,
            for captures made by other tools.
Errors      {"error":{"name":"NO_TICKET","message":...}}, then the server closes (1000).
Ticker      open/high/low are the UTC day (reset 09:00 KST); *_24h are rolling.
            `timestamp` is the server's ms epoch; no best bid/ask in this type.
REST        /v1/ticker?markets=KRW-BTC,... (one unknown code fails the whole call
            with 404); /v1/market/all for the market list. 10 req/s per group per IP.

Book        type `orderbook`, the exchange's only book channel: every frame is the
            complete book of one code (30 units, 15 in frames before 2025), so each frame
            replaces the book and a lost frame is repaired by the next; no sequence, no
            checksum (book_resync "frames"). Codes are subscribed plain (30 units) and the
            top book_depth (1-30) kept. A unit holds one bid and one ask level
            (bid_price, bid_size, ask_price, ask_size), best first; thin books are padded
            with units of price 0, which are no levels. Numbers as in the ticker: JSON
            numbers, 1.16539E8 and trailing zeros kept as text. `timestamp` is the time
            of the book's last change (ms). The first frame of a code is stream_type
            SNAPSHOT, later ones REALTIME; a quiet book sends nothing. Books have sockets
            of their own: a request replaces a socket's whole subscription, and the
            ticker's socket stays as it was measured.
Book REST   /v1/orderbook?markets=KRW-BTC,...&count=30: an array of the same objects
            (plain numbers); one unknown code fails the call with 404. 10 req/s.
"""

import json
import uuid

import msgspec

from shared import cli
from shared.numbers import ABSENT, NumberError, raw_plain_all_or_none
from shared.record import ExchangeError, FrameError, Level, Source, Ticker
from shared.venue import BookMessage, Market, Venue, comma_joined_urls

REST_MARKETS_PER_CALL = 100
BOOK_UNITS = 30  # units a frame carries, and the most a REST call asks for


class ErrorBody(msgspec.Struct, gc=False):
    name: str | int
    message: str


# Not tracked by the garbage collector (gc=False): a decoded frame holds no reference
# cycle, and untracked structs are made and freed cheaper.
class Prices(msgspec.Struct, gc=False):
    """The ticker keys we use, named alike on the socket and in REST."""

    trade_price: msgspec.Raw = ABSENT
    opening_price: msgspec.Raw = ABSENT
    high_price: msgspec.Raw = ABSENT
    low_price: msgspec.Raw = ABSENT
    acc_trade_volume_24h: msgspec.Raw = ABSENT
    acc_trade_price_24h: msgspec.Raw = ABSENT
    timestamp: int | None = None


class Frame(Prices):
    """A DEFAULT-format ticker, a status frame or an error."""

    type: str | None = None
    code: str | None = None
    status: str | None = None
    error: ErrorBody | None = None


# The SIMPLE format: the same frame with these keys abbreviated (the docs' ticker table).
SIMPLE_KEYS = {"type": "ty", "code": "cd", "trade_price": "tp", "opening_price": "op", "high_price": "hp",
               "low_price": "lp", "acc_trade_volume_24h": "atv24h", "acc_trade_price_24h": "atp24h",
               "timestamp": "tms"}
SimpleFrame = msgspec.defstruct("SimpleFrame", [(field.name, field.type, field.default)
                                                for field in msgspec.structs.fields(Frame)], rename=SIMPLE_KEYS,
                                gc=False)


class Unit(msgspec.Struct):
    """One row of a book: a bid level and an ask level."""

    ask_price: msgspec.Raw = ABSENT
    bid_price: msgspec.Raw = ABSENT
    ask_size: msgspec.Raw = ABSENT
    bid_size: msgspec.Raw = ABSENT


class BookFrame(msgspec.Struct):
    """A DEFAULT-format orderbook frame or REST item, a status frame or an error."""

    type: str | None = None
    code: str | None = None
    market: str | None = None  # REST's name for the code
    timestamp: int | None = None
    orderbook_units: list[Unit] = []
    status: str | None = None
    error: ErrorBody | None = None


class SimpleUnit(msgspec.Struct, rename={"ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs"}):
    """A unit in the SIMPLE format (the docs' abbreviated keys)."""

    ask_price: msgspec.Raw = ABSENT
    bid_price: msgspec.Raw = ABSENT
    ask_size: msgspec.Raw = ABSENT
    bid_size: msgspec.Raw = ABSENT


class SimpleBookFrame(msgspec.Struct, rename={"type": "ty", "code": "cd", "timestamp": "tms",
                                              "orderbook_units": "obu"}):
    """An orderbook frame in the SIMPLE format, as other tools capture it."""

    type: str | None = None
    code: str | None = None
    timestamp: int | None = None
    orderbook_units: list[SimpleUnit] = []
    status: str | None = None
    error: ErrorBody | None = None


class RestTicker(Prices, kw_only=True):
    market: str


class MarketInfo(msgspec.Struct):
    market: str


class Upbit(Venue):
    name = "upbit"
    market_id_form = ("-", True)  # KRW-BTC
    # One connection can carry all ~855 markets; 300 keeps a dropped socket's blast
    # radius small while staying within 5 connects/s.
    markets_per_connection = 300
    rest_markets_per_call = REST_MARKETS_PER_CALL
    rest_unknown_market = "Code not found"  # HTTP 404 {"error":{"name":404,"message":"Code not found"}}
    protocol_ping_interval_s = 20.0
    book_depths = range(1, BOOK_UNITS + 1)
    book_resync = "frames"
    book_rest_path = "/v1/orderbook"

    _frames = msgspec.json.Decoder(Frame | list[Frame])  # a list in the *_LIST formats
    _simple_frames = msgspec.json.Decoder(SimpleFrame | list[SimpleFrame])  # type: ignore[valid-type]
    _rest_tickers = msgspec.json.Decoder(list[RestTicker])
    _market_list = msgspec.json.Decoder(list[MarketInfo])
    _book_frames = msgspec.json.Decoder(BookFrame | list[BookFrame])
    _simple_book_frames = msgspec.json.Decoder(SimpleBookFrame | list[SimpleBookFrame])
    _rest_books = msgspec.json.Decoder(list[BookFrame])

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{quote}-{base}", base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return [json.dumps([
            {"ticket": str(uuid.uuid4())},
            {"type": "ticker", "codes": [market.raw for market in markets]},
            {"format": "DEFAULT"},
        ])]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        if type(message) is Frame and message.type == "ticker" and message.code is not None:
            # The DEFAULT format, as subscribed: one ticker a frame, without the list and the
            # call a ticker that the other forms take (~0.8k instructions of ~66k a record).
            return [self._ticker(message.code, message, received_ns, "ws")]
        items = message if type(message) is list else [message]
        if items and items[0].type is None:
            if items[0].status is not None:
                return []  # {"status":"UP"}: keepalive answer
            if items[0].error is not None:
                raise ExchangeError(f"{items[0].error.name}: {items[0].error.message}")
            # Perhaps the SIMPLE format: read again with its keys.
            simple = self._simple_frames.decode(frame)
            items = simple if type(simple) is list else [simple]
        return [self._from_frame(item, received_ns) for item in items]

    def _from_frame(self, message: Frame, received_ns: int) -> Ticker:
        if message.type == "ticker" and message.code is not None:
            return self._ticker(message.code, message, received_ns, "ws")
        raise FrameError("neither a ticker, a status nor an error frame")

    def market_list_url(self) -> str:
        return f"{self.rest_base}/v1/market/all"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        markets = []
        for info in self._market_list.decode(body):
            quote, _, base = info.market.partition("-")
            if quote in wanted and base:
                markets.append(Market(raw=info.market, base=base, quote=quote))
        return markets

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return comma_joined_urls(f"{self.rest_base}/v1/ticker?markets=", markets, REST_MARKETS_PER_CALL)

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        return [self._ticker(item.market, item, received_ns, "rest") for item in self._rest_tickers.decode(body)]

    def _ticker(self, raw: str, prices: Prices, received_ns: int, source: Source) -> Ticker:
        last, open_24h, high_24h, low_24h, volume_24h, quote_volume_24h = raw_plain_all_or_none(
            prices.trade_price, prices.opening_price, prices.high_price, prices.low_price,
            prices.acc_trade_volume_24h, prices.acc_trade_price_24h)
        if last is None:
            raise NumberError("ticker without a trade_price")
        # The ticker type carries no best bid/ask.
        return Ticker(
            self.name, self.symbols[raw], raw, last, None, None, None, None,
            open_24h, high_24h, low_24h, volume_24h, quote_volume_24h,
            prices.timestamp, received_ns, source,
        )

    # --- order book ------------------------------------------------------------------

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return [json.dumps([
            {"ticket": str(uuid.uuid4())},
            {"type": "orderbook", "codes": [market.raw for market in markets]},
            {"format": "DEFAULT"},
        ])]

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        message = self._book_frames.decode(frame)
        items = message if type(message) is list else [message]
        if items and items[0].type is None:
            if items[0].status is not None:
                return []  # {"status":"UP"}
            if items[0].error is not None:
                raise ExchangeError(f"{items[0].error.name}: {items[0].error.message}")
            simple = self._simple_book_frames.decode(frame)
            items = simple if type(simple) is list else [simple]
        messages = []
        for item in items:
            if item.type != "orderbook" or item.code is None:
                raise FrameError("neither an orderbook, a status nor an error frame")
            messages.append(self._book(item.code, item))
        return messages

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        return [url + f"&count={BOOK_UNITS}" for url in
                comma_joined_urls(f"{self.rest_base}{self.book_rest_path}?markets=", markets, REST_MARKETS_PER_CALL)]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        books = []
        for item in self._rest_books.decode(body):
            if item.market is None:
                raise FrameError("a REST book without its market")
            books.append(self._book(item.market, item))
        return books

    def _book(self, code: str, frame: BookFrame | SimpleBookFrame) -> BookMessage:
        """The complete book of one frame, without the zero-price units that pad a thin one."""
        units = frame.orderbook_units
        texts = raw_plain_all_or_none(*[raw for unit in units
                                        for raw in (unit.bid_price, unit.bid_size, unit.ask_price, unit.ask_size)])
        if None in texts:
            raise NumberError("an orderbook unit without one of its prices or sizes")
        bids: list[Level] = []
        asks: list[Level] = []
        for index in range(0, len(texts), 4):
            bid_price, bid_size, ask_price, ask_size = texts[index:index + 4]
            if bid_price.strip("0."):  # type: ignore[union-attr]
                bids.append((bid_price, bid_size))  # type: ignore[arg-type]
            if ask_price.strip("0."):  # type: ignore[union-attr]
                asks.append((ask_price, ask_size))  # type: ignore[arg-type]
        return BookMessage(code, True, bids, asks, exchange_ts=frame.timestamp)


if __name__ == "__main__":
    cli.main(Upbit)
