"""Regression guard CI can afford: the parse path stays well ahead of the naive pipeline.

Ratios measured in the same process on the same frames, not absolute times, so a slow
or busy CI machine slows both sides alike. The fastest of a few passes is compared,
which a burst of load elsewhere can only make slower, not faster.
"""

import pytest

from bench.tiers import EXCHANGES, naive_records, per_message_us, sample_frames, tier1

# Timed: kept out of the way of the high-rate integration tests.
pytestmark = pytest.mark.xdist_group("heavy")

# Every number is checked to be a decimal, in one pass per ticker (shared.numbers.plain_all).
# Measured alone on this 2-core VM, run to run: 5.0-9.7x (Coinone, Bybit, Gate.io lowest),
# so 4x: the 5x the issue suggested would fail about one run in two on a noisy machine.
REQUIRED_SPEEDUP = 4.0
# Coinbase parses an ISO timestamp and checks nine optional numbers: 4.7-5.9x. Kraken
# measured 4.5-5.2x here and once 3.0x in CI, which failed; since its eight bare numbers
# are turned into text in one pass (shared.numbers.raw_plain_all_or_none) 6.0-7.4x here,
# but the bar stays where that CI run showed the noise reaches.
REQUIRED_SPEEDUP_BY_EXCHANGE = {"coinbase": 3.0, "kraken": 3.0}
# The fastest pass of each side is compared: more passes, more chances for both to have
# one the machine did not disturb.
PASSES = 15


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_decode_and_normalize_is_well_ahead_of_the_naive_pipeline(exchange: str) -> None:
    required = REQUIRED_SPEEDUP_BY_EXCHANGE.get(exchange, REQUIRED_SPEEDUP)
    frames = sample_frames(exchange, 200)
    coinstream, naive = [], []
    for _ in range(PASSES):  # interleaved, so that load from elsewhere hits both sides alike
        coinstream += per_message_us(tier1(exchange), frames, repeat=1)
        naive += per_message_us(lambda: naive_records, frames, repeat=1)
    coinstream_us, naive_us = min(coinstream), min(naive)
    assert naive_us / coinstream_us >= required, (
        f"{exchange}: tier 1 {coinstream_us:.2f} µs vs naive {naive_us:.2f} µs "
        f"= {naive_us / coinstream_us:.1f}x, below {required}x")
