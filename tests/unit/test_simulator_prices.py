"""The simulator's --real-prices universe (simulator/prices.py), as the demo runs it: BTC
near its real level in every quote currency, USDT-KRW on the KRW exchanges, and a KRW
premium of 0 % at the start."""

from decimal import Decimal

from coinstream.live import premium_percent
from simulator import prices
from simulator.binance import BinanceSim
from simulator.kraken import KrakenSim
from simulator.upbit import UpbitSim


def real(sim_class: type, markets: int = 6) -> dict[str, Decimal]:
    """symbol -> price of a simulator with real levels."""
    sim = sim_class(prices.markets(sim_class.default_quote, markets), rate_per_s=0)
    prices.set_real_levels(sim.quotes.values())
    return {f"{quote.base}-{quote.quote}": quote.price() for quote in sim.quotes.values()}


def test_krw_exchanges_also_list_the_usdt_krw_rate() -> None:
    assert prices.markets("KRW", 3) == [("BTC", "KRW"), ("ETH", "KRW"), ("XRP", "KRW"), ("USDT", "KRW")]
    assert prices.markets("USDT", 3) == [("BTC", "USDT"), ("ETH", "USDT"), ("XRP", "USDT")]


def test_btc_sits_at_its_level_in_every_quote_and_the_premium_is_zero() -> None:
    upbit, binance, kraken = real(UpbitSim), real(BinanceSim), real(KrakenSim)
    assert binance["BTC-USDT"] == kraken["BTC-USD"] == Decimal("95000")
    assert upbit["USDT-KRW"] == Decimal("1400")
    assert upbit["BTC-KRW"] == Decimal("133000000")
    assert premium_percent(upbit["BTC-KRW"], upbit["USDT-KRW"], binance["BTC-USDT"]) == 0


def test_prices_have_room_to_move_a_tick_at_a_time() -> None:
    for sim_class in (UpbitSim, BinanceSim, KrakenSim):
        sim = sim_class(prices.markets(sim_class.default_quote, 12), rate_per_s=0)
        prices.set_real_levels(sim.quotes.values())
        for quote in sim.quotes.values():
            assert 0 <= quote.scale <= 8, quote
            # A step moves at most 3 ticks: a millionth of the price or less, but for
            # SHIB, whose 8 decimals hold only its 4 digits.
            assert quote.ticks >= (10**3 if quote.base == "SHIB" else 10**6), quote


def test_made_up_markets_keep_their_generated_prices() -> None:
    plain = BinanceSim(prices.markets("USDT", 14), rate_per_s=0)
    generated = {market: quote.price() for market, quote in plain.quotes.items()}
    prices.set_real_levels(plain.quotes.values())
    assert plain.quotes["SIM0001USDT"].price() == generated["SIM0001USDT"]
    assert plain.quotes["BTCUSDT"].price() != generated["BTCUSDT"]
