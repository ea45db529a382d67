"""Capture files: every raw frame and REST body a worker received, as JSON Lines.

One object per line: {"ts": <received ns>, "kind": "ws"|"rest"|"refresh", "url": ...,
"data": ...}, `data` exactly as received (binary frames decoded as UTF-8); "refresh" is a
REST body of a quiet-market refresh, which publishes only what changed. --record writes
them; --replay feeds them back through the same parsing path.
"""

from pathlib import Path
from typing import BinaryIO, Iterator, Literal

import msgspec


class Captured(msgspec.Struct):
    ts: int
    kind: Literal["ws", "rest", "refresh"]
    url: str
    data: str


class Recorder:
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = open(path, "ab")
        self._encoder = msgspec.json.Encoder()

    def write(self, kind: Literal["ws", "rest", "refresh"], url: str, data: bytes, received_ns: int) -> None:
        item = Captured(received_ns, kind, url, data.decode("utf-8", errors="replace"))
        self._file.write(self._encoder.encode(item) + b"\n")

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> Iterator[tuple[int, bytes, Captured | msgspec.DecodeError]]:
    """(line number, raw line, the item or why it could not be decoded) for each line."""
    decoder = msgspec.json.Decoder(Captured)
    with open(path, "rb") as capture:
        for number, line in enumerate(capture, start=1):
            line = line.rstrip(b"\n")
            if not line.strip():
                continue
            try:
                yield number, line, decoder.decode(line)
            except msgspec.DecodeError as error:
                yield number, line, error
