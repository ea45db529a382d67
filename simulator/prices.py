"""Prices near the real market's, for a demo (`python -m simulator --real-prices`).

The tests' default universe spreads prices over many magnitudes on purpose (see
ExchangeSim.SHAPES), so that every number form is exercised; a person watching
`coinstream live` wants to recognise the market instead: BTC near its real level in
USD, in USDT and in KRW, and a USDT-KRW market on every KRW exchange, which is the rate
the live view's KRW premium divides by. KRW prices here are the USD level times that
rate, so the premium reads about 0 % (the markets then wander apart a few ticks at a
time).
"""

from collections.abc import Iterable
from decimal import Decimal

from simulator.core import Quote, universe

# Rough USD levels (late 2025): enough to recognise, not a quote.
USD_LEVELS = {
    "BTC": Decimal("95000"), "ETH": Decimal("3500"), "XRP": Decimal("2.4"), "SOL": Decimal("180"),
    "DOGE": Decimal("0.25"), "ADA": Decimal("0.8"), "TRX": Decimal("0.28"), "LINK": Decimal("18"),
    "DOT": Decimal("4.5"), "AVAX": Decimal("25"), "SHIB": Decimal("0.000014"), "BCH": Decimal("500"),
    "USDT": Decimal("1"),
}
# Units of each quote currency per US dollar (USDT taken as one).
PER_USD = {"USD": Decimal("1"), "USDT": Decimal("1"), "KRW": Decimal("1400")}
KRW_RATE_MARKET = ("USDT", "KRW")
# A price gets this many significant digits at least (and at most 8 decimals), so that
# a step of a few ticks is a tiny move and the markets stay near each other for hours.
SIGNIFICANT_DIGITS = 7


def markets(quote: str, count: int) -> list[tuple[str, str]]:
    """The universe of `count` markets, plus USDT-KRW on an exchange that quotes in KRW."""
    chosen = universe(quote, count)
    if quote == KRW_RATE_MARKET[1] and KRW_RATE_MARKET not in chosen:
        chosen.append(KRW_RATE_MARKET)
    return chosen


def level(base: str, quote: str) -> Decimal | None:
    """The market's price level, or None for a made-up base or quote currency."""
    if base not in USD_LEVELS or quote not in PER_USD:
        return None
    return USD_LEVELS[base] * PER_USD[quote]


def set_real_levels(quotes: Iterable[Quote]) -> None:
    """Move each known market to its level; made-up ones keep their generated price."""
    for quote in quotes:
        price = level(quote.base, quote.quote)
        if price is None:
            continue
        quote.scale = min(8, max(0, SIGNIFICANT_DIGITS - 1 - price.adjusted()))
        quote.ticks = int(price.scaleb(quote.scale))
