"""Coinbase (spot): the Exchange feed's public `ticker` and `heartbeat` channels, and the
Advanced Trade feed's `level2` for order books.

Endpoints   wss://ws-feed.exchange.coinbase.com, https://api.exchange.coinbase.com (the
            old *.pro.coinbase.com hosts are dead); books come from the Advanced Trade
            feed (see Book). Its tickers carry no trade time, so they are not
            subscribed; its ticker frames are read all the same, for captures made by
            other tools (ccxt):
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

Book        the Advanced Trade feed's `level2` (wss://advanced-trade-ws.coinbase.com,
            config book_ws_url), on book sockets of their own, without credentials:
            the Exchange feed's `level2` now needs authentication ("Failed to
            subscribe" without it), and its `level2_batch` carries no sequence at all,
            so a lost, repeated or reordered message could not be seen there.
Sequence    `sequence_num` counts every message of an Advanced Trade connection, from
            0, across all its channels (subscriptions acks and heartbeats included)
            and products. It is no per-product sequence, so it is checked as what it
            is, per connection (Venue NumberedBookFrame, shared.book_channel): every
            frame is the last + 1. A gap, a repeat or an older number means any
            message of the socket may be missing: every book of that socket is lost
            (reason gap) and its products resubscribed, unsubscribe then subscribe in
            one go, for new snapshots (a crossed book is resubscribed alone). An
            unreadable frame leaves its number unseen (the next one shows the gap); a
            change that cannot be applied (a level that is no number, dead-lettered)
            loses its book at once, as the numbering goes on. A record's update_id
            is the sequence_num of the last message applied: it grows per product
            within a connection and restarts at 0 after a reconnect.
Book frames one channel a subscribe message: {"type":"subscribe","product_ids":[...],
            "channel":"level2"}, then {"type":"subscribe","channel":"heartbeats"}: a
            channel without updates for 60-90 s is closed otherwise, and the heartbeats
            (one a second) keep a socket of quiet books heard. The ack: {"channel":
            "subscriptions","sequence_num":...,"events":[{"subscriptions":{"level2":
            [...]}}]}. An unknown channel answers {"type":"error","message":
            "authentication failure"}, a frame without sequence_num. 8 messages/s per
            IP unauthenticated: a resubscribe is two, whatever the products. Book data:
            {"channel":"l2_data","timestamp":<send time, ns>,"sequence_num":N,"events":
            [{"type":"snapshot"|"update","product_id","updates":[{"side":"bid"|"offer",
            "event_time","price_level","new_quantity"}]}]}; several products may share
            one message. A product's first event is its snapshot, every level of the
            book, NOT sorted (the book sorts it), megabytes for BTC-USD (the book socket
            takes frames up to 64 MiB); new_quantity "0" deletes a level. The snapshot
            may come before the subscriptions ack (sequence_num 0, then the ack's 1).
            Prices and sizes are strings; exchange_ts is the frame's timestamp. Any
            depth (1-1000) is served: the local book keeps every level.
Book REST   the Exchange API's /products/{id}/book?level=2, for the fallback while a
            socket is down: the whole aggregated book {"bids":[[price,size,orders]],
            "asks",...,"sequence","time"}, `sequence` published as update_id. It is the
            product's Exchange sequence, another domain than sequence_num (~10^11, not a
            connection's count); Advanced Trade's public product_book carries no id at
            all. One product a call, within the ticker's 10 requests/s. The next
            socket's snapshot replaces the REST book.
"""

import json
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Union
from urllib.parse import unquote, urlsplit

import msgspec

from shared import cli
from shared import numbers
from shared.numbers import plain, plain_all_or_none, plain_or_none
from shared.record import ExchangeError, FrameError, Ticker
from shared.venue import BookMessage, Market, NumberedBookFrame, Venue

PRODUCTS_PATH = "/products"
TICKER_SUFFIX = "/ticker"
BOOK_SUFFIX = "/book"
BOOK_CHANNEL = "level2"  # Advanced Trade: subscribed as level2, its messages on l2_data
BOOK_MESSAGES_CHANNEL = "l2_data"
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


class Level2Change(msgspec.Struct):
    side: str  # "bid" | "offer"
    price_level: Number
    new_quantity: Number  # "0" deletes


class Level2Event(msgspec.Struct):
    """An event of an Advanced Trade frame. l2_data's: a product's snapshot or update; a
    heartbeats or subscriptions event has none of these fields (read as empty)."""

    type: str = ""
    product_id: str = ""
    updates: list[Level2Change] = []


class AdvancedBookFrame(msgspec.Struct):
    """Any frame of the Advanced Trade book socket but an error: each is numbered."""

    channel: str
    sequence_num: int
    timestamp: str
    events: list[Level2Event] = []


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


MESSAGES = (TickerMessage, Heartbeat, Subscriptions, ErrorMessage)
KNOWN_TYPES = frozenset(message.__struct_config__.tag for message in MESSAGES)


def _added_type(kind: AnyMessage, known: frozenset[str]) -> bool:
    """True for a message of a type added after this was written, which the docs ask
    clients to ignore; False for a known type of the wrong shape, or no feed message."""
    return kind.type is not None and kind.type not in known


def _exchange_error(error: ErrorMessage) -> ExchangeError:
    return ExchangeError(f"{error.message}: {error.reason}" if error.reason else error.message)


class RestBook(msgspec.Struct):
    """GET /products/{id}/book?level=2: [price, size, number of orders] levels, best first.
    The body does not name its product."""

    sequence: int
    bids: list[tuple[Number, Number, int]]
    asks: list[tuple[Number, Number, int]]
    time: str | None = None


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


def _product_in(path: str, suffix: str) -> str | None:
    """BTC-USD of the path /products/BTC-USD<suffix>; None for any other path."""
    if path.startswith(PRODUCTS_PATH + "/") and path.endswith(suffix):
        return unquote(path[len(PRODUCTS_PATH) + 1:-len(suffix)])
    return None


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


def _level2_request(kind: str, markets: list[Market]) -> str:
    return json.dumps({"type": kind, "product_ids": [market.raw for market in markets], "channel": BOOK_CHANNEL})


def _book_message(event: Level2Event, sequence_num: int, sent_ms: int) -> BookMessage:
    """One product's snapshot or update of an l2_data frame, numbered by the frame."""
    if event.type not in ("snapshot", "update"):
        raise FrameError(f"l2_data event of type {event.type!r}")
    bids, asks = [], []
    for change in event.updates:
        if change.side == "bid":
            bids.append((change.price_level, change.new_quantity))
        elif change.side == "offer":
            asks.append((change.price_level, change.new_quantity))
        else:
            raise FrameError(f"l2_data level of side {change.side!r}")
    return BookMessage(event.product_id, event.type == "snapshot", bids, asks, update_id=sequence_num,
                       exchange_ts=sent_ms)


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

    # Book: Advanced Trade level2, resubscribed for a fresh snapshot when a book is lost.
    # It sends every level, so any depth is served; 1000 bounds what one record holds.
    book_depths = range(1, 1001)
    book_resync = "resubscribe"
    # The snapshot is the whole book in one frame: megabytes for BTC-USD.
    book_max_frame_bytes = 64 * 1024 * 1024
    # A reconnect asks for every product's whole book again: fewer a socket than tickers.
    book_markets_per_connection = 50

    _frames = msgspec.json.Decoder(Union[MESSAGES])  # type: ignore[valid-type]
    _any_message = msgspec.json.Decoder(AnyMessage)
    _advanced_messages = msgspec.json.Decoder(AdvancedMessage)
    _rest_ticker = msgspec.json.Decoder(RestTicker)
    _products = msgspec.json.Decoder(list[Product])
    _book_frames = msgspec.json.Decoder(AdvancedBookFrame)
    _errors = msgspec.json.Decoder(ErrorMessage)
    _rest_books = msgspec.json.Decoder(RestBook)

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
            if not _added_type(kind, KNOWN_TYPES):
                raise
            return []
        if type(message) is TickerMessage:
            raw = message.product_id
            return [Ticker(
                self.name, self.symbols[raw], raw, plain(message.price),
                *plain_all_or_none(message.best_bid, message.best_ask, message.best_bid_size,
                                   message.best_ask_size, message.open_24h, message.high_24h,
                                   message.low_24h, message.volume_24h),
                None,
                epoch_ms(message.time), received_ns, "ws",
            )]
        if type(message) is ErrorMessage:
            raise _exchange_error(message)
        return []  # heartbeat, subscriptions ack

    def _advanced(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._advanced_messages.decode(frame)
        if message.channel in ADVANCED_QUIET_CHANNELS:
            return []
        if message.channel not in ADVANCED_TICKER_CHANNELS:
            raise FrameError(f"Advanced Trade channel {message.channel!r}, which is never subscribed")
        sent_ms = epoch_ms(message.timestamp)
        tickers = []
        for event in message.events:
            for item in event.tickers:
                if not item.product_id:
                    continue  # the empty ticker of a batch's first snapshot (a known quirk)
                # No open in this channel: None is kept out of the numbers checked together.
                bid, ask, bid_size, ask_size, high_24h, low_24h, volume_24h = plain_all_or_none(
                    item.best_bid, item.best_ask, item.best_bid_quantity, item.best_ask_quantity,
                    item.high_24_h, item.low_24_h, item.volume_24_h)
                tickers.append(Ticker(
                    self.name, self.symbols[item.product_id], item.product_id, plain(item.price),
                    bid, ask, bid_size, ask_size, None, high_24h, low_24h, volume_24h,
                    None, sent_ms, received_ns, "ws",
                ))
        return tickers

    # --- book: Advanced Trade level2, and the Exchange /products/{id}/book for REST ------

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        """level2 (the whole book, then its changes) and heartbeats, which keep the socket
        and its quiet channels alive: one channel a message."""
        return [_level2_request("subscribe", markets), json.dumps({"type": "subscribe", "channel": "heartbeats"})]

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        """A fresh snapshot of `markets`: level2 unsubscribed, then subscribed again."""
        return [_level2_request(kind, markets) for kind in ("unsubscribe", "subscribe")]

    def parse_book_ws(self, frame: bytes, received_ns: int) -> NumberedBookFrame:
        """Every frame numbered by its sequence_num, with the book messages of an l2_data
        frame; heartbeats and acks carry none. An error frame raises."""
        try:
            message = self._book_frames.decode(frame)
        except msgspec.ValidationError:
            if self._any_message.decode(frame).type != "error":
                raise
            raise _exchange_error(self._errors.decode(frame)) from None
        if message.channel != BOOK_MESSAGES_CHANNEL:
            return NumberedBookFrame(message.sequence_num, [])  # heartbeats, subscriptions
        sent_ms = epoch_ms(message.timestamp)
        return NumberedBookFrame(message.sequence_num, [
            _book_message(event, message.sequence_num, sent_ms) for event in message.events])

    def is_book_rest(self, url: str) -> bool:
        """The book's path names its product: /products/{id}/book."""
        return _product_in(urlsplit(url).path, BOOK_SUFFIX) is not None

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        """The aggregated book (level 2), every level: no depth to ask for. One product a call."""
        return [f"{self.rest_base}{PRODUCTS_PATH}/{market.raw}{BOOK_SUFFIX}?level=2" for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        """The product's book at its `sequence`, the product named by the URL."""
        path = urlsplit(url).path
        product_id = _product_in(path, BOOK_SUFFIX)
        if product_id is None:
            raise FrameError(f"a REST book from {path}, not /products/{{id}}/book")
        book = self._rest_books.decode(body)
        return [BookMessage(product_id, True, [(price, size) for price, size, _ in book.bids],
                            [(price, size) for price, size, _ in book.asks],
                            update_id=book.sequence, exchange_ts=epoch_ms(book.time) if book.time else None)]

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
        product_id = _product_in(urlsplit(url).path, TICKER_SUFFIX)
        if product_id is not None:
            return [self.parse_product_ticker(product_id, body, received_ns)]
        return super().parse_rest(url, body, received_ns, quotes)

    def parse_product_ticker(self, product_id: str, body: bytes, received_ns: int) -> Ticker:
        item = self._rest_ticker.decode(body)
        return Ticker(
            self.name, self.symbols[product_id], product_id, plain(item.price),
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
