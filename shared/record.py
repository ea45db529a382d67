"""The record contract: one normalized ticker, one book's top N, and the dead letter for
what can't be either.

Every Kafka message on a ticker topic is a `Ticker`, on a book topic a `Book`, encoded
as a JSON object and keyed "<exchange>:<symbol>". Numbers are exact decimal strings
(see shared.numbers); a ticker's hold only values a real market has (shared.numbers,
check_values).
"""

from typing import Literal

import msgspec

from shared.numbers import MAX_NUMBER_CHARS

Source = Literal["ws", "rest"]
Level = tuple[str, str]  # (price, size), exact plain decimal strings; encoded as [price, size]


# Not tracked by the garbage collector (gc=False): a record holds only text and numbers,
# never a reference cycle, and an untracked struct is made and freed cheaper.
class Ticker(msgspec.Struct, gc=False):
    exchange: str
    symbol: str  # unified BASE-QUOTE, upper case
    raw_symbol: str  # the exchange's own market id, as sent
    last: str
    bid: str | None
    ask: str | None
    bid_size: str | None
    ask_size: str | None
    open_24h: str | None
    high_24h: str | None
    low_24h: str | None
    volume_24h: str | None  # base asset
    quote_volume_24h: str | None  # quote asset
    exchange_ts: int | None  # ms since the epoch, UTC
    received_ns: int  # local wall clock when the frame or response arrived
    source: Source
    # Stamped by the publisher, in publish order, so that one run's records are
    # numbered 1, 2, 3, ... without gaps.
    run: str = ""
    seq: int = 0


class Book(msgspec.Struct):
    """The complete top N of one market after one exchange message.

    Published only when the top N changed (a price or a size) since the market's last
    record; see shared.book. Each level keeps the exchange's text, trailing zeros
    included, in plain notation; a level of size zero never appears.
    """

    exchange: str
    symbol: str  # unified BASE-QUOTE, upper case
    raw_symbol: str  # the exchange's own market id, as sent
    bids: list[Level]  # best (highest price) first, at most `depth`
    asks: list[Level]  # best (lowest price) first, at most `depth`
    depth: int  # the configured N
    # The exchange's sequence id of the last message applied (Binance u/lastUpdateId,
    # OKX seqId, Bybit u, Gate.io u, Coinbase sequence_num, Coinone id); None where the
    # exchange has none.
    update_id: int | None
    exchange_ts: int | None  # ms since the epoch, UTC
    received_ns: int  # local wall clock when the frame or response arrived
    source: Source
    # Stamped by the publisher like the ticker's, numbered on their own: a run's book
    # records are 1, 2, 3, ... whatever its ticker records are.
    run: str = ""
    seq: int = 0


# Well below Kafka's default message.max.bytes (1 MB), with the error and URL beside it.
DEAD_LETTER_RAW_MAX = 256 * 1024


class DeadLetter(msgspec.Struct):
    """A frame or response body that could not become records, kept raw."""

    exchange: str
    error: str
    received_ns: int
    source: Source
    url: str
    raw: str  # the payload, cut to DEAD_LETTER_RAW_MAX bytes (so that a dead letter fits in Kafka)
    run: str = ""
    # Set when raw was cut: the payload's whole size and its sha256 (hex).
    raw_bytes: int | None = None
    raw_sha256: str | None = None


class FrameError(ValueError):
    """The payload is not what the exchange's protocol says: dead-letter it."""


class ExchangeError(RuntimeError):
    """The exchange answered with a well-formed error (bad subscription, rate limit...).

    Logged and counted, not dead-lettered: the payload itself is valid protocol.
    """


class ServerRestart(Exception):
    """The exchange announced it will drop this connection: reconnect now."""


# What a real market's values stay within (check_values; the numbers' own rules, no sign
# and at most 40 characters, are shared.numbers').
EARLIEST_EXCHANGE_TS_MS = 1_230_768_000_000  # 2009-01-01T00:00:00Z, before any exchange we read
EXCHANGE_TS_AHEAD_MS = 86_400_000  # a day ahead of arrival: a skewed clock, not a wrong field
# shared.numbers' plain text (no sign, no leading zero, at most MAX_NUMBER_CHARS) is zero
# exactly when it sorts below the smallest positive one, 0.000...0001: one comparison a
# price, cheaper than any scan.
_ZERO_BELOW = "0." + "0" * (MAX_NUMBER_CHARS - 3) + "1"


class ZeroLastPrice(FrameError):
    """A ticker whose last price is zero: its frame is dead-lettered. Raised by
    check_values once every ticker is checked, with the tickers whose exchange_ts it
    nulled: only those that are published count in timestamps_nulled."""

    def __init__(self, last: str, nulled: list["Ticker"]) -> None:
        super().__init__(f"last {last}: a price must be positive")
        self.nulled = nulled


def is_refused(ticker: Ticker) -> bool:
    """Whether check_values refuses `ticker` (a last price of zero)."""
    return ticker.last < _ZERO_BELOW


def check_values(tickers: list[Ticker]) -> int:
    """Hold each ticker to the prices and times a real market has; returns how many
    exchange_ts it nulled.

    A last price of zero raises ZeroLastPrice, once every ticker is checked (see
    is_refused): the frame is dead-lettered. A bid or ask of zero is no order (Korbit's
    stopped pairs send "0"): it and its size become null; so does an open, high or low
    of zero, a window without a trade. Sizes and volumes may be zero. An exchange_ts
    before 2009 or more than a day after arrival becomes null.
    """
    nulled: list[Ticker] = []
    refused: str | None = None
    zero_below = _ZERO_BELOW
    # The latest exchange_ts allowed, worked out once for the tickers of one arrival (a
    # socket read's share its received_ns): a division of an int this large is ~300
    # instructions, a tenth of these checks.
    received_ns, latest_ms = None, 0
    for ticker in tickers:
        if (ticker.last < zero_below or (ticker.bid or zero_below) < zero_below
                or (ticker.ask or zero_below) < zero_below or (ticker.open_24h or zero_below) < zero_below
                or (ticker.high_24h or zero_below) < zero_below or (ticker.low_24h or zero_below) < zero_below):
            if ticker.last < zero_below:
                refused = ticker.last
            _null_zero_prices(ticker)
        exchange_ts = ticker.exchange_ts
        if exchange_ts is not None:
            if ticker.received_ns != received_ns:
                received_ns = ticker.received_ns
                latest_ms = received_ns // 1_000_000 + EXCHANGE_TS_AHEAD_MS
            if not EARLIEST_EXCHANGE_TS_MS <= exchange_ts <= latest_ms:
                ticker.exchange_ts = None
                nulled.append(ticker)
    if refused is not None:
        raise ZeroLastPrice(refused, nulled)
    return len(nulled)


def _null_zero_prices(ticker: Ticker) -> None:
    for name in ("bid", "ask", "open_24h", "high_24h", "low_24h"):
        value = getattr(ticker, name)
        if value is not None and value < _ZERO_BELOW:
            setattr(ticker, name, None)
            if name in ("bid", "ask"):
                setattr(ticker, f"{name}_size", None)
