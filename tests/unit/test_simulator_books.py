"""The simulator's books at the fleet's rates: levels printed in integer arithmetic
(Decimal was most of its CPU), the texts exactly what Decimal printed, since the
workers' tests compare them digit for digit; and updates paced in bursts small enough
that a starved simulator still answers handshakes."""

from decimal import Decimal

import pytest

from simulator.bithumb import _plain, plain_number
from simulator.books import MAX_BOOK_BURST, fixed_point
from simulator.core import BURST_S, paced

UNITS = [0, 1, 7, 10, 99, 100, 12345678, 100000000, 123456789012, -1, -5, -123456789]


@pytest.mark.parametrize("places", [0, 1, 2, 5, 8])
@pytest.mark.parametrize("units", UNITS)
def test_fixed_point_prints_what_decimal_prints(units: int, places: int) -> None:
    assert fixed_point(units, places) == f"{Decimal(units).scaleb(-places):.{places}f}"


@pytest.mark.parametrize("places", [0, 2, 8])
@pytest.mark.parametrize("units", [units for units in UNITS if units >= 0])
def test_bithumb_prints_a_level_plain_as_plain_number_does(units: int, places: int) -> None:
    text = fixed_point(units, places)
    assert _plain(text) == plain_number(Decimal(text))


def test_an_update_feed_on_time_sends_what_is_due() -> None:
    assert paced(started=100.0, sent=10, rate_per_s=1000, now=100.04, most=MAX_BOOK_BURST) == (100.0, 10, 30)


def test_a_feed_behind_sends_one_burst_and_forgets_the_rest() -> None:
    # Ten seconds behind at 1,000 updates/s: one burst now, the clock started again.
    started, sent, due = paced(started=100.0, sent=0, rate_per_s=1000, now=110.0, most=MAX_BOOK_BURST)
    assert (started, sent, due) == (110.0, 0, int(1000 * BURST_S))
    # The burst counts against the new clock: nothing more is due until it is spent.
    assert paced(started, sent + due, 1000, now=110.01, most=MAX_BOOK_BURST)[2] <= 0


def test_a_burst_is_bounded_flat_out_too() -> None:
    assert paced(started=0.0, sent=0, rate_per_s=1_000_000, now=1.0, most=MAX_BOOK_BURST)[2] == MAX_BOOK_BURST
