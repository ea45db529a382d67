"""Kraken Spot: the `ticker` and `book` channels of WebSocket v2.

Endpoints   wss://ws.kraken.com/v2 (public, text frames of JSON objects)
            https://api.kraken.com/0/public (REST; answers {"error":[...],"result":{...}},
            a non-empty `error` often with HTTP 200)
Symbols     v2 names pairs BTC/USD and DOGE/USD; XBT/USD is refused ("Currency pair
            not supported XBT/USD"). REST and AssetPairs.wsname still say XBT and XDG,
            and REST result keys are Kraken's canonical pair names (XXBTZUSD, XETHZUSD,
            but SOLUSD, XBTUSDT), which are not derivable from the symbol: they are
            looked up in /AssetPairs, never guessed.
Subscribe   {"method":"subscribe","params":{"channel":"ticker","symbol":[...],
            "event_trigger":"trades","snapshot":true}}. On connect the server sends
            a `status` frame first; then one ack per symbol (a failed symbol gets its
            own {"success":false,"error":...,"symbol":...} and the others still
            succeed), one `snapshot` ticker per symbol, then `update`s.
Limits      not published: message rate is load-dependent ({"Error":"Exceeded msg
            rate"}), about 150 connects per 10 min per IP (third-party). So: 100 pairs
            per connection, 50 per subscribe message, 5 control messages/s at most.
            Public REST: about one call per second per IP.
Keepalive   the server sends {"channel":"heartbeat"} each second without other data,
            and drops a client it hears nothing from (about a minute, unverified); the
            client sends the application ping {"method":"ping","req_id":1}, answered
            by {"method":"pong",...}. No RFC 6455 pings are needed: heartbeats feed
            the watchdog. Cloudflare in front may send the text "CloudFlare WebSocket
            proxy restarting" before it drops the socket: reconnect at once.
Ticker      {"channel":"ticker","type":"snapshot"|"update","data":[{symbol, bid,
            bid_qty, ask, ask_qty, last, volume, vwap, low, high, change, change_pct,
            timestamp}]}. Both types carry every field (not deltas). Numbers are JSON
            numbers printed at the pair's precision with trailing zeros (0.99980);
            docs and Kraken's SDK say they may also be strings, so both are kept as raw
            text. low/high/volume are rolling 24 h; there is no open price and no quote
            volume. `timestamp` (RFC 3339, µs) is the time of the last ticker change
            and is missing from older docs: exchange_ts is None without it.
v1          (wss://ws.kraken.com, not used; cryptofeed still records it) its ticker is
            read too, for captures made by other tools: [channelID, {a, b, c, v, p, t, l,
            h, o}, "ticker", "XBT/USD"], REST's positional lists with o (open) as well;
            events such as {"event":"heartbeat"} carry nothing, status "error" is the
            exchange's error.
Book        the v2 `book` channel, chosen over v1 (frozen, arrays, checksum only in
            updates): {"method":"subscribe","params":{"channel":"book","symbol":[...],
            "depth":N,"snapshot":true}}. N must be one of 10, 25, 100, 500, 1000:
            Kraken refuses any other only in the ack ({"error":"Subscription depth not
            supported","method":"subscribe","success":false,...}, no symbol named) and
            then keeps the socket up with heartbeats and no book, so book_depth
            outside that list is refused at startup (book_depths). One ack a symbol, then one
            `snapshot` a symbol, then `update`s: {"channel":"book","type":...,"data":
            [{"symbol","bids":[{"price","qty"}],"asks":[...],"checksum","timestamp"}]}.
            Prices and quantities are JSON numbers printed at the pair's precision with
            their trailing zeros (0.00000000): kept as raw text, since the checksum is
            computed on those digits. A qty of 0 deletes; update lists come in no
            particular order; levels that leave the subscribed depth are not deleted
            by any message, so the book keeps N levels a side, and only then is the
            checksum computed. There is no sequence id: `checksum` (CRC32 of the top 10
            asks then the top 10 bids, each price and qty without '.' and leading
            zeros, an unsigned 32-bit number) is the only way a lost update shows, and
            it covers the top 10 only (a lost change at level 40 of a depth-100 book
            stays unseen until it reaches the top 10: depth 10 is the one whose every
            record is proven). A wrong checksum or a crossed book: unsubscribe and
            subscribe the symbol again, which brings a new snapshot. `timestamp`
            (RFC 3339, µs) may be missing from a snapshot: exchange_ts is then None.
            Books have sockets of their own (100 pairs each, as the ticker's).
REST book   /0/public/Depth?pair=K&count=N (one pair a call, count at most 500):
            {"error":[],"result":{"XXBTZUSD":{"asks":[["105944.30000","0.136",
            1762820248],...],"bids":[...]}}}: strings, each level with the second of
            its last change, and no time for the book as a whole (exchange_ts None).
            Its prices are written at REST's precision, which may differ from the
            socket's (105944.30000 against 105944.3), so a REST book cannot seed a
            socket book: it serves the fallback, and a socket that is back starts
            with a new snapshot.
REST        /0/public/Ticker?pair=K1,K2 (strings; last c[0], bid b[0] qty b[2], ask a[0]
            qty a[2], 24 h values at index 1 of v/l/h; no timestamp), 50 pairs a call here
            (no cap is published). One unknown pair fails the whole call. /0/public/AssetPairs for the market list and the REST
            keys; `.d` entries are dark pools and have no wsname.
"""

import json
from datetime import datetime, timedelta, timezone
from itertools import chain
from typing import Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec

from shared import cli
from shared.book import KRAKEN, Level
from shared.numbers import ABSENT, Number, NumberError, raw_plain, raw_plain_all_or_none
from shared.record import ExchangeError, FrameError, ServerRestart, Source, Ticker
from shared.venue import BookMessage, Market, Venue

REST_PAIRS_PER_CALL = 50
# The depths the v2 `book` channel accepts (any other is refused in the ack).
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
REST_BOOK_COUNT = 500  # the most levels a side /0/public/Depth returns
SYMBOLS_PER_SUBSCRIBE = 50
# Assets whose v1/REST code differs from the v2 name, both legs of a pair.
V2_NAME = {"XBT": "BTC", "XDG": "DOGE"}
V1_NAME = {v2: v1 for v1, v2 in V2_NAME.items()}
CLOUDFLARE_RESTART = b"CloudFlare WebSocket proxy restarting"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)

Item = TypeVar("Item")


class BookLevel(msgspec.Struct):
    price: msgspec.Raw
    qty: msgspec.Raw


class Data(msgspec.Struct):
    """One element of `data`: a ticker or one symbol's book (status elements decode too,
    and are not read)."""

    symbol: str = ""
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    checksum: int | None = None
    bid: msgspec.Raw = ABSENT
    bid_qty: msgspec.Raw = ABSENT
    ask: msgspec.Raw = ABSENT
    ask_qty: msgspec.Raw = ABSENT
    last: msgspec.Raw = ABSENT
    volume: msgspec.Raw = ABSENT
    low: msgspec.Raw = ABSENT
    high: msgspec.Raw = ABSENT
    timestamp: datetime | None = None


class Frame(msgspec.Struct):
    """A channel push (ticker, heartbeat, status), a method response (ack, pong, error),
    or a v1 event (heartbeat, systemStatus, subscriptionStatus)."""

    channel: str | None = None
    type: str | None = None  # "snapshot" or "update"
    data: list[Data] | None = None
    method: str | None = None
    success: bool | None = None
    error: str | None = None
    symbol: str | None = None  # the pair a failed subscribe names
    rate_limit: str | None = msgspec.field(default=None, name="Error")
    event: str | None = None  # v1
    status: str | None = None  # v1: "error" with errorMessage
    errorMessage: str | None = None  # v1


class RestTicker(msgspec.Struct):
    a: list[msgspec.Raw]  # ask [price, whole lot volume, lot volume]
    b: list[msgspec.Raw]  # bid, same shape
    c: list[msgspec.Raw]  # last trade [price, lot volume]
    v: list[msgspec.Raw]  # volume [today, last 24 h]
    l: list[msgspec.Raw]  # noqa: E741 - Kraken's own key; low [today, last 24 h]
    h: list[msgspec.Raw]  # high [today, last 24 h]


class RestBook(msgspec.Struct):
    asks: list[tuple[Number, Number, int]]  # [price, volume, time of the level's last change]
    bids: list[tuple[Number, Number, int]]


class V1TickerData(RestTicker):
    o: list[msgspec.Raw]  # open [today, last 24 h]


class V1Ticker(msgspec.Struct, array_like=True):
    """v1's ticker push: [channelID, data, "ticker", pair]."""

    channel_id: int
    data: V1TickerData
    channel_name: str
    pair: str


class AssetPair(msgspec.Struct):
    wsname: str | None = None  # the v1 name, XBT/USD
    status: str | None = None  # absent on some live rows


class Envelope(msgspec.Struct, Generic[Item]):
    error: list[str]
    result: dict[str, Item] = {}

    def checked(self) -> dict[str, Item]:
        if self.error:
            raise ExchangeError("; ".join(self.error))
        return self.result


class Kraken(Venue):
    name = "kraken"
    market_id_form = ("/", False)  # BTC/USD
    markets_per_connection = 100
    protocol_ping_interval_s = None
    app_ping_interval_s = 20.0  # well inside the idle limit
    subscribe_gap_s = 0.2
    connect_gap_s = 1.0
    rest_min_interval_s = 1.0
    rest_markets_per_call = REST_PAIRS_PER_CALL
    rest_unknown_market = "EQuery:Unknown asset pair"  # HTTP 200 {"error":["EQuery:Unknown asset pair"]}
    book_depths = BOOK_DEPTHS
    book_resync = "resubscribe"
    book_checksum = KRAKEN
    book_rest_path = "/0/public/Depth"

    _frames = msgspec.json.Decoder(Frame | list[msgspec.Raw])  # a list: a v1 push
    _v1_tickers = msgspec.json.Decoder(V1Ticker)
    _rest_tickers = msgspec.json.Decoder(Envelope[RestTicker])
    _rest_books = msgspec.json.Decoder(Envelope[RestBook])
    _asset_pairs = msgspec.json.Decoder(Envelope[AssetPair])

    def __init__(self, ws_url: str, rest_url: str, book_ws_url: str | None = None) -> None:
        super().__init__(ws_url, rest_url, book_ws_url)
        # v2 symbol <-> REST key (BTC/USD <-> XXBTZUSD), learned from AssetPairs.
        self.rest_keys: dict[str, str] = {}
        self.rest_symbols: dict[str, str] = {}

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{base}/{quote}", base=base, quote=quote)

    def app_ping(self) -> str:
        return '{"method":"ping","req_id":1}'

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return [
            json.dumps({"method": "subscribe", "params": {
                "channel": "ticker",
                "symbol": [market.raw for market in markets[start:start + SYMBOLS_PER_SUBSCRIBE]],
                "event_trigger": "trades", "snapshot": True,
            }}, separators=(",", ":"))
            for start in range(0, len(markets), SYMBOLS_PER_SUBSCRIBE)
        ]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        try:
            message = self._frames.decode(frame)
        except msgspec.DecodeError:
            if frame.startswith(CLOUDFLARE_RESTART):
                raise ServerRestart(CLOUDFLARE_RESTART.decode()) from None
            raise
        if type(message) is list:
            v1 = self._v1_tickers.decode(frame)
            if v1.channel_name != "ticker":
                raise FrameError(f"v1 {v1.channel_name!r} push, which is never subscribed")
            base, _, quote = v1.pair.partition("/")
            v2_name = f"{V2_NAME.get(base, base)}/{V2_NAME.get(quote, quote)}"
            return [self._positional(v1.pair, v2_name, v1.data, raw_plain(v1.data.o[1]), received_ns, "ws")]
        channel = message.channel
        if channel == "ticker":
            if not message.data:
                raise FrameError("ticker frame without data")
            return [self._ticker(item, received_ns) for item in message.data]
        if channel == "heartbeat" or channel == "status":
            return []
        if message.method is not None:
            _check_response(message)
            return []  # subscribe ack (one per symbol) or pong
        _check_rate_limit(message)
        if message.event is not None:  # v1
            if message.status == "error":
                raise ExchangeError(f"{message.event}: {message.errorMessage}")
            return []
        raise FrameError("neither a ticker, heartbeat, status nor a method response")

    # The book channel. -----------------------------------------------------------

    def book_window(self, depth: int) -> int:
        return depth  # the subscribed depth: levels beyond it get no delete

    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return _book_requests("subscribe", markets, {"depth": depth, "snapshot": True})

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        return _book_requests("unsubscribe", markets, {"depth": depth}) + self.book_subscribe_messages(markets, depth)

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        message = self._frames.decode(frame)
        if message.channel == "book":
            return self._books(message)
        if message.channel == "heartbeat" or message.channel == "status":
            return []
        if message.method is not None:
            _check_response(message)
            return []  # subscribe/unsubscribe ack (one per symbol) or pong
        _check_rate_limit(message)
        raise FrameError("neither a book push, heartbeat, status nor a method response")

    def _books(self, message: Frame) -> list[BookMessage]:
        """The book messages of a `book` push, one a symbol."""
        if message.type not in ("snapshot", "update") or not message.data:
            raise FrameError(f"book push of type {message.type!r} with {len(message.data or [])} symbols")
        snapshot = message.type == "snapshot"
        books = []
        for item in message.data:
            if item.checksum is None:
                raise FrameError(f"book push for {item.symbol!r} without checksum")
            books.append(BookMessage(item.symbol, snapshot, _book_levels(item.bids), _book_levels(item.asks),
                                     checksum=item.checksum, exchange_ts=_ms(item.timestamp)))
        return books

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        count = min(depth, REST_BOOK_COUNT)
        return [f"{self.rest_base}{self.book_rest_path}?pair={self.rest_keys.get(market.raw) or _altname(market.raw)}"
                f"&count={count}" for market in markets]

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        """A REST book as a snapshot (no update id, no time; see REST book above)."""
        result = self._rest_books.decode(body).checked()
        if len(result) != 1:
            raise FrameError(f"order book answer for {len(result)} pairs, not one")
        [(key, book)] = result.items()
        raw = self.rest_symbols.get(key) or self._asked_pair(url)
        if raw is None:
            raise FrameError(f"order book answer for unknown REST pair {key!r} (not in AssetPairs)")
        return [BookMessage(raw, True, _rest_levels(book.bids), _rest_levels(book.asks))]

    def _asked_pair(self, url: str) -> str | None:
        """The market a Depth URL asked for by its altname (before AssetPairs named its key)."""
        asked = parse_qs(urlsplit(url).query).get("pair", [""])[0]
        return next((raw for raw in self.symbols if _altname(raw) == asked), None)

    def _ticker(self, item: Data, received_ns: int) -> Ticker:
        raw = item.symbol
        last, bid, ask, bid_qty, ask_qty, high, low, volume = raw_plain_all_or_none(
            item.last, item.bid, item.ask, item.bid_qty, item.ask_qty, item.high, item.low, item.volume)
        if last is None:
            raise NumberError("ticker without a last price")
        return Ticker(
            self.name, self.symbols[raw], raw, last, bid, ask, bid_qty, ask_qty,
            None, high, low, volume, None,
            _ms(item.timestamp), received_ns, "ws",
        )

    def market_list_url(self) -> str:
        return f"{self.rest_base}/0/public/AssetPairs"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        """Markets quoted in `quotes`; also records every pair's REST key for parse_rest_ticker."""
        wanted = set(quotes)
        markets = []
        for key, pair in self._asset_pairs.decode(body).checked().items():
            if pair.wsname is None or key.endswith(".d"):
                continue
            v1_base, _, v1_quote = pair.wsname.partition("/")
            base, quote = V2_NAME.get(v1_base, v1_base), V2_NAME.get(v1_quote, v1_quote)
            raw = f"{base}/{quote}"
            self.rest_keys[raw] = key
            self.rest_symbols[key] = raw
            if quote in wanted and pair.status in (None, "online"):
                markets.append(Market(raw=raw, base=base.upper(), quote=quote.upper()))
        return markets

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        # Until AssetPairs has named a market's REST key, ask for it by its altname
        # (v1 names without the slash, XBTUSD) and look the key up first: the loop
        # fetches and parses these URLs in order, so the Ticker call below finds it.
        unknown = [_altname(market.raw) for market in markets if market.raw not in self.rest_keys]
        names = [self.rest_keys.get(market.raw) or _altname(market.raw) for market in markets]
        return (_chunked(self.market_list_url(), unknown)
                + _chunked(f"{self.rest_base}/0/public/Ticker", names))

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        tickers = []
        for key, item in self._rest_tickers.decode(body).checked().items():
            raw = self.rest_symbols.get(key)
            if raw is None:
                raise FrameError(f"unknown REST pair {key!r} (not in AssetPairs)")
            tickers.append(self._positional(raw, raw, item, None, received_ns, "rest"))
        return tickers

    def _positional(self, raw: str, v2_name: str, item: RestTicker, open_24h: str | None,
                    received_ns: int, source: Source) -> Ticker:
        """A ticker from REST's (and v1's) lists: last c[0], bid b[0] qty b[2], ask a[0] qty
        a[2], 24 h values at index 1; no timestamp."""
        return Ticker(
            self.name, self.symbols[v2_name], raw, raw_plain(item.c[0]),
            raw_plain(item.b[0]), raw_plain(item.a[0]), raw_plain(item.b[2]), raw_plain(item.a[2]),
            open_24h, raw_plain(item.h[1]), raw_plain(item.l[1]), raw_plain(item.v[1]), None,
            None, received_ns, source,
        )


def _check_response(message: Frame) -> None:
    """ExchangeError for a refused request (a failed subscribe names its symbol, a refused
    depth does not)."""
    if message.success is False:
        where = message.method if message.symbol is None else f"{message.method} {message.symbol}"
        raise ExchangeError(f"{where}: {message.error}")


def _check_rate_limit(message: Frame) -> None:
    if message.rate_limit is not None:
        raise ExchangeError(message.rate_limit)


def _ms(stamp: datetime | None) -> int | None:
    return None if stamp is None else (stamp - EPOCH) // ONE_MS


def _book_requests(method: str, markets: list[Market], options: dict[str, int | bool]) -> list[str]:
    return [
        json.dumps({"method": method, "params": {
            "channel": "book",
            "symbol": [market.raw for market in markets[start:start + SYMBOLS_PER_SUBSCRIBE]],
            **options,
        }}, separators=(",", ":"))
        for start in range(0, len(markets), SYMBOLS_PER_SUBSCRIBE)
    ]


def _book_levels(levels: list[BookLevel]) -> list[Level]:
    """(price, qty) texts of v2 book levels, the wire's digits kept for the checksum."""
    if not levels:
        return []
    texts = raw_plain_all_or_none(*chain.from_iterable([(level.price, level.qty) for level in levels]))
    if None in texts:
        raise NumberError("a book level with a null price or qty")
    return list(zip(texts[::2], texts[1::2]))  # type: ignore[arg-type]


def _rest_levels(levels: list[tuple[str, str, int]]) -> list[Level]:
    return [(price, volume) for price, volume, _ in levels]


def _altname(raw: str) -> str:
    base, _, quote = raw.partition("/")
    return V1_NAME.get(base, base) + V1_NAME.get(quote, quote)


def _chunked(url: str, pairs: list[str]) -> list[str]:
    return [f"{url}?pair={','.join(pairs[start:start + REST_PAIRS_PER_CALL])}"
            for start in range(0, len(pairs), REST_PAIRS_PER_CALL)]


if __name__ == "__main__":
    cli.main(Kraken)
