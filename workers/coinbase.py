"""Coinbase Exchange (spot): the public `ticker` and `heartbeat` channels of the feed.

Endpoints   wss://ws-feed.exchange.coinbase.com, https://api.exchange.coinbase.com (the
            old *.pro.coinbase.com hosts are dead). Not the Advanced Trade API
            (advanced-trade-ws.coinbase.com), whose tickers carry no trade time; its
            frames are read all the same, for captures made by other tools (ccxt):
            {"channel":"ticker"|"ticker_batch","timestamp":<send time, ns>,"events":
            [{"type":"snapshot"|"update","tickers":[{"product_id","price","volume_24_h",
            "low_24_h","high_24_h","best_bid","best_bid_quantity",...}]}]}, exchange_ts
            being the send time; ticker_batch has sent placeholders with every field
            "" (nothing to publish); heartbeats and subscriptions carry nothing.
Subscribe   {"type":"subscribe","product_ids":[...],"channels":["ticker","heartbeat"]}
            within 5 s of connecting, or the server disconnects. Product ids are upper
            case BASE-QUOTE (BTC-USD), the unified form itself. The ack
            {"type":"subscriptions","channels":[{"name":...,"product_ids":[...]}]}
            lists the connection's whole subscription; channel names in it vary
            (ticker_batch was acked as "ticker_1000"), so it is not inspected. A bad
            request answers {"type":"error","message":"Failed to subscribe","reason":...}.
            Every frame has a `type`; the docs reserve the right to add types and ask
            clients to ignore those they don't know.
Limits      8 connects or subscribes/s per IP (bursts of 20); 100 client messages/s per
            IP; at most 10 subscriptions per product and channel.
Keepalive   no application ping. The client sends RFC 6455 pings (a silent client was
            seen dropped after ~100 s); `heartbeat` sends one frame per product per
            second even when nothing trades, which keeps the watchdog fed.
Ticker      {"type":"ticker","sequence":...,"product_id":"BTC-USD","price":"29940.91",
            "open_24h","volume_24h","low_24h","high_24h","volume_30d","best_bid",
            "best_bid_size","best_ask","best_ask_size","side","time","trade_id",
            "last_size"}. Decimals are JSON strings of varying length ("31888",
            "29940.90"); best_bid_size/best_ask_size exist only since 2022 (optional
            here). `time` is the last trade's RFC 3339 UTC time; the first ticker after
            subscribing repeats the latest state with its old time. There is no quote
            volume. `sequence` counts every message of the product across all channels,
            so tickers skip numbers by design: a gap is not a loss, and the record
            contract has no field for it, so it is left out.
REST        /products/{id}/ticker, one product per call: {"ask","bid","volume","trade_id",
            "price","size","time",...} with no product id in the body (it is taken from
            the URL) and `time` with 6 or 9 fraction digits. 10 requests/s per IP,
            bursts of 15; a User-Agent header is required (HTTP 400 without). /products
            is the market list (status "online", trading_disabled false).
"""

import json
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Union
from urllib.parse import unquote, urlsplit

import msgspec

from shared import cli
from shared import numbers
from shared.book import BookMessage
from shared.numbers import plain, plain_all_or_none, plain_or_none
from shared.record import ExchangeError, FrameError, Ticker
from shared.venue import Market, Venue

PRODUCTS_PATH = "/products"
TICKER_SUFFIX = "/ticker"
# The book comes from the Advanced Trade API (see the docstring): its own hosts.
ADVANCED_WS_URL = "wss://advanced-trade-ws.coinbase.com"
ADVANCED_REST_URL = "https://api.coinbase.com"
PRODUCT_BOOK_PATH = "/api/v3/brokerage/market/product_book"
BOOK_CHANNEL = "level2"  # subscribed by this name; its pushes come on channel "l2_data"
# A decimal field is never empty on this feed; Coinbase's other API has sent
# empty-string placeholder tickers, which must not become "" prices.
Number = Annotated[numbers.Number, msgspec.Meta(min_length=1)]


class TickerMessage(msgspec.Struct, tag_field="type", tag="ticker"):
    product_id: str
    price: Number
    time: str
    best_bid: Number | None = None
    best_ask: Number | None = None
    best_bid_size: Number | None = None
    best_ask_size: Number | None = None
    open_24h: Number | None = None
    high_24h: Number | None = None
    low_24h: Number | None = None
    volume_24h: Number | None = None


class Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat"):
    """One a second per product: liveness only."""


class Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions"):
    """The subscribe ack; its channel names vary, so it is matched by type alone."""


class ErrorMessage(msgspec.Struct, tag_field="type", tag="error"):
    message: str
    reason: str | None = None


class AnyMessage(msgspec.Struct):
    """What every feed message has (an Advanced Trade one: a channel instead); read only
    when the frame is none of the above."""

    type: str | None = None
    channel: str | None = None


class AdvancedTicker(msgspec.Struct):
    product_id: str  # "" in a placeholder
    price: str
    volume_24_h: str | None = None
    low_24_h: str | None = None
    high_24_h: str | None = None
    best_bid: str | None = None
    best_ask: str | None = None
    best_bid_quantity: str | None = None
    best_ask_quantity: str | None = None


class AdvancedEvent(msgspec.Struct):
    tickers: list[AdvancedTicker] = []


class AdvancedMessage(msgspec.Struct):
    channel: str
    timestamp: str = ""
    events: list[AdvancedEvent] = []


ADVANCED_TICKER_CHANNELS = ("ticker", "ticker_batch")
ADVANCED_QUIET_CHANNELS = ("heartbeats", "subscriptions")


class L2Level(msgspec.Struct):
    side: str  # "bid" or "offer"
    price_level: Number
    new_quantity: Number  # "0" deletes the level


class L2Event(msgspec.Struct):
    type: str = ""  # "snapshot" or "update"; heartbeats and subscriptions events have none
    product_id: str = ""
    updates: list[L2Level] = []


class L2Frame(msgspec.Struct):
    """Any frame of an Advanced Trade level2 socket: l2_data, heartbeats, subscriptions
    (all with the connection's sequence_num), or an error."""

    channel: str = ""
    timestamp: str = ""
    sequence_num: int | None = None
    events: list[L2Event] = []
    type: str = ""  # "error"
    message: str = ""


class PriceLevel(msgspec.Struct):
    price: Number
    size: Number


class PriceBook(msgspec.Struct):
    product_id: str
    time: str
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []


class ProductBook(msgspec.Struct):
    pricebook: PriceBook


MESSAGES = (TickerMessage, Heartbeat, Subscriptions, ErrorMessage)
KNOWN_TYPES = frozenset(message.__struct_config__.tag for message in MESSAGES)


class RestTicker(msgspec.Struct):
    price: Number
    time: str
    bid: Number | None = None
    ask: Number | None = None
    volume: Number | None = None


class Product(msgspec.Struct):
    id: str
    base_currency: str
    quote_currency: str
    status: str
    trading_disabled: bool = False


_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(rfc3339: str) -> int:
    """Milliseconds since the epoch of a Coinbase UTC time, truncated like any ms clock.

    '2025-06-06T05:00:31.886136Z' -> 1749186031886. The fraction has 6 or 9 digits (or
    none); it is cut, not rounded, so 9 digits never carry into the next millisecond.
    """
    if rfc3339[-1:] != "Z":
        raise FrameError(f"not a UTC time: {rfc3339!r}")
    fraction = rfc3339[20:-1]
    if len(rfc3339) > 20 and (rfc3339[19] != "." or not fraction.isdigit()):
        raise FrameError(f"not an RFC 3339 time: {rfc3339!r}")
    return _whole_second_ms(rfc3339[:19]) + int(fraction[:3].ljust(3, "0"))


@lru_cache(maxsize=64)
def _whole_second_ms(iso_second: str) -> int:
    """Cached: parsing the date costs ~0.8 µs, and every ticker of one second shares it."""
    return (datetime.fromisoformat(iso_second) - _EPOCH) // _MILLISECOND


class Coinbase(Venue):
    name = "coinbase"
    market_id_form = ("-", False)  # BTC-USD
    # One subscribe message carries them all; 200 products are 200 heartbeats/s plus
    # their tickers on one reader, and two sockets at most for every USD market.
    markets_per_connection = 200
    protocol_ping_interval_s = 20.0
    connect_gap_s = 0.25  # 4 connects/s, half the per-IP allowance
    rest_min_interval_s = 0.1  # 10 requests/s; the burst of 15 absorbs overlapping polls
    rest_markets_per_call = 1
    rest_unknown_market = "NotFound"  # HTTP 404 {"message":"NotFound"}
    # The RestClient always sends its own User-Agent, which Coinbase's REST requires.

    _frames = msgspec.json.Decoder(Union[MESSAGES])  # type: ignore[valid-type]
    _any_message = msgspec.json.Decoder(AnyMessage)
    _advanced_messages = msgspec.json.Decoder(AdvancedMessage)
    _rest_ticker = msgspec.json.Decoder(RestTicker)
    _products = msgspec.json.Decoder(list[Product])
    _l2_frames = msgspec.json.Decoder(L2Frame)
    _product_books = msgspec.json.Decoder(ProductBook)

    def __init__(self, ws_url: str, rest_url: str, book_ws_url: str = ADVANCED_WS_URL,
                 book_rest_url: str = ADVANCED_REST_URL) -> None:
        super().__init__(ws_url, rest_url)
        self.book_ws_base = book_ws_url.rstrip("/")
        self.book_rest_base = book_rest_url.rstrip("/")

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{base}-{quote}", base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return [json.dumps({
            "type": "subscribe",
            "product_ids": [market.raw for market in markets],
            "channels": ["ticker", "heartbeat"],
        })]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        try:
            message = self._frames.decode(frame)
        except msgspec.ValidationError:
            kind = self._any_message.decode(frame)
            if kind.type is None and kind.channel is not None:
                return self._advanced(frame, received_ns)
            if kind.type is None or kind.type in KNOWN_TYPES:
                raise  # a known type of the wrong shape, or no message of either feed
            return []  # a type added after this was written: ignore it, as the docs ask
        if type(message) is TickerMessage:
            raw = message.product_id
            return [Ticker(
                self.name, self.symbol_of(raw), raw, plain(message.price),
                *plain_all_or_none(message.best_bid, message.best_ask, message.best_bid_size,
                                   message.best_ask_size, message.open_24h, message.high_24h,
                                   message.low_24h, message.volume_24h),
                None,
                epoch_ms(message.time), received_ns, "ws",
            )]
        if type(message) is ErrorMessage:
            raise ExchangeError(f"{message.message}: {message.reason}" if message.reason else message.message)
        return []  # heartbeat, subscriptions ack

    def _advanced(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._advanced_messages.decode(frame)
        if message.channel in ADVANCED_QUIET_CHANNELS:
            return []
        if message.channel not in ADVANCED_TICKER_CHANNELS:
            raise FrameError(f"Advanced Trade channel {message.channel!r}, which is never subscribed")
        sent_ms = epoch_ms(message.timestamp)
        return [Ticker(
            self.name, self.symbol_of(item.product_id), item.product_id, plain(item.price),
            *plain_all_or_none(item.best_bid, item.best_ask, item.best_bid_quantity, item.best_ask_quantity,
                               None, item.high_24_h, item.low_24_h, item.volume_24_h),
            None, sent_ms, received_ns, "ws",
        ) for event in message.events for item in event.tickers if item.product_id]

    # --- book: Advanced Trade level2, and its product_book for the REST fallback ---------

    def book_subscribe_messages(self, markets: list[Market]) -> list[str]:
        """level2 for the products (the full book: no depth to ask for), and heartbeats,
        without which a channel with no updates is closed after 60 to 90 s."""
        return [
            json.dumps({"type": "subscribe", "product_ids": [market.raw for market in markets],
                        "channel": BOOK_CHANNEL}),
            json.dumps({"type": "subscribe", "channel": "heartbeats"}),
        ]

    def parse_book_ws(self, frame: bytes) -> tuple[int, list[BookMessage]]:
        """The connection's sequence_num of the frame, and its book messages (one an
        event: a frame may carry several products). Heartbeats and acks have none."""
        message = self._l2_frames.decode(frame)
        if message.sequence_num is None:
            if message.type == "error":
                raise ExchangeError(message.message)
            raise FrameError("an Advanced Trade frame without sequence_num")
        if message.channel != "l2_data":
            if message.channel in ADVANCED_QUIET_CHANNELS:
                return message.sequence_num, []
            raise FrameError(f"Advanced Trade channel {message.channel!r}, which is never subscribed")
        sent_ms = epoch_ms(message.timestamp)
        books = []
        for event in message.events:
            if event.type not in ("snapshot", "update"):
                raise FrameError(f"l2_data event of type {event.type!r}")
            bids, asks = [], []
            for level in event.updates:
                if level.side == "bid":
                    bids.append((level.price_level, level.new_quantity))
                elif level.side == "offer":
                    asks.append((level.price_level, level.new_quantity))
                else:
                    raise FrameError(f"l2_data level of side {level.side!r}")
            books.append(BookMessage(event.product_id, event.type == "snapshot", bids, asks,
                                     None, message.sequence_num, sent_ms))
        return message.sequence_num, books

    def rest_book_url(self, market: Market, depth: int) -> str:
        return f"{self.book_rest_base}{PRODUCT_BOOK_PATH}?product_id={market.raw}&limit={depth}"

    def parse_rest_book(self, body: bytes) -> BookMessage:
        """The product's book, without a sequence id."""
        book = self._product_books.decode(body).pricebook
        return BookMessage(book.product_id, True, [(level.price, level.size) for level in book.bids],
                           [(level.price, level.size) for level in book.asks], None, None, epoch_ms(book.time))

    def market_list_url(self) -> str:
        return self.rest_base + PRODUCTS_PATH

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        return [
            Market(raw=product.id, base=product.base_currency, quote=product.quote_currency)
            for product in self._products.decode(body)
            if product.quote_currency in wanted and product.status == "online" and not product.trading_disabled
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return [f"{self.rest_base}{PRODUCTS_PATH}/{market.raw}{TICKER_SUFFIX}" for market in markets]

    def parse_rest(self, url: str, body: bytes, received_ns: int, quotes: list[str]) -> list[Ticker]:
        """A ticker body does not name its product: the URL it came from does."""
        path = urlsplit(url).path
        if path.startswith(PRODUCTS_PATH + "/") and path.endswith(TICKER_SUFFIX):
            product_id = unquote(path[len(PRODUCTS_PATH) + 1:-len(TICKER_SUFFIX)])
            return [self.parse_product_ticker(product_id, body, received_ns)]
        return super().parse_rest(url, body, received_ns, quotes)

    def parse_product_ticker(self, product_id: str, body: bytes, received_ns: int) -> Ticker:
        item = self._rest_ticker.decode(body)
        return Ticker(
            self.name, self.symbol_of(product_id), product_id, plain(item.price),
            plain_or_none(item.bid), plain_or_none(item.ask), None, None,
            None, None, None, plain_or_none(item.volume), None,
            epoch_ms(item.time), received_ns, "rest",
        )

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        # parse_rest routes every ticker URL to parse_product_ticker; what reaches this
        # is a body from a URL this venue never calls (say, in a replayed capture).
        raise FrameError("a REST body from neither /products nor /products/{id}/ticker")


if __name__ == "__main__":
    cli.main(Coinbase)
