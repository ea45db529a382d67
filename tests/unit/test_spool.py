"""The on-disk spool: first in, first out, bounded, explicit when full, durable across runs."""

import logging
from pathlib import Path

from shared.spool import DiskSpool
from shared.stats import Stats

LOG = logging.getLogger("test")


def drain(spool: DiskSpool) -> list[bytes]:
    values = []
    while (record := spool.peek()) is not None:
        values.append(record[2])
        spool.pop()
    return values


def record(number: int) -> tuple[str, bytes, bytes]:
    return "t", b"k", b'{"seq":%d}' % number


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    stats = Stats()
    spool = DiskSpool(tmp_path, "binance", 8 * 1024, "drop_oldest", stats, LOG)
    for number in range(200):
        spool.append(*record(number))
    assert len(list(tmp_path.glob("*.spool"))) > 1
    assert drain(spool) == [record(n)[2] for n in range(200)]
    assert not spool and stats.spooled == 200 and stats.spool_dropped == 0
    spool.append(*record(200))
    assert drain(spool) == [record(200)[2]]


def test_interleaved_appends_and_reads(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", Stats(), LOG)
    seen = []
    for number in range(50):
        spool.append(*record(number))
        if number % 3 == 0:
            seen += drain(spool)
    seen += drain(spool)
    assert seen == [record(n)[2] for n in range(50)]


def test_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    stats = Stats()
    spool = DiskSpool(tmp_path, "x", 2000, "drop_oldest", stats, LOG)
    for number in range(300):
        spool.append(*record(number))
    kept = drain(spool)
    assert stats.spool_dropped + len(kept) == 300 and stats.spool_dropped > 0
    assert kept == [record(n)[2] for n in range(300 - len(kept), 300)]  # the newest survive, in order


def test_full_spool_drops_the_newest_and_counts_them(tmp_path: Path) -> None:
    stats = Stats()
    spool = DiskSpool(tmp_path, "x", 2000, "drop_newest", stats, LOG)
    for number in range(300):
        spool.append(*record(number))
    kept = drain(spool)
    assert stats.spool_dropped + len(kept) == 300 and stats.spool_dropped > 0
    assert kept == [record(n)[2] for n in range(len(kept))]  # the oldest survive


def test_a_spool_left_by_an_earlier_run_is_read_first(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", Stats(), LOG)
    for number in range(5, 10):
        first.append(*record(number))
    first.prepend([record(n) for n in range(5)])  # purged at exit: older than the spilled ones
    first.close()
    second = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", Stats(), LOG)
    second.append(*record(10))
    assert drain(second) == [record(n)[2] for n in range(11)]


def test_reading_while_the_same_segment_is_still_being_written(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", Stats(), LOG)
    for number in range(10):
        spool.append(*record(number))
    seen = []
    for _ in range(5):
        seen.append(spool.peek()[2])  # type: ignore[index]
        spool.pop()
    for number in range(10, 20):  # appended behind the open reader, still in the write buffer
        spool.append(*record(number))
    seen += drain(spool)
    assert seen == [record(n)[2] for n in range(20)]
    assert not spool


def _read(spool: DiskSpool, count: int) -> list[bytes]:
    values = []
    for _ in range(count):
        found = spool.peek()
        assert found is not None
        values.append(found[2])
        spool.pop()
    return values


def test_prepending_to_a_partly_read_spool_skips_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    """What a replaced producer held goes before the spool's unread rest."""
    for max_bytes in (1024 * 1024, 8 * 1024):  # the oldest segment is the one written to; it is not
        directory = tmp_path / str(max_bytes)
        stats = Stats()
        spool = DiskSpool(directory, "binance", max_bytes, "drop_oldest", stats, LOG)
        for number in range(100, 300):
            spool.append(*record(number))
        assert _read(spool, 30) == [record(n)[2] for n in range(100, 130)]
        spool.prepend([record(n) for n in range(10)])
        spool.append(*record(300))
        assert drain(spool) == [record(n)[2] for n in [*range(10), *range(130, 301)]]
        assert not spool and stats.spooled == 211
        assert not list(directory.glob("*.spool"))


def test_a_new_run_goes_on_where_a_stopped_one_left_a_partly_read_spool(tmp_path: Path) -> None:
    for max_bytes in (1024 * 1024, 8 * 1024):
        directory = tmp_path / str(max_bytes)
        spool = DiskSpool(directory, "binance", max_bytes, "drop_oldest", Stats(), LOG)
        for number in range(200):
            spool.append(*record(number))
        assert _read(spool, 30) == [record(n)[2] for n in range(30)]
        spool.close()
        again = DiskSpool(directory, "binance", max_bytes, "drop_oldest", Stats(), LOG)
        assert again.size_bytes == sum(len(b"t\tk\t%s\n" % record(n)[2]) for n in range(30, 200))
        assert drain(again) == [record(n)[2] for n in range(30, 200)]


def test_records_marked_unsure_are_taken_from_the_front_and_counted(tmp_path: Path) -> None:
    stats = Stats()
    spool = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", stats, LOG)
    for number in range(3):
        spool.append(*record(number))
    spool.prepend([record(10), record(11)])
    spool.prepend([record(20)], unsure=True)
    assert spool.records == 6
    spool.close()
    again = DiskSpool(tmp_path, "x", 1024 * 1024, "drop_oldest", Stats(), LOG)
    assert again.inherited == again.records == 6
    assert again.take_unsure() == [record(20)]
    assert again.records == 5
    assert drain(again) == [record(number)[2] for number in (10, 11, 0, 1, 2)]
    assert again.records == 0
