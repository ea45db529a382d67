"""Regression guard CI can afford: the parse path stays well ahead of the naive pipeline.

Ratios measured in the same process on the same frames, not absolute times, so a slow
or busy CI machine slows both sides alike. The fastest of a few passes is compared,
which a burst of load elsewhere can only make slower, not faster.
"""

import pytest

from bench.ceiling import PIPELINES, bare_pass
from bench.tiers import EXCHANGES, naive_records, per_message_us, sample_frames, tier1, tier2

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


# The hot path against the bare stack (issue 21): coinstream's decode, normalize, check
# and encode of a frame (bench.tiers.tier2) against bench.ceiling's decode of eight fields
# and encode (bare_pass), in-process on the same frames, fastest pass of each: the bare
# side's time over coinstream's. Measured alone here (a shared 2-core VM, load 6-13),
# two runs each: before issue 21's changes 0.42/0.39/0.32-0.34 (Binance/OKX/Upbit),
# after them 0.44-0.45/0.40-0.41/0.34; after the second round (Upbit's DEFAULT frame
# without a list and a call, its plain numbers beside exponents without a call each,
# the number check's translate table), at load 6-8: 0.44-0.45/0.41/0.38 against the
# first round's 0.44-0.45/0.38-0.40/0.30-0.35 in the same minutes. Upbit's frames
# without exponents (the simulator's common shape since 2026-12-08, as in every real
# ticker sample), at load 0.5: 0.46/0.44/0.50. The bars sit about a fifth below: they
# catch a hot path that gets a quarter slower, not the few per cent of one lever.
REQUIRED_SHARE_OF_BARE = {"binance": 0.36, "okx": 0.33, "upbit": 0.40}


@pytest.mark.parametrize("exchange", sorted(PIPELINES))
def test_the_hot_path_stays_near_the_bare_stack(exchange: str) -> None:
    frames = sample_frames(exchange, 200)
    coinstream, bare = [], []
    for _ in range(PASSES):  # interleaved, as above
        coinstream += per_message_us(tier2(exchange), frames, repeat=1)
        bare += per_message_us(bare_pass(exchange), frames, repeat=1)
    share = min(bare) / min(coinstream)
    print(f"{exchange}: coinstream {min(coinstream):.2f} µs, bare {min(bare):.2f} µs, share {share:.2f}")
    assert share >= REQUIRED_SHARE_OF_BARE[exchange], (
        f"{exchange}: decode + normalize + encode {min(coinstream):.2f} µs a frame, the bare stack's "
        f"{min(bare):.2f} µs: {share:.2f} of its speed, below {REQUIRED_SHARE_OF_BARE[exchange]}")
