"""The book channel (shared/book_channel.py) through --replay's own path, on Binance's
reference samples. Beyond 20 levels (the diff stream): the real chain, the REST snapshot
(lastUpdateId 499869752) with the diff before it held and dropped (u <= lastUpdateId),
then the next two applied (each U is the last u + 1); and a gap in a chain of frames
built in the documented shape. Up to 20 (the partial-depth stream): the real
@depth20@100ms push replaces the book, and a push whose lastUpdateId is not above the
last one is skipped."""

import json
import logging
from pathlib import Path

import pytest

from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.worker import Worker
from tests.conftest import fixture_bytes
from workers.binance import Binance

WS_URL = "wss://stream.binance.com:9443/stream"
REST_URL = "https://data-api.binance.vision"
DEPTH_URL = f"{REST_URL}/api/v3/depth?symbol=NKNUSDT&limit=100"
T0_NS = 1_633_998_512_100_000_000
DIFF_DEPTH = 21  # beyond 20 levels Binance's books come from the diff stream


def _line(kind: str, at_ns: int, data: str, url: str = WS_URL) -> str:
    return json.dumps({"ts": at_ns, "kind": kind, "url": url, "data": data})


def _replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str],
            depth: int = DIFF_DEPTH) -> tuple[list[dict[str, object]], Stats]:
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\n".join(lines) + "\n")
    exchange = ExchangeConfig(ws_url=WS_URL, rest_url=REST_URL, symbols=["NKN-USDT", "BTC-USDT"], channels=["book"],
                              book_depth=depth)
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test"))
    worker.replay(capture)
    worker.sink.close(1)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()], stats


def _diff(name: str) -> str:
    return fixture_bytes("binance", name).decode()


def test_the_real_chain_seeds_from_rest_and_applies_in_sequence(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    records, stats = _replay(tmp_path, capsys, [
        _line("book", T0_NS, _diff("book_ws_diff_depth_1_real.json")),  # held until the snapshot
        _line("rest", T0_NS + 1, fixture_bytes("binance", "book_rest_depth_nknusdt_limit1000_real.json").decode(),
              DEPTH_URL),
        _line("book", T0_NS + 2, _diff("book_ws_diff_depth_2_real.json")),
        _line("book", T0_NS + 3, _diff("book_ws_diff_depth_3_real.json")),
    ])
    # Each record is the top 21; its best five are shown. The second diff adds bid 0.3517
    # and sets ask 0.3529, the third sets the second bid (and two bids below the top 21).
    assert [(r["source"], r["update_id"], r["seq"], r["bids"][:5], r["asks"][:5]) for r in records] == [
        ("rest", 499869752, 1,
         [["0.35210000", "672.00000000"], ["0.35200000", "1144.00000000"], ["0.35190000", "3260.00000000"],
          ["0.35180000", "3052.00000000"], ["0.35160000", "15356.00000000"]],
         [["0.35250000", "3959.00000000"], ["0.35260000", "3199.00000000"], ["0.35270000", "4201.00000000"],
          ["0.35280000", "703.00000000"], ["0.35290000", "6718.00000000"]]),
        ("ws", 499869754, 2,
         [["0.35210000", "672.00000000"], ["0.35200000", "1144.00000000"], ["0.35190000", "3260.00000000"],
          ["0.35180000", "3052.00000000"], ["0.35170000", "4265.00000000"]],
         [["0.35250000", "3959.00000000"], ["0.35260000", "3199.00000000"], ["0.35270000", "4201.00000000"],
          ["0.35280000", "703.00000000"], ["0.35290000", "10968.00000000"]]),
        ("ws", 499869757, 3,
         [["0.35210000", "672.00000000"], ["0.35200000", "1290.00000000"], ["0.35190000", "3260.00000000"],
          ["0.35180000", "3052.00000000"], ["0.35170000", "4265.00000000"]],
         [["0.35250000", "3959.00000000"], ["0.35260000", "3199.00000000"], ["0.35270000", "4201.00000000"],
          ["0.35280000", "703.00000000"], ["0.35290000", "10968.00000000"]]),
    ]
    assert all(len(r["bids"]) == len(r["asks"]) == DIFF_DEPTH for r in records)
    assert stats.book_resyncs == {} and stats.dead_letters == 0
    assert stats.book_skipped == 1  # the first diff, held while the book awaited its snapshot


def _event(first: int, last: int, bid: str) -> str:
    """A depthUpdate in the documented shape, values of our own."""
    return json.dumps({"stream": "nknusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1633998513000, "s": "NKNUSDT", "U": first, "u": last,
        "b": [[bid, "5.00000000"]], "a": []}})


def test_a_gap_loses_the_book_until_the_next_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = json.dumps({"lastUpdateId": 100, "bids": [["1.00000000", "1.00000000"]],
                           "asks": [["2.00000000", "1.00000000"]]})
    records, stats = _replay(tmp_path, capsys, [
        _line("rest", T0_NS, snapshot, DEPTH_URL),
        _line("book", T0_NS + 1, _event(99, 101, "1.10000000")),   # straddles the snapshot: applied
        _line("book", T0_NS + 2, _event(102, 103, "1.20000000")),  # follows: applied
        _line("book", T0_NS + 3, _event(105, 106, "1.30000000")),  # 104 is missing: a gap, held
        _line("book", T0_NS + 4, _event(107, 107, "1.40000000")),  # the book is lost: held
        _line("rest", T0_NS + 5, json.dumps({"lastUpdateId": 106, "bids": [["1.30000000", "5.00000000"]],
                                             "asks": [["2.00000000", "1.00000000"]]}), DEPTH_URL),
    ])
    assert [(r["source"], r["update_id"], r["bids"][:1]) for r in records] == [
        ("rest", 100, [["1.00000000", "1.00000000"]]),
        ("ws", 101, [["1.10000000", "5.00000000"]]),
        ("ws", 103, [["1.20000000", "5.00000000"]]),
        # Nothing from the lost book; the new snapshot, then the held change after it.
        ("rest", 106, [["1.30000000", "5.00000000"]]),
        ("ws", 107, [["1.40000000", "5.00000000"]]),
    ]
    assert stats.book_resyncs == {"gap": 1}


def test_a_snapshot_older_than_the_stream_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records, stats = _replay(tmp_path, capsys, [
        _line("book", T0_NS, _event(200, 201, "1.10000000")),
        _line("rest", T0_NS + 1, json.dumps({"lastUpdateId": 150, "bids": [["1.00000000", "1.00000000"]],
                                             "asks": [["2.00000000", "1.00000000"]]}), DEPTH_URL),
        _line("rest", T0_NS + 2, json.dumps({"lastUpdateId": 200, "bids": [["1.00000000", "1.00000000"]],
                                             "asks": [["2.00000000", "1.00000000"]]}), DEPTH_URL),
    ])
    # The stale snapshot's record is published (a true book at id 150), then the held
    # change shows it older than the stream; the next snapshot seeds the book again.
    assert [(r["update_id"], r["bids"][:1]) for r in records] == [
        (150, [["1.00000000", "1.00000000"]]), (201, [["1.10000000", "5.00000000"]])]
    assert stats.book_resyncs == {"snapshot_stale": 1}


def _push(update_id: int, bid: str) -> str:
    """A btcusdt@depth10@100ms push in the documented shape, values of our own."""
    return json.dumps({"stream": "btcusdt@depth10@100ms", "data": {
        "lastUpdateId": update_id, "bids": [[bid, "1.00000000"]], "asks": [["86704.78000000", "0.73337000"]]}})


def test_partial_depth_pushes_replace_the_book_and_their_ids_must_grow(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = fixture_bytes("binance", "book_ws_partial_depth20_trimmed_tokocrypto_mirror.json").decode()
    capture = [_line("book", T0_NS + number, frame) for number, frame in enumerate([
        real,
        real,  # the same push again: skipped
        _push(100530416201, "86704.70000000"),  # an older book: skipped
        _push(100530416250, "86704.70000000"),  # newer: replaces the book
    ])]
    records, stats = _replay(tmp_path, capsys, capture, depth=10)
    assert [(r["symbol"], r["update_id"], r["exchange_ts"], r["bids"], r["asks"]) for r in records] == [
        ("BTC-USDT", 100530416202, None, [["86704.77000000", "4.67805000"], ["86704.76000000", "0.00224000"]],
         [["86704.78000000", "0.73337000"], ["86704.79000000", "0.00384000"]]),
        ("BTC-USDT", 100530416250, None, [["86704.70000000", "1.00000000"]], [["86704.78000000", "0.73337000"]]),
    ]
    assert stats.book_skipped == 2
    assert stats.book_resyncs == {} and stats.dead_letters == 0
