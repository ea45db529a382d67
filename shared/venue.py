"""What a worker module says about its exchange, and nothing else.

A worker module (workers/<exchange>.py) subclasses `Venue` and reads like the
exchange's doc page: endpoints, subscribe, keepalive, parse. Everything that runs the
protocol (connections, reconnects, REST polling, Kafka) is in shared.worker.
"""

import re
from abc import ABC, abstractmethod
from typing import ClassVar
from urllib.parse import urlsplit

import msgspec

from shared.record import FrameError, Ticker


_ASSET = re.compile(r"[A-Z0-9]+")


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


class Venue(ABC):
    """One exchange's public ticker protocol."""

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

    def __init__(self, ws_url: str, rest_url: str) -> None:
        self.ws_base = ws_url.rstrip("/")
        self.rest_base = rest_url.rstrip("/")
        # raw id -> unified symbol; filled from the config or the market list.
        self.symbols: dict[str, str] = {}
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
        for, and dead-letters a ticker of any other."""
        symbol = self.symbols.get(raw)
        if symbol is None and self.name_unlearned and self.market_id_form is not None:
            separator, quote_first = self.market_id_form
            parts = raw.upper().split(separator)
            if len(parts) == 2 and all(_ASSET.fullmatch(part) for part in parts):
                base, quote = (parts[1], parts[0]) if quote_first else (parts[0], parts[1])
                symbol = f"{base}-{quote}"
        if symbol is None:
            raise FrameError(f"unknown symbol {raw!r}")
        return symbol

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

    # Shared by every exchange. ------------------------------------------------------

    def parse_rest(self, url: str, body: bytes, received_ns: int, quotes: list[str]) -> list[Ticker]:
        """Route one REST body by its URL: the market list teaches symbols, the rest are tickers.

        Live runs and --replay both come through here, so a replay learns the same
        symbols from a recorded market list that the live run learned.
        """
        if urlsplit(url).path == urlsplit(self.market_list_url()).path:
            self.learn(self.parse_market_list(body, quotes))
            return []
        return self.parse_rest_ticker(body, received_ns)
