"""In a replay, a ticker whose market id names base and quote apart is not lost for want
of a market list (a capture made without one, replayed without the run's config): the
venue names it from the id itself (Venue.market_id_form). An id that does not split that
way is still an unknown symbol, and so is every id of the exchanges whose ids run base
and quote together (Binance, Bybit: BTCUSDT), where only the market list can tell. A
live run dead-letters a ticker of a market it did not ask for, as before."""

import pytest

from shared import config as configuration
from shared.record import FrameError
from tests.conftest import fixture_bytes
from tests.unit.test_fuzz_decoders import venue_class


@pytest.mark.parametrize("exchange, sample, spelled, unlearned, symbol, unsplit", [
    ("upbit", "ws_ticker_1.json", b'"code":"KRW-BTC"', b'"code":"BTC-XRP"', "XRP-BTC", b'"code":"KRWBTC"'),
    ("bithumb", "ws_ticker_1.json", b'"code":"KRW-BTC"', b'"code":"KRW-NOPE"', "NOPE-KRW", b'"code":"KRWNOPE"'),
    ("coinone", "ws_ticker_1.json", b'"target_currency":"BTC"', b'"target_currency":"NOPE"', "NOPE-KRW",
     b'"target_currency":"NO/PE"'),
    ("korbit", "ws_ticker_1.json", b'"btc_krw"', b'"nope_krw"', "NOPE-KRW", b'"nopekrw"'),
    ("okx", "ws_ticker_1.json", b"BTC-USDT", b"NOPE-USDT", "NOPE-USDT", b"NOPEUSDT"),
    ("gateio", "ws_ticker_1.json", b'"OMG_USDT"', b'"NOPE_USDT"', "NOPE-USDT", b'"NOPEUSDT"'),
    ("kraken", "ws_ticker_1.json", b'"USDT/USD"', b'"NOPE/USD"', "NOPE-USD", b'"NOPEUSD"'),
    ("coinbase", "ws_exchange_ticker_2022.json", b'"BTC-USD"', b'"NOPE-USD"', "NOPE-USD", b'"NOPEUSD"'),
])
def test_a_market_not_learned_is_named_by_its_id(exchange: str, sample: str, spelled: bytes, unlearned: bytes,
                                                  symbol: str, unsplit: bytes) -> None:
    shipped = configuration.load(None).exchange(exchange)
    venue = venue_class(exchange)(shipped.ws_url, shipped.rest_url)  # nothing learned
    frame = fixture_bytes(exchange, sample)
    assert spelled in frame
    with pytest.raises(FrameError, match="unknown symbol"):  # live
        venue.parse_ws(frame.replace(spelled, unlearned), 1)
    venue.name_unlearned = True  # as Worker.replay sets it
    [ticker] = venue.parse_ws(frame.replace(spelled, unlearned), 1)
    assert ticker.symbol == symbol
    with pytest.raises(FrameError, match="unknown symbol"):
        venue.parse_ws(frame.replace(spelled, unsplit), 1)


@pytest.mark.parametrize("exchange, sample, spelled", [
    ("binance", "ws_ticker_combined_1.json", b'"s":"ETHUSDT"'),
    ("bybit", "ws_ticker_1.json", b'"symbol":"BTCUSDT"'),
])
def test_ids_that_run_base_and_quote_together_need_the_market_list(exchange: str, sample: str,
                                                                   spelled: bytes) -> None:
    shipped = configuration.load(None).exchange(exchange)
    venue = venue_class(exchange)(shipped.ws_url, shipped.rest_url)
    venue.name_unlearned = True
    frame = fixture_bytes(exchange, sample)
    assert spelled in frame
    with pytest.raises(FrameError, match="unknown symbol"):
        venue.parse_ws(frame, 1)
