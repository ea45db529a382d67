"""Capture files: every raw frame and REST body a worker received, as JSON Lines.

One object per line: {"ts": <received ns>, "kind": "ws"|"book"|"rest"|"refresh"|"silence",
"url": ..., "data": ...}, `data` exactly as received (binary frames decoded as UTF-8);
"book" is a frame of a book socket (shared.book_channel), "refresh" a REST body of a
quiet-market refresh, which publishes only what changed (a book's: compared with the
book kept), "silence" one of a silent ticker socket's check, alike but for markets quiet
for rest_fallback_after_s (shared.worker.Worker.on_rest_body).
REST book bodies are "rest" or "refresh", told apart from the tickers' by their path.
A book frame also names its connection: {"connection": "coinbase-book#0/2"} (socket
coinbase-book#0, its second session), which a per-connection sequence (Coinbase's) is
checked by, live and replayed alike; absent from older captures (one connection).
A REST ticker body of a socket's fallback or refresh names the markets it was asked
for: {"markets": ["BTC-USDT", ...]}. Where one call answers every market (OKX, Bybit,
Gate.io, Coinone), only those are published, live and replayed alike; a body without
the field (the startup snapshot, older captures) publishes every market it holds.
--record writes them; --replay feeds them back through the same parsing path.

A run also writes the markets it collects, once they are known:
{"kind": "markets", "ts": ..., "markets": [{"raw": "KRW-BTC", "base": "BTC", "quote": "KRW"}, ...]}.
With it a replay knows every symbol without the run's configuration; captures made
before it existed lack the line and replay with --config, as they always did.
"""

from pathlib import Path
from typing import BinaryIO, Iterator, Literal

import msgspec

from shared.venue import Market


Kind = Literal["ws", "book", "rest", "refresh", "silence"]
# How a REST ticker body is judged (Worker.on_rest_body): every ticker published (""), or
# only news, after rest_refresh_s ("refresh") or rest_fallback_after_s ("silence") quiet.
Refresh = Literal["", "refresh", "silence"]


class Captured(msgspec.Struct, omit_defaults=True):
    ts: int
    kind: Kind
    url: str
    data: str
    connection: str = ""  # a book frame's socket and session (shared.worker.Connection.session)
    markets: list[str] = []  # a REST ticker body's asked-for markets (raw ids); empty: all


class Markets(msgspec.Struct, tag_field="kind", tag="markets"):
    ts: int
    markets: list[Market]


class _Kind(msgspec.Struct):
    kind: str


class Recorder:
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = open(path, "ab")
        self._encoder = msgspec.json.Encoder()

    def write(self, kind: Kind, url: str, data: bytes, received_ns: int,
              connection: str = "", markets: list[str] | None = None) -> None:
        item = Captured(received_ns, kind, url, data.decode("utf-8", errors="replace"), connection, markets or [])
        self._file.write(self._encoder.encode(item) + b"\n")

    def write_markets(self, markets: list[Market], now_ns: int) -> None:
        self._file.write(self._encoder.encode(Markets(now_ns, markets)) + b"\n")

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> Iterator[tuple[int, bytes, Captured | Markets | msgspec.DecodeError]]:
    """(line number, raw line, the item or why it could not be decoded) for each line."""
    kinds = msgspec.json.Decoder(_Kind)
    captured = msgspec.json.Decoder(Captured)
    markets = msgspec.json.Decoder(Markets)
    with open(path, "rb") as capture:
        for number, line in enumerate(capture, start=1):
            line = line.rstrip(b"\n")
            if not line.strip():
                continue
            try:
                item = markets.decode(line) if kinds.decode(line).kind == "markets" else captured.decode(line)
            except msgspec.DecodeError as error:
                yield number, line, error
            else:
                yield number, line, item
