"""Exact decimal text: the only form a price or size takes inside coinstream.

Exchanges send numbers either as JSON strings ("0.35210000") or as JSON numbers
(158219000.00000000, 0E-8, 1.16539E8). Both arrive here as text and leave as plain
decimal text equal to the exchange's value: no float is ever built. Text that is
already plain passes through untouched (the common case, kept cheap); only text with
an exponent goes through Decimal.

Only values a market can have pass: no price, size or volume is negative (not even
-0), and none is written in more than MAX_NUMBER_CHARS characters, so none has more
than 40 significant digits (a 5,000-digit "price" is no price). Anything else raises
NumberError, or msgspec's ValidationError while decoding, and the frame is dead-lettered.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

import msgspec


# Far beyond any price or size an exchange sends (they stay within about 1E-18..1E+15).
MAX_EXPONENT = 100
# The longest a number's plain text may be: 40 digits at the most (the longest an
# exchange writes, Upbit's 95078733694.3792000000000000, has 28 characters).
MAX_NUMBER_CHARS = 40
# A number sent as a JSON string, in a decode Struct: msgspec checks its length while it
# decodes, at no cost here. JSON numbers kept as msgspec.Raw, and the plain text an
# exponent expands to, are checked here.
Number = Annotated[str, msgspec.Meta(max_length=MAX_NUMBER_CHARS)]


class NumberError(ValueError):
    """A price or size field that is not a decimal number."""


def plain(text: str) -> str:
    """Return `text` as a plain decimal string, without exponent, of the same value.

    Text that is no decimal number ("1.", ">3212.98", "") or a negative number raises
    NumberError: a price field never passes through unchecked. (Its length is the
    decoder's to check: see Number.)
    """
    if _PLAIN.fullmatch(text) is not None:
        return text
    if _DECIMAL.fullmatch(text) is not None:
        return _expand_exponent(text)
    raise NumberError(f"not a decimal number: {text[:40]!r}")


def _short_enough(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise NumberError(f"{len(text)} characters, more than {MAX_NUMBER_CHARS}: {text[:40]}...")
    return text


def _expand_exponent(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise NumberError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise NumberError(f"not a finite number: {text!r}")
    if value.is_signed():
        raise NumberError(f"negative: {text[:40]!r}")
    # The plain form is as long as the exponent is large: 1E999999999 would be 1 GB of text.
    if not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise NumberError(f"exponent out of range: {text[:40]!r}")
    # format 'f' writes every digit of the coefficient with no exponent:
    # 0E-8 -> 0.00000000, 1.16539E+8 -> 116539000, 7.9276E-4 -> 0.00079276.
    return _short_enough(format(value, "f"))


def plain_or_none(text: str | None) -> str | None:
    return None if text is None else plain(text)


# A ticker's numbers, checked together: the per-field plain() costs ~0.25 µs of regex
# and call overhead, ~2.5 µs for a ten-number Binance ticker, a fifth of a worker's
# budget per frame. These return their texts untouched when all of them are plain in
# one pass (_all_plain), and fall back to the per-field functions otherwise.

def plain_all(*texts: str) -> tuple[str, ...]:
    """plain() of every text."""
    return texts if _all_plain(texts) else tuple(map(plain, texts))


def plain_all_unless_empty(*texts: str) -> tuple[str | None, ...]:
    """plain_unless_empty() of every text."""
    return texts if _all_plain(texts) else tuple(map(plain_unless_empty, texts))


def plain_all_or_none(*texts: str | None) -> tuple[str | None, ...]:
    """plain_or_none() of every text."""
    if None not in texts and _all_plain(texts):  # type: ignore[arg-type]
        return texts
    return tuple(map(plain_or_none, texts))


_JSON_VALUES = msgspec.json.Decoder(list[msgspec.Raw])
# What a comma-joined list of plain, non-negative JSON numbers is made of: a minus sign
# sends the texts to the per-field functions, which refuse it.
_NUMBER_LIST_BYTES = b"0123456789.,"


def _all_plain(texts: tuple[str, ...]) -> bool:
    """True when every text is a plain decimal, checked in one pass by msgspec's parser.

    Joined by commas into a JSON array, the texts must parse as exactly len(texts)
    values made only of digits and '.': each is then a JSON number without an exponent
    or a sign, which is a plain decimal (JSON's grammar is stricter than _PLAIN: "1.",
    ".5" and "01" fail here and are judged by plain() itself). No number is built:
    the values stay raw. "" fails too ("[1,,2]" is malformed).
    """
    joined = ",".join(texts).encode()
    if joined.translate(None, _NUMBER_LIST_BYTES):
        return False
    try:
        return len(_JSON_VALUES.decode(b"[" + joined + b"]")) == len(texts)
    except msgspec.DecodeError:
        return False


def plain_unless_empty(text: str) -> str | None:
    """plain(text), or None for "": how OKX, Bybit and Gate.io write a missing value."""
    if not text:
        return None
    # plain()'s common case inlined: up to 10 calls a ticker, and a call costs as much as the check.
    if _PLAIN.fullmatch(text) is not None:
        return text
    return plain(text)


def raw_plain(raw: msgspec.Raw) -> str:
    """Plain decimal text of a JSON number (or numeric JSON string) kept as msgspec.Raw.

    Decoding a number field as Raw keeps the exchange's exact digits, which a float
    would lose (95078733694.3792000000000000 has more digits than a double holds).
    """
    value = raw_plain_or_none(raw)
    if value is None:
        raise NumberError("null where a number is required")
    return value


# Default for an optional Raw number field: msgspec cannot make Raw optional with
# `| None`, so a missing field decodes as this JSON null instead.
ABSENT = msgspec.Raw(b"null")


def raw_plain_or_none(raw: msgspec.Raw) -> str | None:
    text = str(raw, "utf-8")
    first = text[0]
    if first in _NUMBER_START:
        # A bare JSON number, already checked by the decoder. plain() is inlined here:
        # this runs for every number of every Raw-typed ticker (8 a Kraken frame).
        if "E" in text or "e" in text:
            return _expand_exponent(text)
        if first == "-":
            raise NumberError(f"negative: {text[:40]!r}")
        return _short_enough(text)
    if first == '"':
        # A quoted number was not checked by the JSON decoder: check it here.
        text = text[1:-1]
        if not _DECIMAL.fullmatch(text):
            raise NumberError(f"not a decimal number: {text[:40]!r}")
        return _short_enough(plain(text))
    if text == "null":
        return None
    raise NumberError(f"not a number: {text[:40]!r}")


def raw_plain_all_or_none(*raws: msgspec.Raw) -> list[str | None]:
    """raw_plain_or_none() of every Raw, in one pass.

    str() of a Raw costs ~0.25 µs, 2 µs for Kraken's eight numbers: joined, the Raws are
    checked and turned into text once. Each Raw is one JSON value the decoder has already
    validated, so one made only of digits and '.' is a JSON number without exponent or
    sign, a plain decimal, and holds no comma to split on. Anything else (null, a quoted
    number, an exponent, a sign, a long number) goes through raw_plain_or_none().
    """
    joined = b",".join(raws)
    if not joined.translate(None, _NUMBER_LIST_BYTES):
        texts = joined.decode().split(",")
        if max(map(len, texts)) <= MAX_NUMBER_CHARS:
            return texts
    return list(map(raw_plain_or_none, raws))


_NUMBER_START = frozenset("-0123456789")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# Plain as JSON writes a number: no sign (a negative number is no price: see plain()) and
# no leading zero ("01"), so that shared.record can tell a zero by comparing text.
_PLAIN = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
