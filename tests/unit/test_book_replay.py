"""Gate.io's and Coinbase's book channels through --replay's own path (Worker.replay ->
BookChannel), on their verbatim samples: the records a chain of frames publishes, and the
resyncs it counts. Frames marked "of our own" are built in the documented shape."""

import json
import logging
from pathlib import Path

import pytest

from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.venue import Venue
from shared.worker import Worker
from tests.conftest import fixture_bytes
from workers.coinbase import Coinbase
from workers.gateio import Gateio

T0_NS = 1_796_454_000_000_000_000
Capture = list[tuple[str, str, bytes]]  # (kind, url, payload)


def replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], venue: type[Venue], ws_url: str, rest_url: str,
           symbols: list[str], depth: int, capture: Capture) -> tuple[list[dict[str, object]], Stats]:
    """The book records that replaying `capture` publishes, and the worker's counters."""
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(json.dumps({"ts": T0_NS + index, "kind": kind, "url": url, "data": data.decode()}) + "\n"
                            for index, (kind, url, data) in enumerate(capture)))
    exchange = ExchangeConfig(ws_url=ws_url, rest_url=rest_url, symbols=symbols, channels=["book"], book_depth=depth)
    stats = Stats()
    worker = Worker(venue(ws_url, rest_url), exchange, Runtime(), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test"))
    worker.replay(path)
    worker.sink.close(1)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()], stats


# --- Gate.io spot.obu ---------------------------------------------------------------

GATE_WS = "wss://api.gateio.ws/ws/v4/"
GATE_REST = "https://api.gateio.ws"


def _obu_change(first: int, last: int, bid: str) -> bytes:
    """A spot.obu change push of our own, after the docs' pushes."""
    return json.dumps({"channel": "spot.obu", "result": {
        "t": 1747054613000, "s": "ob.BTC_USDT.50", "U": first, "u": last,
        "b": [[bid, "7"]], "a": []}, "time_ms": 1747054613100}).encode()


def test_gate_full_push_then_changes_in_sequence_then_a_gap(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    full = fixture_bytes("gateio", "book_ws_obu_full_doc.json")
    records, stats = replay(tmp_path, capsys, Gateio, GATE_WS, GATE_REST, ["BTC-USDT"], 3, [
        ("book", GATE_WS, fixture_bytes("gateio", "book_ws_obu_subscribe_ack_doc.json")),
        ("book", GATE_WS, full),
        ("book", GATE_WS, fixture_bytes("gateio", "book_ws_obu_update_doc.json")),  # U = u + 1
        ("book", GATE_WS, _obu_change(73777715214, 73777715215, "104026")),  # 73777715213 missing: gap
        ("book", GATE_WS, _obu_change(73777715216, 73777715216, "104025")),  # the book is lost: skipped
        ("book", GATE_WS, full),  # a full push (the resubscribe's) rebuilds it
    ])
    assert [(r["update_id"], r["exchange_ts"], r["bids"], r["asks"]) for r in records] == [
        (73777715168, 1747054612673, [["104027.1", "509392"], ["104027", "477932"]],
         [["104027.2", "44617"], ["104027.4", "39322"]]),
        (73777715212, 1747054612695, [["104027.1", "509392"], ["104027", "477932"], ["104024.5", "10343"]], []),
        (73777715168, 1747054612673, [["104027.1", "509392"], ["104027", "477932"]],
         [["104027.2", "44617"], ["104027.4", "39322"]]),
    ]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert stats.book_resyncs == {"gap": 1} and stats.book_skipped == 1 and stats.dead_letters == 0


def test_gate_rest_book_is_published_as_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{GATE_REST}/api/v4/spot/order_book?currency_pair=HAI_ETH&limit=2&with_id=true"
    records, stats = replay(tmp_path, capsys, Gateio, GATE_WS, GATE_REST, ["HAI-ETH"], 2, [
        ("rest", url, fixture_bytes("gateio", "book_rest_order_book_with_id_hai_eth_real_2021.json")),
    ])
    assert [(r["symbol"], r["source"], r["update_id"], r["bids"], r["asks"]) for r in records] == [
        ("HAI-ETH", "rest", 2691446, [["0.00010322", "5360.209"], ["0.00010276", "20.80412499"]],
         [["0.00010396", "5876.967"], ["0.0001052", "16944.291"]]),
    ]
    assert stats.dead_letters == 0


# --- Coinbase level2_batch ----------------------------------------------------------

COINBASE_WS = "wss://ws-feed.exchange.coinbase.com"
COINBASE_REST = "https://api.exchange.coinbase.com"


def test_coinbase_snapshot_updates_and_a_crossed_book(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = fixture_bytes("coinbase", "book_exchange_ws_level2_snapshot_yfibtc_real_2021.json")
    crossing = fixture_bytes("coinbase", "book_exchange_ws_l2update_2_yfibtc_real_2021.json").replace(
        b'["buy","0.81813","0.000000"]', b'["buy","0.82727","0.5"]')  # of our own: a bid at the best ask
    records, stats = replay(tmp_path, capsys, Coinbase, COINBASE_WS, COINBASE_REST, ["YFI-BTC"], 5, [
        ("book", COINBASE_WS, fixture_bytes("coinbase", "book_exchange_ws_subscriptions_ack_real_2021.json")),
        ("book", COINBASE_WS, snapshot),
        ("book", COINBASE_WS, fixture_bytes("coinbase", "book_exchange_ws_l2update_1_yfibtc_real_2021.json")),
        ("book", COINBASE_WS, fixture_bytes("coinbase", "book_exchange_ws_l2update_2_yfibtc_real_2021.json")),
        ("book", COINBASE_WS, crossing),
        ("book", COINBASE_WS, snapshot),  # the resubscribe's snapshot rebuilds it
    ])
    asks = [[price, size] for price, size in json.loads(snapshot)["asks"][:6]]
    assert [(r["update_id"], r["exchange_ts"], r["asks"]) for r in records] == [
        (None, None, asks[:5]),
        (None, 1618677817132, asks[:3] + asks[4:6]),  # 0.82754 deleted
        (None, None, asks[:5]),
    ]
    # The second update deletes a bid below the top 5: conflated.
    assert stats.book_conflated == 1
    assert stats.book_resyncs == {"crossed": 1} and stats.dead_letters == 0


def test_coinbase_rest_book_is_published_as_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A body in the documented shape, values of our own (no REST book sample exists)."""
    url = f"{COINBASE_REST}/products/BTC-USD/book?level=2"
    body = (b'{"bids":[["91234.56","0.01200000",3],["91234.5","1.5",1]],"asks":[["91235.00","0.4",2]],'
            b'"sequence":110582734901,"auction_mode":false,"auction":null,"time":"2026-12-05T07:00:00.123456Z"}')
    records, _ = replay(tmp_path, capsys, Coinbase, COINBASE_WS, COINBASE_REST, ["BTC-USD"], 10,
                        [("rest", url, body)])
    assert [(r["source"], r["update_id"], r["exchange_ts"], r["bids"], r["asks"]) for r in records] == [
        ("rest", 110582734901, 1796454000123, [["91234.56", "0.01200000"], ["91234.5", "1.5"]],
         [["91235.00", "0.4"]]),
    ]
