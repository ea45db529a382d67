"""A configured symbol the exchange does not list (a typo, a delisting) is named once and
costs the other symbols nothing: at startup the worker checks its symbols against the
market list; a REST call that names several markets and is refused for one of them is
split until that one is found, and it is dropped from REST polling.

The simulator answers an unknown code as each exchange does: Binance HTTP 400 -1121
"Invalid symbol.", Upbit HTTP 404 "Code not found", Bithumb the same with HTTP 200,
Kraken HTTP 200 "EQuery:Unknown asset pair", Coinbase HTTP 404 "NotFound".
"""

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.tiers import fresh_venue
from tests.harness import consume, override_file, wait_until

pytestmark = pytest.mark.integration

UNKNOWN = {"binance": "FOO-USDT", "upbit": "FOO-KRW", "bithumb": "FOO-KRW", "kraken": "FOO-USD",
           "coinbase": "FOO-USD"}


def _counter(log: str, name: str) -> int:
    return int(re.findall(rf" {name}=(\d+)", log)[-1])


def test_unknown_symbols_are_named_in_one_line_and_the_rest_collected(kafka: str, simulator: Any, worker: Any,
                                                                      tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=3)
    sections = sim.config["exchanges"]
    known = sections["binance"]["symbols"]
    sections["binance"]["symbols"] = [known[0], "FOO-USDT", *known[1:], "BAR-USDT"]
    config = override_file(tmp_path, kafka, sections)
    ticker = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker("binance", config)

    def every_known_symbol_by_socket_and_rest(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return all({v["symbol"] for _, v in got if v["source"] == source} == set(known) for source in ("ws", "rest"))

    consume(kafka, ticker, every_known_symbol_by_socket_and_rest, timeout_s=60)
    assert process.stop() == 0
    log = process.log()
    assert log.count("not listed by binance") == 1
    assert "2 configured symbol(s) not listed by binance, not collected: FOO-USDT, BAR-USDT" in log
    assert "3 markets on 1 connection(s)" in log
    assert "HTTP 400" not in log
    assert _counter(log, "unknown_symbols") == 2


@pytest.mark.parametrize("exchange", sorted(UNKNOWN))
def test_a_rest_call_refused_for_one_code_is_split_and_the_code_dropped(exchange: str, kafka: str, simulator: Any,
                                                                        worker: Any, tmp_path: Path) -> None:
    sim = simulator(exchange, rate=0, markets=4)
    sim.fault(exchange, "ws_down", seconds=120)  # no socket: the snapshot, then the fallback
    sections = sim.config["exchanges"]
    known = sections[exchange]["symbols"]
    sections[exchange]["symbols"] = [*known[:2], UNKNOWN[exchange], *known[2:]]
    # The market list fails at startup, so the unknown symbol is not caught there.
    sim.fault(exchange, "http_500", count=1)
    config = override_file(tmp_path, kafka, sections)
    ticker = yaml.safe_load(config.read_text())["topics"]["ticker"]
    process = worker(exchange, config)

    def rest_symbols_after(after_ns: int, got: list[tuple[str, dict[str, Any]]]) -> set[str]:
        return {v["symbol"] for _, v in got if v["source"] == "rest" and v["received_ns"] > after_ns}

    consume(kafka, ticker, lambda got: rest_symbols_after(0, got) == set(known), timeout_s=60)
    wait_until(lambda: "polling REST every" in process.log(), 30, "the fallback")
    # A delisting while the fallback polls: the call fails again, for another code.
    delisted_symbol = known[1]
    sim.fault(exchange, "delist", market=fresh_venue(exchange).market(*delisted_symbol.split("-")).raw)
    time.sleep(1)
    after = time.time_ns()
    consume(kafka, ticker, lambda got: rest_symbols_after(after, got) == set(known) - {delisted_symbol},
            timeout_s=60)
    time.sleep(2)  # a few more polls: each code is logged once
    assert process.stop() == 0
    log = process.log()
    assert "configured symbols not checked" in log
    for symbol in (UNKNOWN[exchange], delisted_symbol):
        assert log.count(f"{symbol}: refused by the exchange's REST API") == 1, log
    assert _counter(log, "unknown_symbols") == 2


def test_a_worker_whose_every_symbol_is_unknown_says_so_and_waits(kafka: str, simulator: Any, worker: Any,
                                                                   tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=3)
    sections = sim.config["exchanges"]
    sections["binance"]["symbols"] = ["FOO-USDT"]
    process = worker("binance", override_file(tmp_path, kafka, sections))
    wait_until(lambda: process.log().count("none of the configured symbols is listed") >= 2, 30,
               "the market list read twice")
    assert process.stop() == 0
    log = process.log()
    assert log.count("not listed by binance, not collected: FOO-USDT") >= 2
    assert "markets on" not in log  # no connection opened
    assert _counter(log, "unknown_symbols") == 1
