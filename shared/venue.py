"""What a worker module says about its exchange, and nothing else.

A worker module (workers/<exchange>.py) subclasses `Venue` and reads like the
exchange's doc page: endpoints, subscribe, keepalive, parse. Everything that runs the
protocol (connections, reconnects, REST polling, Kafka) is in shared.worker.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import ClassVar, Literal, NamedTuple
from urllib.parse import urlsplit

import msgspec

from shared.book import Checksum
from shared.record import FrameError, Level, Ticker


_ASSET = re.compile(r"[A-Z0-9]+")
# How a lost book is rebuilt (Venue.book_resync).
BookResync = Literal["frames", "resubscribe", "rest"]


class Market(msgspec.Struct, frozen=True):
    raw: str  # the exchange's own id, exactly as its ticker frames spell it
    base: str
    quote: str

    @property
    def symbol(self) -> str:
        return f"{self.base}-{self.quote}"


def comma_joined_urls(prefix: str, markets: list[Market], per_call: int) -> list[str]:
    """`prefix` + the markets' raw ids comma-separated, at most `per_call` ids a URL.

    For REST ticker endpoints that take a list, such as /v1/ticker?markets=KRW-BTC,KRW-ETH.
    """
    return [
        prefix + ",".join(market.raw for market in markets[start:start + per_call])
        for start in range(0, len(markets), per_call)
    ]


class BookMessage(NamedTuple):
    """One market's book in one exchange message, as a worker's parser reads it; what
    shared.book_channel keeps, checks and publishes."""

    raw: str  # the exchange's market id
    # snapshot True: the complete book, (price, size) tuples in any order, which the book
    # keeps as they are (OrderBook.replace: a level with more items would be published so);
    # False: changes, sequences whose first two items are price and size, size 0 deletes.
    snapshot: bool
    bids: Sequence[Sequence[str]]
    asks: Sequence[Sequence[str]]
    # The exchange's sequence: the first and the last id the message covers. A change
    # message applies when first_id is the last applied update_id + 1 (OKX: prevSeqId + 1,
    # so that its keep-alive with seqId == prevSeqId applies too; Binance, Gate.io: U;
    # Bybit: u); after a REST snapshot, the first change may straddle it (Binance's
    # U <= lastUpdateId + 1 <= u). None where the exchange has no sequence.
    update_id: int | None = None
    first_id: int | None = None
    checksum: int | None = None  # the exchange's checksum of the book after the message
    exchange_ts: int | None = None  # ms since the epoch


class NumberedBookFrame(NamedTuple):
    """A book socket's frame where the exchange numbers every message of a connection,
    across its channels and markets (Coinbase Advanced Trade's sequence_num), rather than
    each market's changes: what parse_book_ws returns for such an exchange. The channel
    checks the numbers per connection (shared.book_channel), heartbeats and acks too."""

    number: int
    messages: list[BookMessage]


def snapshot_levels(levels: Sequence[Sequence[str]]) -> list[Level]:
    """(price, size) tuples of a snapshot's levels, whatever else each level carries."""
    return [(level[0], level[1]) for level in levels]


class Symbols(dict[str, str]):
    """Market id -> unified symbol, as learned; symbols[raw] of an id not learned is
    `unlearned(raw)` (Venue.symbol_of). A parser names a ticker's market with this one
    subscript, in C: a Python call to symbol_of cost ~1k instructions a record
    (bench.profile)."""

    def __init__(self, unlearned: Callable[[str], str]) -> None:
        super().__init__()
        self._unlearned = unlearned

    def __missing__(self, raw: str) -> str:
        return self._unlearned(raw)


class Venue(ABC):
    """One exchange's public ticker protocol, and its order book channel."""

    name: ClassVar[str]

    # --- WebSocket -----------------------------------------------------------------
    # Markets on one connection, from the exchange's per-connection limits.
    markets_per_connection: ClassVar[int] = 200
    # RFC 6455 pings sent by the client (seconds); None where the exchange forbids them
    # or does not answer them. Their pongs are heard (shared.worker), so they also serve
    # as the probe of a socket whose markets are quiet.
    protocol_ping_interval_s: ClassVar[float | None] = 20.0
    # Interval of the application-level ping (see app_ping), for exchanges whose
    # server only counts its own protocol messages as traffic. Where protocol pings are
    # None, the app ping is also the probe of a quiet socket: its answer is a frame.
    app_ping_interval_s: ClassVar[float] = 20.0
    # Pause between subscribe messages on one connection (message-rate limits).
    subscribe_gap_s: ClassVar[float] = 0.0
    # Pause between opening two connections (connection-rate limits).
    connect_gap_s: ClassVar[float] = 0.0
    # Least time between two REST calls (request-rate limits).
    rest_min_interval_s: ClassVar[float] = 0.0
    # How many markets one REST ticker call names, at most; 0: the call names none (one
    # call answers for every market).
    rest_markets_per_call: ClassVar[int] = 0
    # What the exchange answers when a REST call names a market it does not know (a
    # typo, a delisting), failing the whole call; "" if it never does. The worker then
    # splits the call to find that market (shared.worker.Worker.rest_poll).
    rest_unknown_market: ClassVar[str] = ""
    # Extra HTTP headers on the WebSocket handshake and on REST calls.
    headers: ClassVar[dict[str, str]] = {}
    # How the exchange's own market id names base and quote apart, where it does:
    # (separator, quote first), ("-", True) for KRW-BTC; None where they run together
    # (BTCUSDT), so that only a market list can tell. Read in replays: see symbol_of.
    market_id_form: ClassVar[tuple[str, bool] | None] = None
    # Whether parse_ws gives the same tickers for a frame parsed a second time: then the
    # numbers of a socket read's tickers are checked together, and the read parsed again
    # when one is not plain (shared.worker.Worker.on_frames). False where the parse keeps
    # state (Coinone drops a ticker id it has seen): its numbers are checked at once.
    parse_repeatable: ClassVar[bool] = True

    # --- Order book channel (shared.book_channel). ---
    # The depths (levels a side) the book channel serves, for config's book_depth; each
    # exchange sets it.
    book_depths: ClassVar[Collection[int]]
    # How a lost book is rebuilt: "frames" (every frame is the whole book: the next one
    # repairs it), "resubscribe" (that market is subscribed again on its socket, and the
    # exchange sends a snapshot), "rest" (a REST snapshot, the stream's changes held
    # meanwhile and applied after it by the sequence rule, as Binance documents on its
    # diff stream). Read through book_resync_at(depth), which an exchange whose channel
    # depends on the depth overrides (Binance).
    book_resync: ClassVar[BookResync] = "frames"
    # True where a snapshot's update_id grows with its book (Coinone's id): a snapshot
    # whose id is not above the last applied one is an older book, or the same again,
    # and is skipped (counted in book_skipped) rather than published. Read through
    # book_snapshot_ids_grow_at(depth) (Binance: its partial-depth stream's lastUpdateId).
    book_snapshot_ids_grow: ClassVar[bool] = False
    # The exchange's book checksum (shared.book.OKX, KRAKEN), if it sends one.
    book_checksum: ClassVar[Checksum | None] = None
    # Least time between two resubscribe requests of one book socket (book_resync
    # "resubscribe"), within the exchange's request limits; the markets lost meanwhile go
    # in the one request made when it has passed (shared.book_channel).
    book_resubscribe_gap_s: ClassVar[float] = 1.0
    # Markets on one book connection; 0: markets_per_connection.
    book_markets_per_connection: ClassVar[int] = 0
    # The path of the REST book endpoint: REST bodies from it are books (and replayed as such).
    book_rest_path: ClassVar[str] = ""
    # The largest frame a book socket takes, where the exchange's snapshot frames are
    # larger than runtime.max_frame_bytes (Coinbase's whole book); None: that setting.
    book_max_frame_bytes: ClassVar[int | None] = None

    def __init__(self, ws_url: str, rest_url: str, book_ws_url: str | None = None) -> None:
        self.ws_base = ws_url.rstrip("/")
        self.rest_base = rest_url.rstrip("/")
        # The book sockets' endpoint, where the exchange serves books on another host
        # (Coinbase's Advanced Trade feed); None: the ticker's. Kept as configured.
        self.book_ws_base = book_ws_url
        # raw id -> unified symbol; filled from the config or the market list.
        self.symbols = Symbols(self._unlearned_symbol)
        # Set for a replay: name markets not learned by their ids (symbol_of).
        self.name_unlearned = False

    def learn(self, markets: list[Market]) -> None:
        for market in markets:
            self.symbols[market.raw] = market.symbol

    def symbol_of(self, raw: str) -> str:
        """The unified symbol of a market id, as learned. In a replay, also of one not
        learned whose id spells base and quote apart (market_id_form): a ticker its payload
        names unambiguously is not lost for want of a market list (a capture made without
        one, replayed without the run's config). A live run knows the markets it asked
        for, and dead-letters a ticker of any other. Parsers write it self.symbols[raw]."""
        return self.symbols[raw]

    def _unlearned_symbol(self, raw: str) -> str:
        """symbol_of() of a market id not learned."""
        if self.name_unlearned and self.market_id_form is not None:
            separator, quote_first = self.market_id_form
            parts = raw.upper().split(separator)
            if len(parts) == 2 and all(_ASSET.fullmatch(part) for part in parts):
                base, quote = (parts[1], parts[0]) if quote_first else (parts[0], parts[1])
                return f"{base}-{quote}"
        raise FrameError(f"unknown symbol {raw!r}")

    # Each exchange implements the methods below. ------------------------------------

    @abstractmethod
    def market(self, base: str, quote: str) -> Market:
        """The market for a unified BASE-QUOTE pair, without asking the exchange."""

    def ws_url(self, markets: list[Market]) -> str:
        return self.ws_base

    def app_ping(self) -> str | None:
        """The application-level ping message ('{"op":"ping"}'), or None if the exchange has none.

        Called again for every ping, so a ping may carry the current time.
        """
        return None

    @abstractmethod
    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        ...

    @abstractmethod
    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        """Tickers in one frame; [] for acks, pongs, heartbeats and status frames.

        Raises FrameError for a payload that breaks the protocol (dead-lettered),
        ExchangeError for a well-formed error from the exchange (logged, counted).
        """

    @abstractmethod
    def market_list_url(self) -> str:
        ...

    @abstractmethod
    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        ...

    @abstractmethod
    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        ...

    @abstractmethod
    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        ...

    # Each exchange implements its book channel too. -----------------------------------

    def book_resync_at(self, depth: int) -> BookResync:
        """book_resync for books of `depth` levels, where the exchange's channel depends
        on the depth (Binance: whole-book frames up to 20 levels, changes beyond)."""
        return self.book_resync

    def book_snapshot_ids_grow_at(self, depth: int) -> bool:
        """book_snapshot_ids_grow for books of `depth` levels (as book_resync_at)."""
        return self.book_snapshot_ids_grow

    def book_window(self, depth: int) -> int | None:
        """Levels a side the local book keeps (shared.book.OrderBook's window): the depth
        for whole-book frames; all (None) for books kept from changes. Kraken: the
        subscribed depth; Bybit: 50."""
        return depth if self.book_resync_at(depth) == "frames" else None

    def book_ws_url(self, markets: list[Market], depth: int) -> str:
        """The URL of a book socket: book_ws_url as configured, else the ticker's."""
        return self.book_ws_base if self.book_ws_base is not None else self.ws_url(markets)

    @abstractmethod
    def book_subscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        ...

    def book_resubscribe_messages(self, markets: list[Market], depth: int) -> list[str]:
        """What asks the exchange for a fresh snapshot of `markets` on a subscribed socket
        (book_resync "resubscribe"): by default, their subscribe messages again."""
        return self.book_subscribe_messages(markets, depth)

    @abstractmethod
    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage] | NumberedBookFrame:
        """The book messages in one frame of a book socket; [] for acks, pongs and
        heartbeats. An exchange that numbers every message of a connection returns a
        NumberedBookFrame for each frame, acks and heartbeats included. Raises
        FrameError and ExchangeError as parse_ws does."""

    @abstractmethod
    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        """REST snapshots of the books of `markets`, at least `depth` levels a side."""

    @abstractmethod
    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        """The snapshots in one REST book body (BookMessage.snapshot True); `url` is the
        call's (Binance's and Gate.io's bodies name no market: their URL does)."""

    # Shared by every exchange. ------------------------------------------------------

    def is_book_rest(self, url: str) -> bool:
        return bool(self.book_rest_path) and urlsplit(url).path == self.book_rest_path

    def parse_rest(self, url: str, body: bytes, received_ns: int, quotes: list[str]) -> list[Ticker]:
        """Route one REST body by its URL: the market list teaches symbols, the rest are tickers.

        Live runs and --replay both come through here, so a replay learns the same
        symbols from a recorded market list that the live run learned.
        """
        if urlsplit(url).path == urlsplit(self.market_list_url()).path:
            self.learn(self.parse_market_list(body, quotes))
            return []
        return self.parse_rest_ticker(body, received_ns)
