"""The simulator's book levels are printed in integer arithmetic (its fleet rates made
Decimal most of its CPU): the texts must stay exactly what Decimal printed, since the
workers' tests compare them digit for digit."""

from decimal import Decimal

import pytest

from simulator.bithumb import _plain, plain_number
from simulator.books import fixed_point

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
