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
from simulator.coinbase import advanced_frame, l2_event
from workers.coinbase import Coinbase
from workers.gateio import Gateio

T0_NS = 1_796_454_000_000_000_000
# (kind, url, payload), and a book frame's connection (shared.capture) where it names one.
Capture = list[tuple[str, str, bytes] | tuple[str, str, bytes, str]]


def replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], venue: type[Venue], ws_url: str, rest_url: str,
           symbols: list[str], depth: int, capture: Capture) -> tuple[list[dict[str, object]], Stats]:
    """The book records that replaying `capture` publishes, and the worker's counters."""
    path = tmp_path / "capture.jsonl"
    path.write_text("".join(json.dumps({"ts": T0_NS + index, "kind": item[0], "url": item[1], "data": item[2].decode(),
                                        **({"connection": item[3]} if len(item) == 4 else {})}) + "\n"
                            for index, item in enumerate(capture)))
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


# --- Coinbase Advanced Trade level2: numbered per connection ---------------------------

COINBASE_WS = "wss://ws-feed.exchange.coinbase.com"
COINBASE_REST = "https://api.exchange.coinbase.com"
ADVANCED_TRADE = "wss://advanced-trade-ws.coinbase.com"
SENT = "2026-12-05T07:00:00.123456Z"
FIRST, SECOND = "coinbase-book#0/1", "coinbase-book#1/1"  # two sockets, as a capture names them


def _l2(kind: str, product_id: str, number: int, bid: str, ask: str | None = None) -> bytes:
    """An l2_data frame of our own, numbered `number`: a bid (and an ask) of size 1."""
    levels = [("bid", bid, "1")] + ([("offer", ask, "1")] if ask else [])
    return advanced_frame("l2_data", SENT, number, [l2_event(kind, product_id, levels, SENT)]).encode()


def _heartbeats(number: int) -> bytes:
    """The real heartbeats frame, numbered `number`."""
    real = json.loads(fixture_bytes("coinbase", "book_advanced_ws_heartbeats_real_2026.json"))
    return advanced_frame("heartbeats", real["timestamp"], number, real["events"]).encode()


def _on(connection: str, frame: bytes) -> tuple[str, str, bytes, str]:
    return ("book", ADVANCED_TRADE, frame, connection)


def _coinbase_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     capture: Capture) -> tuple[list[dict[str, object]], Stats]:
    return replay(tmp_path, capsys, Coinbase, COINBASE_WS, COINBASE_REST, ["BTC-USD", "SOL-USD", "ETH-USD"], 1,
                  capture)


@pytest.mark.parametrize(("breaking", "next_number"), [
    (6, 7),  # a gap: 5 is missing
    (4, 5),  # a repeat of the heartbeats' 4
    (2, 5),  # an older number (a message sent late)
], ids=["gap", "repeat", "older"])
def test_a_break_in_a_connection_numbering_loses_every_book_of_that_connection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], breaking: int, next_number: int) -> None:
    """BTC-USD and SOL-USD on the first socket, ETH-USD on the second, each numbering its
    frames from 0, the acks and heartbeats included. A break on the first socket loses
    its two books (counted each) and nothing else; the frame that shows it, and the
    changes after it, publish nothing until the resubscribe's snapshot."""
    records, stats = _coinbase_replay(tmp_path, capsys, [
        _on(FIRST, _l2("snapshot", "BTC-USD", 0, "100", "101")),  # the snapshot before the ack, as the real one
        _on(FIRST, fixture_bytes("coinbase", "book_advanced_ws_subscriptions_ack_level2_real_2026.json")),  # 1
        _on(FIRST, _l2("snapshot", "SOL-USD", 2, "20", "21")),
        _on(SECOND, _l2("snapshot", "ETH-USD", 0, "30", "31")),
        _on(FIRST, _l2("update", "BTC-USD", 3, "100.5")),
        _on(SECOND, _heartbeats(1)),
        _on(SECOND, _l2("update", "ETH-USD", 2, "30.5")),
        _on(FIRST, _heartbeats(4)),
        _on(FIRST, _l2("update", "SOL-USD", breaking, "20.5")),  # the break
        _on(SECOND, _l2("update", "ETH-USD", 3, "30.7")),
        _on(FIRST, _l2("update", "BTC-USD", next_number, "100.7")),  # its book is lost: skipped
        _on(FIRST, _l2("snapshot", "BTC-USD", next_number + 1, "99", "101")),  # the resubscribe's
        _on(FIRST, _l2("update", "BTC-USD", next_number + 2, "100")),
    ])
    assert [(r["symbol"], r["update_id"], r["bids"][0][0]) for r in records] == [
        ("BTC-USD", 0, "100"), ("SOL-USD", 2, "20"), ("ETH-USD", 0, "30"), ("BTC-USD", 3, "100.5"),
        ("ETH-USD", 2, "30.5"), ("ETH-USD", 3, "30.7"),
        ("BTC-USD", next_number + 1, "99"), ("BTC-USD", next_number + 2, "100"),
    ]
    assert all(r["exchange_ts"] == 1796454000123 for r in records)
    assert stats.book_resyncs == {"gap": 2} and stats.dead_letters == 0


def test_each_session_numbers_anew_and_a_book_follows_the_session_that_built_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reconnect (the socket's second session) numbers from 0 again: no gap. Its change
    that comes before its own snapshot of the book is skipped: the book kept is the
    first session's, and that change follows a snapshot it never had."""
    reconnected = "coinbase-book#0/2"
    records, stats = _coinbase_replay(tmp_path, capsys, [
        _on(FIRST, _l2("snapshot", "BTC-USD", 0, "100", "101")),
        _on(FIRST, _l2("update", "BTC-USD", 1, "100.5")),
        _on(reconnected, _l2("update", "BTC-USD", 0, "100.7")),  # skipped
        _on(reconnected, _l2("snapshot", "BTC-USD", 1, "99", "101")),
        _on(reconnected, _l2("update", "BTC-USD", 2, "100")),
        _on(FIRST, _l2("update", "BTC-USD", 2, "100.9")),  # a session over: the book is the new one's
    ])
    assert [(r["update_id"], r["bids"][0][0]) for r in records] == [(0, "100"), (1, "100.5"), (1, "99"), (2, "100")]
    assert stats.book_resyncs == {} and stats.book_skipped == 2


def test_a_numbered_change_that_cannot_be_applied_loses_its_book(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A change whose level is no number is dead-lettered: the numbering goes on, so only
    the change's own absence tells that the book missed it."""
    records, stats = _coinbase_replay(tmp_path, capsys, [
        _on(FIRST, _l2("snapshot", "BTC-USD", 0, "100", "101")),
        _on(FIRST, _l2("update", "BTC-USD", 1, "1OO.5")),  # letters O, not zeros
        _on(FIRST, _l2("update", "BTC-USD", 2, "100.7")),  # the book is lost: skipped
        _on(FIRST, _l2("snapshot", "BTC-USD", 3, "99", "101")),
    ])
    assert [(r["update_id"], r["bids"][0][0]) for r in records] == [(0, "100"), (3, "99")]
    assert stats.book_resyncs == {"gap": 1} and stats.dead_letters == 1


def test_a_capture_without_connections_is_one_numbering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Captures made before sessions were recorded name no connection: all one socket."""
    records, stats = _coinbase_replay(tmp_path, capsys, [
        ("book", ADVANCED_TRADE, _l2("snapshot", "BTC-USD", 0, "100", "101")),
        ("book", ADVANCED_TRADE, _l2("update", "BTC-USD", 2, "100.5")),  # 1 is missing
    ])
    assert [r["update_id"] for r in records] == [0]
    assert stats.book_resyncs == {"gap": 1}


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


def test_book_frames_replayed_under_a_config_without_books_are_counted_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "capture.jsonl"
    rest_book = f"{GATE_REST}/api/v4/spot/order_book?currency_pair=HAI_ETH&limit=2&with_id=true"
    capture = [("book", GATE_WS, fixture_bytes("gateio", "book_ws_obu_full_doc.json")),
               ("book", GATE_WS, fixture_bytes("gateio", "book_ws_obu_update_doc.json")),
               ("rest", rest_book, fixture_bytes("gateio", "book_rest_order_book_with_id_hai_eth_real_2021.json"))]
    path.write_text("".join(json.dumps({"ts": T0_NS + index, "kind": kind, "url": url, "data": data.decode()}) + "\n"
                            for index, (kind, url, data) in enumerate(capture)))
    exchange = ExchangeConfig(ws_url=GATE_WS, rest_url=GATE_REST, symbols=["BTC-USDT"], channels=["ticker"])
    stats = Stats()
    worker = Worker(Gateio(GATE_WS, GATE_REST), exchange, Runtime(), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test"))
    with caplog.at_level(logging.WARNING):
        worker.replay(path)
    worker.sink.close(1)
    assert capsys.readouterr().out == ""
    assert stats.dead_letters == 0 and stats.book_records == 0
    assert [record.getMessage() for record in caplog.records] == [
        f"replay: 3 book frames and REST books of {path} not replayed: the config's channels (ticker) collect no books"]
