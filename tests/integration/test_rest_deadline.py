"""A REST server that drips one byte at a time (simulator fault drip_rest): no single read
waits long, so only a deadline for the whole call ends it. The worker abandons such a
call at rest_timeout_s, counts it as a REST error and tries again; a stop ends the
worker within stop_timeout_s whatever the call is doing."""

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import consume, override_file, topic_size, wait_until
from tests.integration.test_books import BOOKS, settle_and_compare

pytestmark = pytest.mark.integration

TIMEOUT_S = 3
# Well under the timeout: a timeout per read would never fire.
DRIP_S = 1


def test_a_dripping_snapshot_is_abandoned_and_the_fallback_polls(kafka: str, simulator: Any, worker: Any,
                                                                 tmp_path: Path) -> None:
    sim = simulator("binance", rate=0, markets=4)
    sim.fault("binance", "ws_down", seconds=120)  # no socket: REST is all there is
    # The startup check of the symbols against the market list, then the snapshot.
    sim.fault("binance", "drip_rest", count=2, seconds=DRIP_S)
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"rest_timeout_s": TIMEOUT_S})
    ticker = yaml.safe_load(config.read_text())["topics"]["ticker"]
    started = time.monotonic()
    process = worker("binance", config)
    # Two polls' worth: the snapshot, once retried, and then the fallback.
    consume(kafka, ticker, lambda got: sum(1 for _, v in got if v["source"] == "rest") >= 8, timeout_s=60)
    assert time.monotonic() - started < 30
    wait_until(lambda: "polling REST every" in process.log(), 10, "the fallback to start")
    assert process.stop() == 0
    log = process.log()
    assert "configured symbols not checked" in log
    assert f"ticker/24hr?symbols=***: no complete answer within {TIMEOUT_S:g} s; retrying" in log
    assert int(log.rsplit("rest_errors=", 1)[1].split()[0]) >= 2


def test_a_hung_market_list_is_retried_with_a_log_line(kafka: str, simulator: Any, worker: Any,
                                                       tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=4)
    sections = sim.config["exchanges"]
    sections["binance"] = {**sections["binance"], "quotes": ["USDT"]}
    del sections["binance"]["symbols"]
    sim.fault("binance", "drip_rest", count=1, seconds=DRIP_S)
    config = override_file(tmp_path, kafka, sections, {"rest_timeout_s": TIMEOUT_S})
    ticker = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("binance", config)
    consume(kafka, ticker, lambda got: sum(1 for _, v in got if v["source"] == "ws") >= 10, timeout_s=60)
    assert process.stop() == 0
    log = process.log()
    hung = log.index(f"exchangeInfo?permissions=***: no complete answer within {TIMEOUT_S:g} s; retrying")
    assert hung < log.index("4 markets on 1 connection(s)")


def test_a_stop_ends_the_worker_in_time_while_a_rest_call_drips(kafka: str, simulator: Any, worker: Any,
                                                               tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=4)
    sim.fault("binance", "drip_rest", count=100, seconds=DRIP_S)
    stop_timeout_s = 5
    # A deadline far away: the stop comes while the snapshot call is still dripping.
    config = override_file(tmp_path, kafka, sim.config["exchanges"],
                           {"rest_timeout_s": 120, "stop_timeout_s": stop_timeout_s})
    process = worker("binance", config)
    wait_until(lambda: sim.control("binance", "stats")["rest_calls"] >= 1, 30, "the snapshot call")
    time.sleep(2 * DRIP_S)  # its answer is dripping in: the thread is in a read
    stopping = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    assert process.stop(timeout_s=stop_timeout_s + 5) == 0
    assert time.monotonic() - stopping < stop_timeout_s
    assert "stopped" in process.log()


def test_a_dripping_book_snapshot_is_abandoned_and_the_books_and_tickers_go_on(kafka: str, simulator: Any,
                                                                              worker: Any, tmp_path: Path) -> None:
    """Binance beyond 20 levels rebuilds every book after a reconnect from a REST snapshot
    of its own. The first two of those calls drip: each is abandoned at rest_timeout_s and
    tried again; meanwhile the tickers flow, and every book is right again afterwards."""
    markets = 3
    depth = BOOKS["binance-diff"].depth
    sim = simulator("binance", rate=50, markets=markets)
    sim.control("binance", "book_rate", per_s=100)
    section = {**sim.config["exchanges"]["binance"], "channels": ["ticker", "book"], "book_depth": depth}
    # No REST fallback: a book socket answering is all the test wants.
    config = override_file(tmp_path, kafka, {"binance": section},
                           {"rest_timeout_s": TIMEOUT_S, "rest_fallback_after_s": 3600, "watchdog_s": 3600})
    topics = yaml.safe_load(config.read_text())["topics"]
    process = worker("binance", config)
    consume(kafka, topics["book"], lambda got: len({record["symbol"] for _, record in got}) == markets, timeout_s=60)
    sim.fault("binance", "drip_rest", count=2, seconds=DRIP_S)
    sim.fault("binance", "close")
    wait_until(lambda: "no complete answer within" in process.log(), 30, "a dripping snapshot abandoned")
    dripping_since = time.monotonic()
    tickers = topic_size(kafka, topics["ticker"])
    time.sleep(2)  # the second call drips
    assert topic_size(kafka, topics["ticker"]) >= tickers + 50, "the tickers must flow while a snapshot drips"
    settle_and_compare(sim, "binance", kafka, topics["book"], depth, markets)
    recovered_s = time.monotonic() - dripping_since
    assert process.stop() == 0
    log = process.log()
    assert f"no complete answer within {TIMEOUT_S:g} s; retrying" in log, log[-3000:]
    assert int(log.rsplit("rest_errors=", 1)[1].split()[0]) == 2
    print(f"dripping book snapshots: books right {recovered_s:.1f} s after the first was abandoned")
