"""coinstream.status on metrics in the Prometheus text format the workers expose (the
metric names are the contract): the columns and the health verdict."""

from coinstream.status import Scrape, WorkerStatus, parse_metrics


def exposition(records: int, connected: tuple[int, ...], ages: tuple[str, ...], queued: int = 7,
               since_delivery: float = 0.2) -> str:
    lines = [
        "# TYPE coinstream_records_total counter",
        f'coinstream_records_total{{exchange="okx",source="ws"}} {records - 10}',
        'coinstream_records_total{exchange="okx",source="rest"} 10',
        "# TYPE coinstream_reconnects_total counter",
        'coinstream_reconnects_total{exchange="okx",reason="stalled"} 2',
        'coinstream_reconnects_total{exchange="okx",reason="closed"} 1',
        "# TYPE coinstream_kafka_queue_depth gauge",
        f'coinstream_kafka_queue_depth{{exchange="okx"}} {queued}',
        "# TYPE coinstream_kafka_seconds_since_last_delivery gauge",
        f'coinstream_kafka_seconds_since_last_delivery{{exchange="okx"}} {since_delivery}',
        "# TYPE coinstream_kafka_delivery_failures_total counter",
        "coinstream_kafka_delivery_failures_total 0",
        "# TYPE coinstream_ws_connected gauge",
        *(f'coinstream_ws_connected{{exchange="okx",connection="{index}"}} {flag}'
          for index, flag in enumerate(connected)),
        "# TYPE coinstream_seconds_since_last_record gauge",
        *(f'coinstream_seconds_since_last_record{{exchange="okx",connection="{index}"}} {age}'
          for index, age in enumerate(ages)),
    ]
    return "\n".join(lines) + "\n"


def assessed(first: Scrape | str, second: Scrape | str, state: str = "RUNNING") -> WorkerStatus:
    worker = WorkerStatus("okx", True, state, first, second)
    worker.assess(max_age_s=60)
    return worker


def test_healthy_worker_row() -> None:
    worker = assessed(parse_metrics(exposition(100, (1, 0), ("0.25", "9")), at=10.0),
                      parse_metrics(exposition(140, (1, 0), ("0.5", "12")), at=12.0))
    assert worker.problems == []
    assert worker.row() == ["okx", "RUNNING", "1/2", "20.0", "0.5s", "3", "7", "0", "-", "-", "-", "ok"]


def test_book_columns() -> None:
    """Book records/s, the youngest book record, and resyncs of every reason together."""
    def with_books(books: int, age: str) -> str:
        return exposition(100, (1,), ("0.5",)) + "\n".join([
            "# TYPE coinstream_book_records_total counter",
            f'coinstream_book_records_total{{exchange="okx",source="ws"}} {books}',
            "# TYPE coinstream_book_resyncs_total counter",
            'coinstream_book_resyncs_total{exchange="okx",reason="gap"} 2',
            'coinstream_book_resyncs_total{exchange="okx",reason="checksum"} 1',
            'coinstream_book_resyncs_total{exchange="okx",reason="crossed"} 0',
            "# TYPE coinstream_seconds_since_last_book gauge",
            f'coinstream_seconds_since_last_book{{exchange="okx",connection="book-0"}} {age}',
            'coinstream_seconds_since_last_book{exchange="okx",connection="book-1"} +Inf',
        ]) + "\n"
    worker = assessed(parse_metrics(with_books(1000, "0.1"), at=0.0), parse_metrics(with_books(1300, "0.2"), at=2.0))
    assert worker.row()[8:11] == ["150.0", "0.2s", "3"]


def test_no_connection_up_and_stale_record() -> None:
    worker = assessed(parse_metrics(exposition(100, (0, 0), ("75", "80")), at=0.0),
                      parse_metrics(exposition(100, (0, 0), ("75.4", "80")), at=1.0))
    assert worker.problems == ["no connection up", "last record 75 s ago (> 60 s)"]
    assert worker.row()[2:5] == ["0/2", "0.0", "75.4s"]


def test_no_record_yet() -> None:
    never = parse_metrics(exposition(0, (1,), ("+Inf",)), at=0.0)
    worker = assessed(never, never)
    assert worker.problems == ["no record yet"]
    assert worker.row()[4] == "-"


def test_restart_between_scrapes_gives_no_rate() -> None:
    worker = assessed(parse_metrics(exposition(500, (1,), ("1",)), at=0.0),
                      parse_metrics(exposition(20, (1,), ("1",)), at=1.0))
    assert worker.row()[3] == "-"


def test_unreachable_metrics_and_stopped_worker() -> None:
    down = "metrics unreachable (ConnectionError)"
    assert assessed(down, down).problems == [down]
    assert assessed(down, down, state="FATAL").problems == ["not RUNNING (FATAL)"]
    disabled = WorkerStatus("okx", False, "STOPPED", down, down)
    disabled.assess(max_age_s=60)
    assert disabled.problems == [] and disabled.row()[-1] == "disabled"


def test_queued_records_and_no_delivery_for_too_long_is_kafka_down() -> None:
    """Kafka stopped: the sockets deliver, the records pile up, and none is acknowledged."""
    down = [parse_metrics(exposition(records, (1,), ("0.1",), queued=500, since_delivery=since), at=at)
            for records, since, at in ((100, 19.0, 0.0), (140, 21.4, 2.0))]
    assert assessed(*down).problems == ["kafka: no delivery for 21 s"]
    # An idle worker has nothing to deliver: a long silence with an empty queue is no fault.
    idle = parse_metrics(exposition(100, (1,), ("0.1",), queued=0, since_delivery=300), at=0.0)
    assert assessed(idle, idle).problems == []
    # Records waiting, but Kafka took one within the threshold: a busy broker, not a dead one.
    slow = parse_metrics(exposition(100, (1,), ("0.1",), queued=500, since_delivery=14.0), at=0.0)
    assert assessed(slow, slow).problems == []


def book_ages(text: str, *ages: str) -> str:
    """`text` with the age gauge of a book socket for each of `ages` (a worker collecting books)."""
    return text + "\n".join([
        "# TYPE coinstream_seconds_since_last_book gauge",
        *(f'coinstream_seconds_since_last_book{{exchange="okx",connection="book-{index}"}} {age}'
          for index, age in enumerate(ages)),
    ]) + "\n"


def test_a_book_too_old_or_none_yet_is_unhealthy() -> None:
    stale = parse_metrics(book_ages(exposition(100, (1, 1), ("0.2",)), "75", "90"), at=0.0)
    assert assessed(stale, stale).problems == ["last book 75 s ago (> 60 s)"]
    never = parse_metrics(book_ages(exposition(100, (1, 1), ("0.2",)), "+Inf"), at=0.0)
    assert assessed(never, never).problems == ["no book yet"]
    fresh = parse_metrics(book_ages(exposition(100, (1, 1), ("0.2",)), "+Inf", "0.4"), at=0.0)
    assert assessed(fresh, fresh).problems == [], "the youngest book socket counts"


def test_a_worker_collecting_books_alone_has_no_ticker_to_be_late() -> None:
    books_only = parse_metrics(book_ages(exposition(0, (1,), ()), "0.5"), at=0.0)
    worker = assessed(books_only, books_only)
    assert worker.problems == []
    assert worker.row()[4] == "-"
