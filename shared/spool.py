"""A bounded on-disk FIFO of encoded records, for Kafka outages longer than
librdkafka's in-memory queue can hold.

Records are appended to numbered segment files (one line each: topic, key and value
separated by tabs; msgspec's JSON never contains a raw tab or newline) and read back
oldest first. When the spool reaches its size limit, the configured policy decides:
`drop_oldest` deletes the oldest segment, `drop_newest` refuses the new record. Either
way the dropped records are counted and logged. A disk that is full or no longer
writable is a full spool: the same policy, counted and logged the same way. A spool
left by an earlier run (killed, or stopped while Kafka was down) is drained first on
the next start.

A record whose fate is unknown (sent to Kafka, no answer before the stop) is spooled
marked so: its topic is written with UNSURE in front (no Kafka topic name holds that
character), and the sink checks Kafka for it before sending it again (take_unsure).
"""

import errno
import logging
import os
from collections import deque
from pathlib import Path
from typing import BinaryIO, Literal

from shared.stats import Stats

WhenFull = Literal["drop_oldest", "drop_newest"]
SEGMENTS_PER_SPOOL = 8
UNSURE = b"?"


class SpoolError(Exception):
    """The spool directory cannot be written, or its progress cannot be recorded: one line."""


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
        # Checked at the start: a spool that cannot be written is found when Kafka goes away,
        # too late, and one that cannot be emptied is sent again by every start.
        probe = directory / f".{name}.writable"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise SpoolError(f"kafka.spool.dir: the spool directory {directory} is not writable: "
                             f"{error.strerror or error}") from None
        self._segments: deque[Path] = deque(sorted(directory.glob(f"{name}.*.spool"), key=self._number))
        # An attribute, not a property: KafkaSink.publish reads it for every record, and a
        # Python call (bool(spool) too) costs as much as the rest of that check.
        self.size_bytes = 0
        self._records = 0  # lines, as size_bytes counts their bytes
        for segment in self._segments:
            content = segment.read_bytes()
            self.size_bytes += len(content)
            self._records += content.count(b"\n")
        self.inherited = self._records  # left by an earlier run: not among this run's records
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._warned_full = False
        self._write_error = ""  # the latest, for the log line of what it dropped
        if self._segments:
            log.warning("spool: %d records (%d bytes) left by an earlier run in %s; sending them first",
                        self._records, self.size_bytes, directory)

    def __bool__(self) -> bool:
        return self.size_bytes > 0

    @property
    def records(self) -> int:
        return self._records

    def append(self, topic: str, key: bytes, value: bytes) -> None:
        line = b"%s\t%s\t%s\n" % (topic.encode(), key, value)
        while self.size_bytes + len(line) > self._max_bytes:
            if self._when_full == "drop_newest" or len(self._segments) <= 1:
                self._drop(1, "the newest record", f"{self._max_bytes} bytes in {self._directory}")
                return
            self._drop_oldest_segment(f"{self._max_bytes} bytes in {self._directory}")
        while not self._write(line):
            # The disk is full, or no longer writable: a full spool. Deleting the oldest
            # segment may make room (not on a read-only disk: then it stays).
            if self._when_full == "drop_newest" or len(self._segments) <= 1 \
                    or not self._drop_oldest_segment(self._write_error):
                self._drop(1, "the newest record", self._write_error)
                return
        self.size_bytes += len(line)
        self._records += 1
        self._stats.spooled += 1

    def _write(self, line: bytes) -> bool:
        """Append one line whole, or nothing (a partial line would garble the next)."""
        try:
            if self._writer is None or self._writer.tell() >= self._segment_bytes:
                self._open_new_segment()
            assert self._writer is not None
            start = self._writer.tell()
            try:
                if self._writer.write(line) == len(line):
                    return True
                error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a short write: the disk filled up
            except OSError as raised:
                error = raised
            self._writer.truncate(start)
            self._writer.seek(start)
            raise error
        except OSError as error:
            self._write_error = f"{self._directory}: {error.strerror or error}"
            return False

    def prepend(self, records: list[tuple[str, bytes, bytes]], unsure: bool = False) -> None:
        """Put records before everything spooled (they are older), in a new oldest segment;
        `unsure`: their fate is unknown (see take_unsure). Records that cannot be written
        (a full or read-only disk) are dropped, counted and logged."""
        if not records:
            return
        mark = UNSURE if unsure else b""
        lines = [b"%s%s\t%s\t%s\n" % (mark, topic.encode(), key, value) for topic, key, value in records]
        rest = self._take_unread_rest()
        try:
            self._write_oldest_segment(lines + rest)
        except OSError as error:
            # The unsent rest of the oldest segment was read out of its file: it goes too.
            lost = sum(part.count(b"\n") for part in rest)
            self.size_bytes -= sum(map(len, rest))
            self._records -= lost
            self._drop(len(records) + lost, "records that Kafka did not take",
                       f"{self._directory}: {error.strerror or error}")
            return
        self.size_bytes += sum(map(len, lines))
        self._records += len(records)
        self._stats.spooled += len(records)

    def take_unsure(self) -> list[tuple[str, bytes, bytes]]:
        """Take the records at the front marked unsure, oldest first (put back with prepend)."""
        unsure = []
        while (record := self.peek()) is not None and record[0].startswith(UNSURE.decode()):
            unsure.append((record[0][1:], record[1], record[2]))
            self.pop()
        return unsure

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
        self._remove(self._segments.popleft())
        return [rest] if rest else []

    def _write_oldest_segment(self, lines: list[bytes]) -> None:
        number = self._number(self._segments[0]) - 1 if self._segments else 0
        path = self._directory / f"{self._name}.{number:+013d}.spool"
        try:
            with open(path, "wb") as segment:
                segment.writelines(lines)
        except OSError:
            path.unlink(missing_ok=True)  # not a partial segment for the next run to send
            raise
        self._segments.appendleft(path)

    def _remove(self, segment: Path) -> None:
        """Delete a segment that has been sent, or stop: one left would be sent again by the next start."""
        try:
            segment.unlink()
        except OSError as error:
            raise SpoolError(f"kafka.spool.dir: cannot delete {segment}, which has been sent to Kafka: "
                             f"{error.strerror or error}; stopping, not to send it again on the next "
                             f"start (delete the file once the directory is writable)") from None

    def peek(self) -> tuple[str, bytes, bytes] | None:
        """The oldest record, left in place until pop(); its topic begins with UNSURE if it is marked so."""
        while self._segments:
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
            if self._writer is not None and len(self._segments) == 1:
                self._writer.close()
                self._writer = None
            self._finish_oldest_segment()
        return None

    def pop(self) -> None:
        assert self._reader is not None
        line = self._reader.readline()
        self.size_bytes -= len(line)
        self._records -= 1

    def close(self) -> None:
        """Close the files; a partly read oldest segment keeps only its unread rest, for the
        next run. Never raises: what cannot be written is counted and logged as dropped."""
        rest: list[bytes] = []
        try:
            if rest := self._take_unread_rest():
                self._write_oldest_segment(rest)
        except OSError as error:
            count = sum(part.count(b"\n") for part in rest)
            self.size_bytes -= sum(map(len, rest))
            self._records -= count
            self._drop(count, "the unsent rest of the oldest segment", f"{self._directory}: {error.strerror or error}")
        except SpoolError as error:
            self._log.error("%s", error)
        for handle in (self._reader, self._writer):
            if handle is not None:
                handle.close()
        self._reader = self._writer = None

    # Segments. ------------------------------------------------------------------------

    @staticmethod
    def _number(path: Path) -> int:
        return int(path.name.rsplit(".", 2)[1])

    def _open_new_segment(self) -> None:
        number = self._number(self._segments[-1]) + 1 if self._segments else 0
        path = self._directory / f"{self._name}.{number:+013d}.spool"
        # Unbuffered: a write that fails (disk full) fails here, whole, not in a later flush.
        writer = open(path, "ab", buffering=0)
        if self._writer is not None:
            self._writer.close()
        self._writer = writer
        self._segments.append(path)

    def _finish_oldest_segment(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._remove(self._segments.popleft())
        if not self._segments:
            self.size_bytes = self._records = 0

    def _drop_oldest_segment(self, why: str) -> bool:
        """Delete the oldest segment, counting its unread records as dropped; False if it cannot be deleted."""
        oldest = self._segments[0]
        already_read = self._reader.tell() if self._reader is not None else 0
        try:
            with open(oldest, "rb") as segment:
                segment.seek(already_read)
                unread = segment.read()
            oldest.unlink()
        except OSError:
            return False
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._segments.popleft()
        count = unread.count(b"\n")
        self.size_bytes -= len(unread)
        self._records -= count
        self._drop(count, "the oldest records", why)
        return True

    def _drop(self, count: int, which: str, why: str) -> None:
        """Count dropped records; the first drop is logged, with why."""
        self._stats.spool_dropped += count
        if not self._warned_full:
            self._warned_full = True
            self._log.error("spool full (%s): dropping %s (policy %s); see spool_dropped",
                            why, which, self._when_full)
