"""The record contract: one normalized ticker, and the dead letter for what can't be one.

Every Kafka message on a ticker topic is a `Ticker` encoded as a JSON object, keyed
"<exchange>:<symbol>". Numbers are exact decimal strings (see shared.numbers).
"""

from typing import Literal

import msgspec

Source = Literal["ws", "rest"]


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
