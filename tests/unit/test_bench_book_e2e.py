"""bench.e2e's book runs read the worker's counters line: the pattern must match the line
shared.stats writes, field for field, or the benchmark measures nothing (or the wrong
counter)."""

from collections import Counter

from bench.e2e import BOOK_COUNTERS, COUNTERS, BookMemory
from shared.stats import Stats


def test_book_counters_pattern_reads_the_worker_s_line() -> None:
    stats = Stats()
    stats.records, stats.delivered = 3, 1234
    stats.book_frames, stats.book_records, stats.book_conflated, stats.book_skipped = 900, 800, 70, 30
    stats.book_resyncs = Counter({"gap": 2, "checksum": 1})
    line = stats.line(queue_depth=5)
    assert BOOK_COUNTERS.findall(line) == [("1234", "900", "800", "70", "30", "3")]
    assert COUNTERS.findall(line)[0][2] == "1234", "the ticker benchmarks' pattern still reads it"


def test_no_book_counters_before_a_book_frame() -> None:
    assert BOOK_COUNTERS.findall(Stats().line(queue_depth=0)) == []


def test_rss_growth_compares_the_first_and_last_minute() -> None:
    flat = BookMemory(300, 3, [80.0] * 12 + [81.0] * 12 + [80.5] * 12, 1000)
    assert flat.growth_mb == 0.5
    leaking = BookMemory(300, 2, [80.0 + sample for sample in range(24)], 1000)
    assert leaking.growth_mb == 12.0
