"""A bounded on-disk FIFO of encoded records, for Kafka outages longer than
librdkafka's in-memory queue can hold.

Records are appended to numbered segment files (one line each: topic, key and value
separated by tabs; msgspec's JSON never contains a raw tab or newline) and read back
oldest first. When the spool reaches its size limit, the configured policy decides:
`drop_oldest` deletes the oldest segment, `drop_newest` refuses the new record. Either
way the dropped records are counted and logged. A spool left by an earlier run (killed,
or stopped while Kafka was down) is drained first on the next start.
"""

import logging
from collections import deque
from pathlib import Path
from typing import BinaryIO, Literal

from shared.stats import Stats

WhenFull = Literal["drop_oldest", "drop_newest"]
SEGMENTS_PER_SPOOL = 8


class DiskSpool:
    def __init__(self, directory: Path, name: str, max_bytes: int, when_full: WhenFull,
                 stats: Stats, log: logging.Logger) -> None:
        self._directory = directory
        self._name = name
        self._max_bytes = max_bytes
        self._segment_bytes = max(1, max_bytes // SEGMENTS_PER_SPOOL)
        self._when_full = when_full
        self._stats = stats
        self._log = log
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: deque[Path] = deque(sorted(directory.glob(f"{name}.*.spool"), key=self._number))
        self._bytes = sum(segment.stat().st_size for segment in self._segments)
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._warned_full = False
        if self._segments:
            log.warning("spool: %d bytes left by an earlier run in %s; sending them first", self._bytes, directory)

    def __bool__(self) -> bool:
        return self._bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def append(self, topic: str, key: bytes, value: bytes) -> None:
        line = b"%s\t%s\t%s\n" % (topic.encode(), key, value)
        while self._bytes + len(line) > self._max_bytes:
            if self._when_full == "drop_newest" or len(self._segments) <= 1:
                self._drop(1, "the newest record")
                return
            self._drop_oldest_segment()
        if self._writer is None or self._writer.tell() >= self._segment_bytes:
            self._open_new_segment()
        assert self._writer is not None
        self._writer.write(line)
        self._bytes += len(line)
        self._stats.spooled += 1

    def prepend(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Put records before everything spooled (they are older), in a new oldest segment."""
        if not records:
            return
        lines = [b"%s\t%s\t%s\n" % (topic.encode(), key, value) for topic, key, value in records]
        self._write_oldest_segment(lines + self._take_unread_rest())
        self._bytes += sum(map(len, lines))
        self._stats.spooled += len(records)

    def _take_unread_rest(self) -> list[bytes]:
        """The unread rest of a partly read oldest segment, whose file goes.

        How far it was read only the reader knows: written anew without the read part,
        nothing read is sent again (by this run or the next) and nothing put before it
        is skipped.
        """
        if self._reader is None:
            return []
        if not self._reader.tell():
            self._reader.close()  # the segment stays as it is, to be opened again when read
            self._reader = None
            return []
        if self._writer is not None and len(self._segments) == 1:
            self._writer.close()  # flushes the lines the rest must include
            self._writer = None
        rest = self._reader.read()
        self._reader.close()
        self._reader = None
        self._segments.popleft().unlink()
        return [rest] if rest else []

    def _write_oldest_segment(self, lines: list[bytes]) -> None:
        number = self._number(self._segments[0]) - 1 if self._segments else 0
        path = self._directory / f"{self._name}.{number:+013d}.spool"
        with open(path, "wb") as segment:
            segment.writelines(lines)
        self._segments.appendleft(path)

    def peek(self) -> tuple[str, bytes, bytes] | None:
        """The oldest record, left in place until pop()."""
        while self._segments:
            # The oldest segment may be the one still being written: its newest lines
            # may sit in the write buffer, so flush before reading it.
            reading_the_writer = self._writer is not None and len(self._segments) == 1
            if reading_the_writer:
                self._writer.flush()  # type: ignore[union-attr]
            if self._reader is None:
                self._reader = open(self._segments[0], "rb")
            position = self._reader.tell()
            line = self._reader.readline()
            if line.endswith(b"\n"):
                self._reader.seek(position)
                topic, key, value = line[:-1].split(b"\t", 2)
                return topic.decode(), key, value
            # Everything in this segment has been read. (A partial last line can only
            # be left by a crash mid-write; that one record is lost.)
            if reading_the_writer:
                self._writer.close()  # type: ignore[union-attr]
                self._writer = None
            self._finish_oldest_segment()
        return None

    def pop(self) -> None:
        assert self._reader is not None
        line = self._reader.readline()
        self._bytes -= len(line)

    def close(self) -> None:
        """Close the files; a partly read oldest segment keeps only its unread rest, for the next run."""
        if rest := self._take_unread_rest():
            self._write_oldest_segment(rest)
        for handle in (self._reader, self._writer):
            if handle is not None:
                handle.close()
        self._reader = self._writer = None

    # Segments. ------------------------------------------------------------------------

    @staticmethod
    def _number(path: Path) -> int:
        return int(path.name.rsplit(".", 2)[1])

    def _open_new_segment(self) -> None:
        if self._writer is not None:
            self._writer.close()
        number = self._number(self._segments[-1]) + 1 if self._segments else 0
        path = self._directory / f"{self._name}.{number:+013d}.spool"
        self._writer = open(path, "ab")
        self._segments.append(path)

    def _finish_oldest_segment(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._segments.popleft().unlink()
        if not self._segments:
            self._bytes = 0

    def _drop_oldest_segment(self) -> None:
        oldest = self._segments.popleft()
        already_read = 0
        if self._reader is not None:
            already_read = self._reader.tell()
            self._reader.close()
            self._reader = None
        with open(oldest, "rb") as segment:
            segment.seek(already_read)
            unread = segment.read()
        oldest.unlink()
        self._bytes -= len(unread)
        self._drop(unread.count(b"\n"), "the oldest records")

    def _drop(self, count: int, which: str) -> None:
        self._stats.spool_dropped += count
        if not self._warned_full:
            self._warned_full = True
            self._log.error("spool full (%d bytes in %s): dropping %s (policy %s); see spool_dropped",
                            self._max_bytes, self._directory, which, self._when_full)
