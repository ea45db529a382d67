"""The record contract: one normalized ticker, one book's top N, and the dead letter for
what can't be either.

Every Kafka message on a ticker topic is a `Ticker`, on a book topic a `Book`, encoded
as a JSON object and keyed "<exchange>:<symbol>". Numbers are exact decimal strings
(see shared.numbers).
"""

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
