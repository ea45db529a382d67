"""The record contract: one normalized ticker, one book's top N, and the dead letter for
what can't be either.

Every Kafka message on a ticker topic is a `Ticker`, on a book topic a `Book`, encoded
as a JSON object and keyed "<exchange>:<symbol>". Numbers are exact decimal strings
(see shared.numbers); a ticker's hold only values a real market has (check_values).
"""

import re
from typing import Literal

import msgspec

Source = Literal["ws", "rest"]
Level = tuple[str, str]  # (price, size), exact plain decimal strings; encoded as [price, size]


class Ticker(msgspec.Struct):
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


class DeadLetter(msgspec.Struct):
    """A frame or response body that could not become records, kept raw."""

    exchange: str
    error: str
    received_ns: int
    source: Source
    url: str
    raw: str
    run: str = ""


class FrameError(ValueError):
    """The payload is not what the exchange's protocol says: dead-letter it."""


class ExchangeError(RuntimeError):
    """The exchange answered with a well-formed error (bad subscription, rate limit...).

    Logged and counted, not dead-lettered: the payload itself is valid protocol.
    """


class ServerRestart(Exception):
    """The exchange announced it will drop this connection: reconnect now."""


# What a real market's numbers stay within (check_values).
MAX_SIGNIFICANT_DIGITS = 40
EARLIEST_EXCHANGE_TS_MS = 1_230_768_000_000  # 2009-01-01T00:00:00Z, before any exchange we read
EXCHANGE_TS_AHEAD_MS = 86_400_000  # a day ahead of arrival: a skewed clock, not a wrong field
PRICES = ("last", "bid", "ask", "open_24h", "high_24h", "low_24h")
SIZES = ("bid_size", "ask_size", "volume_24h", "quote_volume_24h")
# In a ticker's numbers joined by ";" (see check_values): a number of zero, or one long
# enough to hold more than MAX_SIGNIFICANT_DIGITS digits. A sign is looked for apart.
_SUSPECT = re.compile(r";(?:[0.]+;|[^;]{%d})" % (MAX_SIGNIFICANT_DIGITS + 1))


def check_values(tickers: list[Ticker]) -> int:
    """Hold each ticker to what a real market can send; returns how many exchange_ts it nulled.

    A negative number, a last price of zero or a number of more than 40 significant
    digits raise FrameError: the frame is dead-lettered. A bid or ask of zero is no
    order (Korbit's stopped pairs send "0"): it and its size become null; so does an
    open, high or low of zero, a window without a trade. Sizes and volumes may be zero.
    An exchange_ts before 2009 or more than a day after arrival becomes null.

    The per-frame cost is one string and two scans (~0.5 µs); only a ticker they flag
    is looked at field by field.
    """
    nulled = 0
    for ticker in tickers:
        numbers = (f";{ticker.last};{ticker.bid};{ticker.ask};{ticker.open_24h};{ticker.high_24h};"
                   f"{ticker.low_24h};{ticker.bid_size};{ticker.ask_size};{ticker.volume_24h};"
                   f"{ticker.quote_volume_24h};")
        if "-" in numbers or _SUSPECT.search(numbers):
            _check_each_number(ticker)
        exchange_ts = ticker.exchange_ts
        if exchange_ts is not None and not (
                EARLIEST_EXCHANGE_TS_MS <= exchange_ts <= ticker.received_ns // 1_000_000 + EXCHANGE_TS_AHEAD_MS):
            ticker.exchange_ts = None
            nulled += 1
    return nulled


def _check_each_number(ticker: Ticker) -> None:
    for name in SIZES:
        if (value := getattr(ticker, name)) is not None:
            _check_number(name, value)
    for name in PRICES:
        if (value := getattr(ticker, name)) is None:
            continue
        _check_number(name, value)
        if value.strip("0."):
            continue
        if name == "last":
            raise FrameError(f"last {value}: a price must be positive")
        setattr(ticker, name, None)
        if name in ("bid", "ask"):
            setattr(ticker, f"{name}_size", None)


def _check_number(name: str, value: str) -> None:
    """`value`, plain decimal text (shared.numbers), is not negative and not too precise."""
    if value.startswith("-"):
        raise FrameError(f"{name} {value[:40]} is negative")
    digits = len(value.replace(".", "").lstrip("0"))
    if digits > MAX_SIGNIFICANT_DIGITS:
        raise FrameError(f"{name} has {digits} significant digits (at most {MAX_SIGNIFICANT_DIGITS})")
