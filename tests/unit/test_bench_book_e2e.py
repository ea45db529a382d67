"""bench.e2e's book runs read the worker's counters line: the pattern must match the line
shared.stats writes, field for field, or the benchmark measures nothing (or the wrong
counter)."""

import logging
from collections import Counter

from bench.e2e import BOOK_COUNTERS, BOOK_RECORDS, COUNTERS, DELIVERED, BookMemory, _per_second_by_time, _stamped
from shared.log import _UtcFormatter
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


def _logged(message: str, created: float) -> str:
    """`message` as a worker's log writes it at `created` (epoch seconds)."""
    record = logging.LogRecord("okx", logging.INFO, __file__, 0, message, None, None)
    record.created, record.msecs = created, (created % 1) * 1000
    return _UtcFormatter("%(asctime)s %(levelname)s okx %(message)s").format(record)


def test_fleet_rates_go_by_the_counters_lines_own_times() -> None:
    # A starved worker's once-a-second line came 2.5 s apart: 1,000 records in 2.5 s.
    stats = Stats()
    stats.book_frames = 1
    lines = []
    for created, delivered, book_records in ((1_790_000_000.0, 5_000, 400), (1_790_000_002.5, 6_000, 650)):
        stats.delivered, stats.book_records = delivered, book_records
        lines.append(_logged(stats.line(queue_depth=0), created))
    log = "\n".join(lines)
    assert _per_second_by_time(_stamped(COUNTERS).findall(log), DELIVERED) == 400.0
    assert _per_second_by_time(_stamped(BOOK_COUNTERS).findall(log), BOOK_RECORDS) == 100.0
