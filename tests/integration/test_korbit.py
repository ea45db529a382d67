"""Korbit specifics against the simulator (and Kafka where a worker runs): the keepalive
rule, per-request acks and failures, a bad symbol failing alone, market discovery."""

import json
import time
from typing import Any

import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.harness import consume, override_file, topic_size

pytestmark = pytest.mark.integration


def _start_worker(kafka: str, sim: Any, worker: Any, tmp_path: Any, section: dict[str, Any],
                  runtime: dict[str, Any] | None = None) -> tuple[Any, str, str]:
    config = override_file(tmp_path, kafka, {"korbit": section}, runtime)
    topics = yaml.safe_load(config.read_text())["topics"]
    return worker("korbit", config), topics["ticker"], topics["dead_letter"]


def _ws_symbols(messages: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {value["symbol"] for _, value in messages if value["source"] == "ws"}


def _frames(client: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(client.recv(timeout=5)) for _ in range(count)]


def test_pinging_worker_outlives_the_idle_rule(kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator("korbit", rate=20, markets=3)
    sim.control("korbit", "idle", seconds=3)
    process, ticker_topic, _ = _start_worker(kafka, sim, worker, tmp_path, sim.config["exchanges"]["korbit"],
                                             {"ping_interval_s": 1})
    consume(kafka, ticker_topic, lambda got: len(_ws_symbols(got)) == 3, timeout_s=20)
    # The worker sends nothing after its subscribe but protocol pings: twice the idle limit.
    time.sleep(6)
    after = time.time_ns()
    consume(kafka, ticker_topic, lambda got: any(v["source"] == "ws" and v["received_ns"] > after for _, v in got))
    assert sim.control("korbit", "stats")["connections_total"] == 1
    assert process.stop() == 0


def test_client_that_does_not_ping_is_closed(simulator: Any) -> None:
    sim = simulator("korbit", rate=20, markets=3)
    sim.control("korbit", "idle", seconds=2)
    with connect(sim.config["exchanges"]["korbit"]["ws_url"], ping_interval=None) as client:
        client.send('[{"method":"subscribe","type":"ticker","symbols":["btc_krw"],"requestId":1}]')
        assert _frames(client, 1) == [{"status": "success", "requestId": 1}]
        subscribed = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:  # tickers keep coming until the server drops the silent client
                client.recv(timeout=10)
        assert 1.8 < time.monotonic() - subscribed < 4


def test_acks_and_failures_per_request_object(simulator: Any) -> None:
    sim = simulator("korbit", rate=0, markets=3)
    with connect(sim.config["exchanges"]["korbit"]["ws_url"]) as client:
        client.send('[{"method":"subscribe","type":"ticker","symbols":["btc_krw"],"requestId":1},'
                    '{"method":"subscribe","type":"ticker","symbols":["nope_krw"],"requestId":2},'
                    '{"method":"subscribe","type":"ticker","symbols":["eth_krw"]}]')
        ack, failure, *snapshots = _frames(client, 4)
        assert ack == {"status": "success", "requestId": 1}
        assert failure == {"status": "fail", "code": "INVALID_SYMBOL",
                           "message": "The symbol does not exist (nope_krw)", "requestId": 2}
        # The request without a requestId succeeded silently: its snapshot is the only sign.
        assert [(frame["symbol"], frame["snapshot"]) for frame in snapshots] == [("btc_krw", True), ("eth_krw", True)]
        # Symbols are case-sensitive; a bare object is not a request; the socket stays open.
        client.send('[{"method":"subscribe","type":"ticker","symbols":["XRP_KRW"],"requestId":3}]')
        client.send('{"method":"subscribe","type":"ticker","symbols":["xrp_krw"],"requestId":4}')
        assert _frames(client, 2) == [
            {"status": "fail", "code": "INVALID_SYMBOL", "message": "The symbol does not exist (XRP_KRW)",
             "requestId": 3},
            {"status": "fail", "message": "invalid_format"},
        ]
        sim.control("korbit", "rate", per_s=20)
        realtime = _frames(client, 4)
        assert {frame["symbol"] for frame in realtime} == {"btc_krw", "eth_krw"}
        assert all("snapshot" not in frame for frame in realtime)


def test_unknown_symbol_fails_alone(kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator("korbit", rate=20, markets=3)
    section = dict(sim.config["exchanges"]["korbit"])
    section["symbols"] = [*section["symbols"], "NOPE-KRW"]
    # The market list fails at startup, so NOPE-KRW is not caught there and reaches the
    # socket, as a pair delisted after the worker started would.
    sim.fault("korbit", "http_500", count=1)
    process, ticker_topic, dead_letter_topic = _start_worker(kafka, sim, worker, tmp_path, section)
    messages = consume(kafka, ticker_topic, lambda got: len(_ws_symbols(got)) == 3, timeout_s=20)
    assert _ws_symbols(messages) == set(sim.config["exchanges"]["korbit"]["symbols"])
    assert process.stop() == 0
    assert "INVALID_SYMBOL: The symbol does not exist (nope_krw) (requestId 4)" in process.log()
    assert topic_size(kafka, dead_letter_topic) == 0


def test_quotes_discover_launched_pairs_only(kafka: str, simulator: Any, worker: Any, tmp_path: Any) -> None:
    sim = simulator("korbit", rate=20, markets=4)
    section = {key: value for key, value in sim.config["exchanges"]["korbit"].items() if key != "symbols"}
    process, ticker_topic, _ = _start_worker(kafka, sim, worker, tmp_path, {**section, "quotes": ["KRW"]})
    messages = consume(kafka, ticker_topic, lambda got: len(_ws_symbols(got)) == 4, timeout_s=20)
    # The stopped pair in /v2/currencyPairs is neither subscribed nor polled.
    assert {value["symbol"] for _, value in messages} == set(sim.config["exchanges"]["korbit"]["symbols"])
    assert process.stop() == 0
    assert "4 markets on 1 connection(s)" in process.log()
    assert "INVALID_SYMBOL" not in process.log()
