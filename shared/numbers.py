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
from collections.abc import Callable
from typing import Annotated, Any

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
    """Plain text of a decimal number `text` (as _DECIMAL writes one: digits, perhaps a
    fraction, perhaps an exponent), as format(Decimal(text), "f") writes it.

    Upbit writes a third of its numbers with an exponent. Decimal's own parse and format
    (C) took ~6.4k instructions an exponent with this call, where moving the point in the
    text with str methods, as this did before, took ~8.8k (callgrind): the common case is
    those two calls and the bounds, and anything out of them goes to
    _expand_exponent_by_decimal for its message.
    """
    if len(text) <= MAX_NUMBER_CHARS and text[0] != "-":
        value = Decimal(text)
        if -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
            expanded = format(value, "f")
            if len(expanded) <= MAX_NUMBER_CHARS:
                return expanded
    return _expand_exponent_by_decimal(text)


def _expand_exponent_by_decimal(text: str) -> str:
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
# one pass, and fall back to the per-field functions otherwise.

# One JSON value, kept raw: the decoder checks its grammar and builds nothing.
_JSON_VALUE = msgspec.json.Decoder(msgspec.Raw)


def _only(allowed: bytes) -> bytes:
    """A bytes.translate() table that keeps the `allowed` bytes and changes every other
    one: text made only of them comes back as the same object, checked at one table
    lookup a byte (a deletion builds its table anew at each call, ~1k instructions: worth
    it only where it spares a count of the commas, as in _plain_all_by)."""
    return bytes(byte if byte in allowed else (ord(",") if byte != ord(",") else ord(".")) for byte in range(256))


# What is left of a ticker's numbers, joined into a JSON array, once their digits and
# points are deleted (_plain_all_by): the brackets and the commas of the join alone.
_PLAIN_NUMBER_BYTES = b"0123456789."
_ARRAY_FRAMES = tuple(b"[" + b"," * (count - 1) + b"]" if count else b"[]" for count in range(64))


def _plain_all_by(one: Callable[[Any], str | None]) -> Callable[..., tuple[str | None, ...]]:
    """A function of a ticker's texts that returns them untouched when every one is a
    plain decimal, and `one` of each otherwise (which refuses what is no number, or maps
    "" or None to None).

    While a socket read is parsed (see check_read_later), the texts are only queued and
    returned, to be checked with the read's others in one pass: a ticker's own check
    cost ~9k instructions, half of them the call, the table and the parser's set-up,
    paid once a read instead. One that is not plain (an exponent, "", None, no number)
    fails the read's check, and the read is parsed again with the texts checked at
    once: rare in the exchanges that write numbers as strings, so not tested here
    first (all(texts) alone cost ~1k instructions a ticker). Otherwise they are checked
    at once. One function a ticker, not a wrapper and a check: a Python call costs ~400
    instructions.
    """
    def plain_all(*texts: str) -> tuple[str | None, ...]:
        queue = _read_texts
        if queue is not None:
            queue += texts
            return texts
        if all_plain(texts):
            return texts
        return tuple(map(one, texts))
    return plain_all


def all_plain(texts: list[str] | tuple[str, ...]) -> bool:
    """Whether every one of `texts` is a plain decimal, checked in one pass by msgspec's parser.

    Joined by commas into a JSON array, the texts must hold only digits and '.': with
    those deleted, only the array's brackets and the len(texts) - 1 commas of the join
    are left (one bytes.translate and one comparison, cheaper than a translate table's
    identity check and a count of the commas). The array must then parse as one JSON
    value: each text is a JSON number without an exponent or a sign, which is a plain
    decimal (JSON's grammar is stricter than _PLAIN: "1.", ".5" and "01" fail here and
    are judged by the per-field functions). Nothing is built: the array stays one raw
    value (a list of raw values cost ~2k instructions more a Binance ticker). "" fails
    too ("[1,,2]" is malformed, and a single "" is refused apart), and None cannot be joined.
    """
    try:
        array = ("[" + ",".join(texts) + "]").encode()
    except TypeError:  # a None among them
        return False
    count = len(texts)
    # len > 2: not "[]", a single "", which would parse.
    if len(array) <= 2 or array.translate(None, _PLAIN_NUMBER_BYTES) != (
            _ARRAY_FRAMES[count] if count < len(_ARRAY_FRAMES) else b"[" + b"," * (count - 1) + b"]"):
        return False
    try:
        _JSON_VALUE.decode(array)
    except msgspec.DecodeError:
        return False
    return True


# The texts queued while a socket read is parsed; None when texts are checked at once.
# A worker parses on its event loop's thread alone (REST calls only fetch on theirs).
_read_texts: list[str] | None = None


def check_read_later() -> None:
    """Queue the plain_all functions' texts from now on, until read_all_plain() checks them."""
    global _read_texts
    _read_texts = []


def read_all_plain() -> bool:
    """Whether every text queued since check_read_later() is a plain decimal; the
    functions check at once again. When not, the read's tickers may hold texts that
    are no plain number: they must be parsed again, which checks each frame's own."""
    global _read_texts
    texts, _read_texts = _read_texts, None
    return not texts or all_plain(texts)


def plain_unless_empty(text: str) -> str | None:
    """plain(text), or None for "": how OKX, Bybit and Gate.io write a missing value."""
    if not text:
        return None
    # plain()'s common case inlined: up to 10 calls a ticker, and a call costs as much as the check.
    if _PLAIN.fullmatch(text) is not None:
        return text
    return plain(text)


# plain(), plain_unless_empty() and plain_or_none() of every text, in one pass.
plain_all: Callable[..., tuple[str, ...]] = _plain_all_by(plain)  # type: ignore[assignment]
plain_all_unless_empty = _plain_all_by(plain_unless_empty)
plain_all_or_none = _plain_all_by(plain_or_none)


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
        return _bare_number_plain(text)
    if first == '"':
        # A quoted number was not checked by the JSON decoder: check it here.
        text = text[1:-1]
        if not _DECIMAL.fullmatch(text):
            raise NumberError(f"not a decimal number: {text[:40]!r}")
        return _short_enough(plain(text))
    if text == "null":
        return None
    raise NumberError(f"not a number: {text[:40]!r}")


def _bare_number_plain(text: str) -> str:
    """Plain text of a bare JSON number, already checked by the decoder. plain() is
    inlined here: this runs for every number of every Raw-typed ticker (8 a Kraken frame)."""
    if "E" in text or "e" in text:
        return _expand_exponent(text)
    if text[0] == "-":
        raise NumberError(f"negative: {text[:40]!r}")
    return _short_enough(text)


def raw_plain_all_or_none(*raws: msgspec.Raw) -> list[str | None]:
    """raw_plain_or_none() of every Raw, in one pass.

    str() of a Raw costs ~0.25 µs, 2 µs for Kraken's eight numbers: joined, the Raws are
    checked and turned into text once. Each Raw is one JSON value the decoder has already
    validated, so one made only of digits, '.', an exponent's letter and signs is a bare
    JSON number, and holds no comma or quote: joined by '","' into a JSON array of
    strings, one decode gives their texts, no longer than MAX_NUMBER_CHARS. Only the
    numbers with an exponent or a sign then take the long way (Upbit writes a third of
    its numbers with an exponent). Anything else (null, a quoted number, a longer one)
    goes through raw_plain_or_none().
    """
    joined = b'","'.join(raws)
    if joined.translate(_QUOTED_NUMBER_LIST) is joined:
        try:
            texts = _NUMBER_TEXTS.decode(b'["' + joined + b'"]')
        except msgspec.DecodeError:  # a quoted number (an empty string in the array), or a long one
            return list(map(raw_plain_or_none, raws))
        if len(texts) != len(raws):  # a Raw that is the string "," parses as two empty strings
            return list(map(raw_plain_or_none, raws))
        if _E in joined or _LOWER_E in joined or _MINUS in joined:
            # Only the numbers with an exponent or a sign take the long way, without a call for
            # the others; a loop, not a comprehension, which is a call of its own in CPython 3.11.
            for index, text in enumerate(texts):
                if "E" in text or "e" in text:
                    texts[index] = _expand_exponent(text)
                elif "-" in text:
                    texts[index] = _bare_number_plain(text)
        return texts
    return list(map(raw_plain_or_none, raws))


# What Raws joined by '","' are made of when each is a bare JSON number: digits, '.', an
# exponent's letter and signs, and the separator's quotes and comma. A Raw that is a JSON
# string of those (a quoted number) leaves an empty string and its text side by side in
# the array ('["1",""2"","3"]'), which does not parse; but for the string ",", which
# parses as two empty strings, told by the count.
_QUOTED_NUMBER_LIST = _only(b'0123456789.eE+-",')
# Bytes as ints: `int in bytes` is a memchr, where a bytes operand is first tried as an
# int, and its TypeError raised and cleared (~2k instructions each).
_E, _LOWER_E, _MINUS = b"Ee-"
# The joined numbers, quoted into a JSON array of strings: msgspec builds the texts and
# checks their length in C, where decode(), split(",") and max(map(len, ...)) took ~4.3k
# instructions a six-number ticker (2.2k of them the max).
_NUMBER_TEXTS = msgspec.json.Decoder(list[Number])
_NUMBER_START = frozenset("-0123456789")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# Plain as JSON writes a number: no sign (a negative number is no price: see plain()) and
# no leading zero ("01"), so that shared.record can tell a zero by comparing text.
_PLAIN = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
