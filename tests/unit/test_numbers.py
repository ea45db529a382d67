"""shared.numbers keeps every digit and writes plain notation."""

import re
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import numbers
from shared.numbers import (ABSENT, NumberError, all_plain, plain, plain_all, plain_all_or_none, plain_all_unless_empty,
                            plain_or_none, plain_unless_empty, raw_plain, raw_plain_all_or_none, raw_plain_or_none)


class Holder(msgspec.Struct):
    value: msgspec.Raw = ABSENT


def _raw(json_value: str) -> msgspec.Raw:
    return msgspec.json.decode(('{"value":' + json_value + "}").encode(), type=Holder).value


@pytest.mark.parametrize("text, expected", [
    ("0.00012345000", "0.00012345000"),
    ("1.16539E8", "116539000"),
    ("0E-8", "0.00000000"),
    ("7.9276E-4", "0.00079276"),
    ("158219000.00000000", "158219000.00000000"),
    ("95078733694.3792000000000000", "95078733694.3792000000000000"),
])
def test_plain_keeps_the_exact_value(text: str, expected: str) -> None:
    assert plain(text) == expected
    assert Decimal(plain(text)) == Decimal(text)


@pytest.mark.parametrize("json_value, expected", [
    ("0E-8", "0.00000000"), ("1.16539E8", "116539000"), ('"0.35210000"', "0.35210000"),
    ("31883000", "31883000"), ("null", None),
])
def test_raw_numbers_and_numeric_strings(json_value: str, expected: str | None) -> None:
    assert raw_plain_or_none(_raw(json_value)) == expected


def test_missing_field_is_none_and_required_null_is_an_error() -> None:
    assert raw_plain_or_none(msgspec.json.decode(b"{}", type=Holder).value) is None
    with pytest.raises(NumberError):
        raw_plain(_raw("null"))


@pytest.mark.parametrize("json_value", ['"abc"', "[1]", '{"a":1}', "true", '"1e"', '"NaN"'])
def test_non_numbers_are_rejected(json_value: str) -> None:
    with pytest.raises(NumberError):
        raw_plain_or_none(_raw(json_value))


@pytest.mark.parametrize("text", ["-1.5e-3", "-0.5", "-0", "-0E-8", '"-3"', "1" * 41, "1E+40", '"1E+40"',
                                  "0." + "1" * 41])
def test_negative_or_too_precise_numbers_are_refused(text: str) -> None:
    with pytest.raises(NumberError):
        raw_plain(_raw(text))


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_round_trips_exactly_through_json_text(value: Decimal) -> None:
    for text in (str(value), f"{value:E}", format(value, "f")):
        if value.is_signed() or len(format(value, "f")) > 40:
            with pytest.raises(NumberError):
                raw_plain(_raw(text))
            continue
        result = raw_plain(_raw(text))
        assert "E" not in result and "e" not in result
        assert Decimal(result) == value


TRICKY = ["0.00012345000", "1.16539E8", "0E-8", "-0.5", "-0", "01", "00.5", "1.", ".5", "-", "--1", "1-2",
          "", " 1", "1 ", "1,2", "1]", "[1]", "null", "true", '"1"', "1e", "NaN", "Infinity", "\u0661",
          "64238.51000000", "95078733694.3792000000000000", "1_000", "+1", "0x10", "1.2.3"]


def _outcome(function, text):  # type: ignore[no-untyped-def]
    try:
        return function(text)
    except NumberError:
        return NumberError


@given(st.lists(st.one_of(st.sampled_from(TRICKY), st.text(alphabet="0123456789.-eE,+ ", max_size=8),
                          st.decimals(allow_nan=False, allow_infinity=False).map(str)), max_size=12))
def test_checking_a_ticker_s_numbers_together_equals_checking_each(texts: list[str]) -> None:
    """The one-pass check of plain_all* accepts exactly what the per-field functions accept,
    returns the same texts, and raises where any of them raises."""
    for together, each in ((plain_all, plain), (plain_all_unless_empty, plain_unless_empty),
                           (plain_all_or_none, plain_or_none)):
        expected = [_outcome(each, text) for text in texts]
        if NumberError in expected:
            with pytest.raises(NumberError):
                together(*texts)
        else:
            assert list(together(*texts)) == expected


def test_plain_all_or_none_keeps_missing_values() -> None:
    assert plain_all_or_none("1.5", None, "2E1") == ("1.5", None, "20")


JSON_VALUES = ["0E-8", "1.16539E8", "-1.5e-3", '"0.35210000"', '"1."', '"abc"', "null", "true", "[1,2]",
               '{"a":1}', '"1,2"', '","', "0", "-0", "31883000", "95078733694.3792000000000000"]


@given(st.lists(st.one_of(st.sampled_from(JSON_VALUES),
                          st.decimals(allow_nan=False, allow_infinity=False).map(str)), min_size=1, max_size=10))
def test_converting_raw_numbers_together_equals_converting_each(json_values: list[str]) -> None:
    """raw_plain_all_or_none returns what raw_plain_or_none returns for each, and raises where it raises."""
    raws = [_raw(value) for value in json_values]
    expected = [_outcome(raw_plain_or_none, raw) for raw in raws]
    if NumberError in expected:
        with pytest.raises(NumberError):
            raw_plain_all_or_none(*raws)
    else:
        assert raw_plain_all_or_none(*raws) == expected


@given(st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{1,20})?[eE][-+]?[0-9]{1,4}", fullmatch=True)
       | st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,20})?", fullmatch=True))
def test_an_exponent_expanded_in_the_text_equals_decimal_s_plain_form(text: str) -> None:
    try:
        expected: str | type[Exception] = numbers._expand_exponent_by_decimal(text)
    except NumberError as error:
        expected = type(error)
    try:
        assert numbers._expand_exponent(text) == expected
    except NumberError as error:
        assert type(error) is expected, text


@pytest.mark.parametrize("text, expected", [
    ("1.16539E8", "116539000"), ("0E-8", "0.00000000"), ("0E+3", "0"), ("1.500E2", "150.0"),
    ("4E39", "4" + "0" * 39), ("1E-38", "0." + "0" * 37 + "1"), ("0.5e1", "5"),
    ("1." + "1" * 36 + "E1", "11." + "1" * 35),  # 40 characters in, 39 out
    ("1." + "0" * 37 + "E2", "100." + "0" * 35),  # 41 characters in, 40 out
])
def test_an_exponent_within_the_bounds_expands(text: str, expected: str) -> None:
    assert numbers._expand_exponent(text) == expected == format(Decimal(text), "f")


@pytest.mark.parametrize("text", ["4E40", "1E-39", "1E101", "1E-101", "0E+101", "-1.5E3", "-0E-8",
                                  "1" * 39 + "E2"])
def test_an_exponent_out_of_the_bounds_is_refused_with_decimal_s_message(text: str) -> None:
    with pytest.raises(NumberError) as expected:
        numbers._expand_exponent_by_decimal(text)
    with pytest.raises(NumberError, match=f"^{re.escape(str(expected.value))}$"):
        numbers._expand_exponent(text)


@pytest.mark.parametrize("json_values", [
    ['"5"', "1.5", "2"], ["1.5", '"5"'], ["1.5", '""', "2"], ['""'], ["1.5", '"1,2"', "2"],
    ["1.5", "1" * 41, "2"], ["1.5E3", "1" * 41], ["1" * 40, "2.5E-3"], ["1." + "0" * 37 + "E2", "3"],
    ["1.5E3", "-2"], ["-2", "1.5E3"], ["1.5e3", "7.25E-2", "0E-8"], ["null", "1.5"], ["1.5", "true"],
    # The string "," parses as two empty strings in the joined array: [1.5, '', '', 2] shifted
    # every later number (a book's sizes read as prices).
    ['","'], ["1.5", '","', "2"], ['","', '","'],
])
def test_a_ticker_s_raws_in_one_decode_equal_each_alone_with_its_message(json_values: list[str]) -> None:
    """A quoted number, an empty string, the string ",", a number longer than MAX_NUMBER_CHARS or a negative one
    among a ticker's numbers: the one-pass conversion gives what raw_plain_or_none of each gives,
    or raises its first message."""
    raws = [_raw(value) for value in json_values]
    try:
        expected: list[str | None] | str = [raw_plain_or_none(raw) for raw in raws]
    except NumberError as error:
        expected = str(error)
    try:
        assert raw_plain_all_or_none(*raws) == expected
    except NumberError as error:
        assert str(error) == expected


@pytest.mark.parametrize("count", [1, 63, 64, 65, 200])
def test_all_plain_of_any_count(count: int) -> None:
    texts = ["12.5"] * count
    assert all_plain(texts)
    assert not all_plain([*texts[:-1], "1e5"])
    assert not all_plain([*texts[:-1], ""])
    assert not all_plain([*texts[:-1], "1,2"])
