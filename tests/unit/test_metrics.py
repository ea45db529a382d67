"""The metrics section of the configuration (defaults, overrides, one-line errors), and
the worker's collector on real frames: what it exports, read back through the
Prometheus text format."""

import asyncio
import logging
import math
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coinstream import check
from shared import config as configuration
from shared.metrics import registry_for, serve
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.worker import Connection, Worker
from tests.conftest import fixture_bytes
from tests.harness import free_port
from workers.binance import Binance

Samples = dict[str, list[tuple[dict[str, str], float]]]


def write_override(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_default_metrics_ports_follow_exchange_order() -> None:
    metrics = configuration.load(None).metrics
    assert metrics.host == "127.0.0.1"
    assert list(metrics.ports.items()) == [(name, 9301 + index) for index, name in enumerate(configuration.EXCHANGES)]


def test_an_override_changes_only_what_it_names(tmp_path: Path) -> None:
    override = write_override(tmp_path, "metrics: {host: 10.0.0.5, ports: {kraken: 9409, upbit: 0}}\n")
    metrics = configuration.load(override).metrics
    assert metrics.host == "10.0.0.5"
    assert metrics.ports["kraken"] == 9409
    assert metrics.ports["upbit"] == 0  # no /metrics for upbit
    assert metrics.ports["coinbase"] == 9310


@pytest.mark.parametrize("yaml_text, problem", [
    ("metrics: {ports: {krakn: 9400}}\n",
     "metrics.ports.krakn: unknown exchange (known: " + ", ".join(configuration.EXCHANGES) + ")"),
    ("metrics: {ports: {kraken: 70000}}\n",
     "metrics.ports.kraken: Expected `int` <= 65535 (a TCP port, or 0 for no /metrics)"),
    ("metrics: {ports: {kraken: http}}\n",
     "metrics.ports.kraken: Expected `int`, got `str` (a TCP port, or 0 for no /metrics)"),
    ("metrics: {ports: {kraken: true}}\n",
     "metrics.ports.kraken: Expected `int`, got `bool` (a TCP port, or 0 for no /metrics)"),
    ("metrics: {ports: {upbit: 9309}}\n",
     "metrics.ports.upbit: port 9309 is also kraken's; each worker needs a port of its own"),
    ("metrics: {ports: [9301]}\n",
     "metrics.ports: expected a mapping of exchange to port, such as {kraken: 9309}"),
    ("metrics: {hosts: 0.0.0.0}\n", "metrics.hosts: unknown key"),
    ("metrics: {host: ''}\n", "metrics.host: Expected `str` of length >= 1"),
    ("metrics: 9301\n", "metrics: Expected `object`, got `int`"),
])
def test_a_bad_metrics_section_is_one_line_naming_file_and_key(tmp_path: Path, yaml_text: str, problem: str) -> None:
    override = write_override(tmp_path, yaml_text)
    with pytest.raises(configuration.ConfigError) as raised:
        configuration.load(override)
    assert str(raised.value) == f"{override}: {problem}"


def test_config_check_exits_78_with_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override = write_override(tmp_path, "metrics: {ports: {binance: -1}}\n")
    with pytest.raises(SystemExit) as exited:
        check.main(["--config", str(override)])
    assert exited.value.code == 78
    assert capsys.readouterr().err == (f"coinstream check: error: {override}: metrics.ports.binance: "
                                       f"Expected `int` >= 0 (a TCP port, or 0 for no /metrics)\n")


# The collector. ---------------------------------------------------------------------

def binance_worker() -> Worker:
    """A Binance worker that has published one WebSocket and one REST record, with one
    connection that has not delivered yet and one reconnect, and an ack latency from
    librdkafka's statistics."""
    loaded = configuration.load(None)
    exchange = loaded.exchange("binance")
    venue = Binance(exchange.ws_url, exchange.rest_url)
    stats = Stats()
    worker = Worker(venue, exchange, loaded.runtime_for("binance"), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test.metrics"))
    eth = venue.market("ETH", "USDT")
    worker.on_frame(fixture_bytes("binance", "ws_ticker_combined_1.json"), 1, "ws://test")
    rest_body = b"[" + fixture_bytes("binance", "rest_ticker_24hr_doc.json").replace(b"BNBBTC", b"ETHUSDT") + b"]"
    worker.on_rest_body(rest_body, 1, venue.rest_ticker_urls([eth])[0])
    worker.connections = [Connection(worker, [eth], 0)]
    stats.reconnects["stalled"] += 1
    stats.ack_latency_s = (0.006, 0.012)
    return worker


def scrape(worker: Worker) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry_for(worker)).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def exported_names() -> set[str]:
    """Every sample name a worker's /metrics has (process_* included), books too."""
    return set(scrape(binance_worker())) | set(scrape(binance_book_worker()))


def binance_book_worker() -> Worker:
    """binance_worker with a book channel on one book connection, fed the real NKNUSDT
    diff, the REST seed, and the diff after the one that follows it (at a depth beyond
    20 levels: Binance's diff stream)."""
    worker = binance_worker()
    worker.exchange.book_depth = 21
    nkn = worker.venue.market("NKN", "USDT")
    worker.venue.learn([nkn])
    worker.book_markets([nkn])
    assert worker.books is not None
    worker.book_connections = [Connection(worker, [nkn], 0, worker.books)]
    worker.books.on_frame(fixture_bytes("binance", "book_ws_diff_depth_1_real.json"), 1, "ws://test")  # held
    url = worker.venue.book_rest_urls([nkn], worker.exchange.book_depth)[0]
    worker.on_rest_body(fixture_bytes("binance", "book_rest_depth_nknusdt_limit1000_real.json"), 2, url)
    # The third diff without the second: the first change after the seed starts beyond
    # it, so the seed is older than the stream (the documented rule).
    worker.books.on_frame(fixture_bytes("binance", "book_ws_diff_depth_3_real.json"), 3, "ws://test")
    return worker


def test_collector_reads_the_stats_and_connections() -> None:
    worker = binance_worker()
    samples = scrape(worker)
    assert samples["coinstream_records_total"] == [({"exchange": "binance", "source": "ws"}, 1.0),
                                                   ({"exchange": "binance", "source": "rest"}, 1.0)]
    assert samples["coinstream_frames_total"] == [({"exchange": "binance"}, 1.0)]
    assert samples["coinstream_reconnects_total"] == [({"exchange": "binance", "reason": "stalled"}, 1.0)]
    labels = {"exchange": "binance", "connection": "0"}
    [(_, since)] = samples["coinstream_seconds_since_last_record"]
    assert samples["coinstream_ws_connected"] == [(labels, 0.0)] and since == math.inf

    connection = worker.connections[0]
    connection.connected = True
    connection.last_ws_record += 0.001  # as _read stamps a frame that carried tickers
    samples = scrape(worker)
    assert samples["coinstream_ws_connected"] == [(labels, 1.0)]
    [(_, since)] = samples["coinstream_seconds_since_last_record"]
    assert 0 <= since < 1
    connection.last_heard -= 42  # a quiet market: the socket's last pong came 42 s ago
    [(_, heard)] = scrape(worker)["coinstream_seconds_since_heard"]
    assert 42 <= heard < 43


def test_book_metrics_count_records_resyncs_of_every_reason_and_the_book_age() -> None:
    """A Binance worker's book channel fed the real NKNUSDT seed and a diff that skips one."""
    worker = binance_book_worker()
    samples = scrape(worker)
    assert samples["coinstream_book_records_total"] == [({"exchange": "binance", "source": "ws"}, 0.0),
                                                        ({"exchange": "binance", "source": "rest"}, 1.0)]
    assert samples["coinstream_book_resyncs_total"] == [
        ({"exchange": "binance", "reason": reason}, 1.0 if reason == "snapshot_stale" else 0.0)
        for reason in ("gap", "checksum", "crossed", "snapshot_stale")]
    assert samples["coinstream_book_frames_total"] == [({"exchange": "binance"}, 2.0)]
    assert samples["coinstream_book_skipped_total"] == [({"exchange": "binance"}, 1.0)]
    [(labels, since)] = samples["coinstream_seconds_since_last_book"]
    assert labels == {"exchange": "binance", "connection": "book-0"} and since == math.inf


def test_spool_gauges_are_the_counters_lines_spool_records_and_spool_inherited() -> None:
    worker = binance_worker()
    worker.stats.spool_records, worker.stats.spool_inherited = 7, 5
    samples = scrape(worker)
    assert samples["coinstream_spool_records"] == [({"exchange": "binance"}, 7.0)]
    assert samples["coinstream_spool_inherited_records"] == [({"exchange": "binance"}, 5.0)]


def test_delivery_histogram_is_cumulative_across_the_counters_line() -> None:
    worker = binance_worker()
    stats = worker.stats
    for latency_s in (0.0004, 0.004, 0.004, 0.3):
        stats.observe_delivery(latency_s)
    stats.report(logging.getLogger("coinstream.test.metrics"), 0)  # resets the per-minute window
    stats.observe_delivery(7.0)
    samples = scrape(worker)
    buckets = {labels["le"]: count for labels, count in samples["coinstream_kafka_delivery_report_latency_seconds_bucket"]}
    assert (buckets["0.0005"], buckets["0.003"], buckets["0.005"], buckets["0.2"], buckets["0.5"],
            buckets["5.0"], buckets["+Inf"]) == (1, 1, 3, 3, 4, 4, 5)
    assert list(buckets.values()) == sorted(buckets.values())
    assert samples["coinstream_kafka_delivery_report_latency_seconds_count"] == [({"exchange": "binance"}, 5.0)]
    [(_, total_s)] = samples["coinstream_kafka_delivery_report_latency_seconds_sum"]
    assert total_s == pytest.approx(7.3084)


def test_tasks_gauge_counts_the_loop_tasks_when_scraped() -> None:
    """Before the first counters line, too: the gauge read 0 for the whole first interval."""
    worker = binance_worker()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        async def start_sleepers() -> list[asyncio.Task[None]]:
            return [asyncio.create_task(asyncio.sleep(60)) for _ in range(3)]

        sleepers = asyncio.run_coroutine_threadsafe(start_sleepers(), loop).result(5)
        worker.loop = loop
        [(_, tasks)] = scrape(worker)["coinstream_asyncio_tasks"]
        assert tasks == 3
        for sleeper in sleepers:
            loop.call_soon_threadsafe(sleeper.cancel)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_counters_line_shows_nothing_to_show_plainly() -> None:
    stats = Stats()
    line = stats.line(queue_depth=0)
    assert " reconnects=0 " in line and "[]" not in line
    assert "None" not in line
    assert " ack_p50_ms=- ack_p99_ms=- delivery_report_p50_ms=- delivery_report_p99_ms=- " in line

    stats.reconnects["stalled"] += 2
    stats.reconnects["closed_1011"] += 1
    stats.observe_delivery(0.004)
    stats.ack_latency_s = (0.0061, 0.0123)
    line = stats.line(queue_depth=0)
    assert " reconnects=3[closed_1011=1,stalled=2] " in line
    assert " ack_p50_ms=6.1 ack_p99_ms=12.3 delivery_report_p50_ms<=5 delivery_report_p99_ms<=5 " in line


def _wakeups(thread: threading.Thread) -> int:
    """How often `thread` has slept and been woken (Linux: its voluntary context switches)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt_switches")))


def test_metrics_are_served_by_a_thread_that_sleeps_until_a_scrape() -> None:
    """prometheus_client's start_http_server thread woke twice a second to look for a
    shutdown that never comes; an idle worker's process paid for it."""
    port = free_port()
    serve(binance_worker(), "127.0.0.1", port)
    [thread] = [thread for thread in threading.enumerate() if thread.name == "metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b'coinstream_frames_total{exchange="binance"} 1.0' in response.read()
    time.sleep(0.1)  # the scrape's own wakeups over
    before = _wakeups(thread)
    time.sleep(1.6)
    assert _wakeups(thread) - before == 0  # before: 3
