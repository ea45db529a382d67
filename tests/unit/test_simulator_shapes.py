"""The simulator's edge shapes, frame by frame and without a socket: each exchange's
worker reads every one of them as the independent reference parser does (a valid shape
is a record, never a dead letter), and Binance's bare error form is an exchange error.
Also Binance's two endpoints, raw and combined, through the worker's parser."""

import time
from decimal import Decimal
from typing import Any

import pytest

from bench.tiers import fresh_venue
from shared.record import ExchangeError, Ticker, check_values
from simulator.__main__ import mode
from simulator.core import EDGE_EVERY, ExchangeSim, universe
from tests import reference

EXCHANGES = sorted(reference.PARSERS)


def _frames(sim: ExchangeSim, count: int, form: str = "") -> list[str]:
    market_ids = list(sim.quotes)
    return [sim._next_frame(market_ids[number % len(market_ids)], form) for number in range(count)]


def _same(ticker: Ticker, expected: dict[str, Any]) -> bool:
    for field in reference.NUMBER_FIELDS:
        got, want = getattr(ticker, field), expected[field]
        if (got is None) != (want is None) or (got is not None and Decimal(got) != want):
            return False
    return ticker.raw_symbol == expected["raw_symbol"] and ticker.exchange_ts == expected["exchange_ts"]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_every_edge_shape_is_read_as_the_reference_reads_it(exchange: str) -> None:
    sim_class = mode(exchange)
    sim = sim_class(universe(sim_class.default_quote, 5), rate_per_s=0)
    venue = fresh_venue(exchange)
    frames = _frames(sim, EDGE_EVERY * 2 * max(len(sim_class.edge_kinds), 1), sim.frame_form(sim.ws_paths[0]))
    assert dict(sim.counters.edge_shapes) == {kind: 2 for kind in sim_class.edge_kinds}
    errors = 0
    for frame in frames:
        expected = reference.PARSERS[exchange](frame)
        try:
            # As Worker.on_frame reads it: decoded, then held to the record contract
            # (a stopped Korbit pair's "0" best prices become null there).
            tickers = venue.parse_ws(frame.encode(), time.time_ns())
            check_values(tickers)
        except ExchangeError:
            errors += 1
            continue
        assert (expected is None) == (not tickers), frame
        if expected is not None:
            [ticker] = tickers
            assert _same(ticker, expected), (frame, ticker)
    assert errors == (2 if exchange == "binance" else 0)  # the bare {"code","msg"} error form


def test_edge_shapes_can_be_turned_off() -> None:
    sim_class = mode("okx")
    sim = sim_class(universe("USDT", 3), rate_per_s=0, edge_shapes=False)
    assert all('"bidPx":""' not in frame for frame in _frames(sim, 5 * EDGE_EVERY))
    assert not sim.counters.edge_shapes


@pytest.mark.parametrize("path, bare", [("/ws", True), ("/ws/btcusdt@ticker", True),
                                        ("/stream", False), ("/stream?streams=btcusdt@ticker", False)])
def test_binance_endpoints_send_bare_events_or_the_combined_envelope(path: str, bare: bool) -> None:
    sim_class = mode("binance")
    sim = sim_class(universe("USDT", 2), rate_per_s=0, edge_shapes=False)
    frames = _frames(sim, 4, sim.frame_form(path))
    assert all(frame.startswith('{"e":"24hrTicker"') == bare for frame in frames)
    assert all(frame.startswith('{"stream":"') != bare for frame in frames)
    venue = fresh_venue("binance")
    assert [len(venue.parse_ws(frame.encode(), 1)) for frame in frames] == [1, 1, 1, 1]


def test_binance_rest_ticker_closes_now_like_the_websocket_events() -> None:
    # Its closeTime is a record's exchange_ts: a fixed one put REST records days behind the ws ones.
    sim = mode("binance")(universe("USDT", 2), rate_per_s=0)
    before_ms = int(time.time() * 1000)
    status, tickers = sim.rest("/api/v3/ticker/24hr", {})
    after_ms = int(time.time() * 1000)
    assert status == 200 and len(tickers) == 2
    for ticker in tickers:
        assert before_ms <= ticker["closeTime"] <= after_ms, ticker
        assert ticker["openTime"] == ticker["closeTime"] - 86_400_000, ticker
