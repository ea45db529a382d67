"""Local order books: the exact, ordered, conflated and checked core of every book channel.

A worker keeps one OrderBook per market. An exchange that pushes its whole book in
every frame (Upbit, Bithumb, Coinone, Korbit, Binance @depth20) calls replace() for
each frame; one that sends a snapshot and then changes (OKX, Bybit, Gate.io, Kraken,
Coinbase, Binance's diff stream) calls replace() for the snapshot and apply() for each
change message, after checking the message's sequence id against `update_id`. Then:
check() (the exchange's checksum, a crossed book), and changed_top(), which returns the
top N to publish, or None when nothing in it changed since the last record (conflated).
See docs/books.md.

Prices and sizes stay the exchange's text; they are ordered by their exact decimal
value, never through a float: "1.10" and "1.1" are one level (which keeps the latest
text), two prices that differ only in their 17th significant digit are two. A message
is applied entirely or not at all: a text that is no decimal number raises NumberError
before anything changes.

When a book can no longer be known (a gap in the sequence, a wrong checksum, a crossed
book, a stale REST snapshot), lose() empties it and returns a BookLost for the caller to
raise; the book then publishes nothing until the next replace().
"""

import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import partial
from itertools import chain, islice
from operator import itemgetter, lt
from typing import Literal, NamedTuple, TypeVar

from shared.numbers import NumberError, plain
from shared.record import Level

LossReason = Literal["gap", "checksum", "crossed", "snapshot_stale"]
BookState = Literal["awaiting_snapshot", "live", "lost"]

# How many texts each cache of checked numbers (_KnownTexts) holds before it starts
# again empty: ~150 bytes an entry, so under 2.5 MB each, and more than the levels a
# worker sees change within seconds.
KNOWN_TEXTS = 1 << 14


class BookLost(Exception):
    """A market's book is no longer known: publish nothing for it until it is rebuilt."""

    def __init__(self, market: str, reason: LossReason, detail: str) -> None:
        super().__init__(f"{market}: book lost ({reason}): {detail}")
        self.market = market
        self.reason = reason
        self.detail = detail


# --- checked numbers -----------------------------------------------------------------

# Texts just read in exponent form (1.16539E8), whose levels must be written plain. They
# are never remembered (a remembered one would come back in exponent form), so each one
# passes through _KnownTexts.__missing__, which notes it here for the side that reads it.
_in_exponent_form: list[str] = []


def _plain_unsigned(text: str) -> str:
    """`text` in plain notation, checked to be a decimal number that is not negative.

    Most are ASCII digits with one '.' inside, checked here in place (a few hundred
    instructions); any other goes through shared.numbers.plain, which writes exponent
    forms plain and refuses what is no decimal.
    """
    digits = text.replace(".", "", 1)
    if digits.isdigit() and digits.isascii() and text[0] != "." and text[-1] != ".":
        return text
    plain_text = plain(text)  # NumberError for anything but a decimal number
    if plain_text[0] == "-":
        raise NumberError(f"negative price or size: {text!r}")
    return plain_text


# A price's key is an exact integer: the price times 10**18 (exchanges write fewer
# decimals), which compares in a third of the time of a Decimal and takes 40 bytes, not
# 104. A price with more decimals gets the Decimal of the same product: Python compares
# ints and Decimals exactly.
KEY_SCALE = 18
Key = int | Decimal


# Both sides are kept best first in ascending key order: an ask's key is its price's, a
# bid's the negation (a Decimal is written negative: unary minus would round it to the
# context's 28 digits). So one function serves both sides, given the side's scaling and
# sign (by functools.partial, in C: a bid's key as the negation of an ask's cost a
# second Python call, ~700 instructions a new price).
_ASK_SCALING = [10 ** (KEY_SCALE - decimals) for decimals in range(KEY_SCALE + 1)]
_BID_SCALING = [-scaling for scaling in _ASK_SCALING]


def _price_key(scaling: list[int], sign: str, plain_text: str) -> Key:
    integer, _, fraction = plain_text.partition(".")
    decimals = len(fraction)
    if decimals > KEY_SCALE:
        fraction = fraction.rstrip("0")
        decimals = len(fraction)
    if decimals <= KEY_SCALE:
        key: Key = int(integer + fraction) * scaling[decimals]
    else:
        key = Decimal(f"{sign}{integer}{fraction}E{KEY_SCALE - decimals}")
    if not key:
        raise NumberError(f"price of zero: {plain_text!r}")
    return key


# True for a plain size of zero: one without a character but 0 and the point. A C method,
# called in C on a new size text: a Python function cost ~600 instructions more.
_size_is_zero: Callable[[str], bool] = frozenset("0.").issuperset


_Value = TypeVar("_Value", Key, bool)


class _KnownTexts(dict[str, _Value]):
    """text -> what a side needs of the number, for every text already checked.

    A book frame mostly repeats the prices of the frames before it, and a snapshot
    frame the sizes of its levels that did not change: a hit costs a dict lookup (a few
    hundred instructions) where a miss costs 5,000 to 9,000. Hits are read through the
    C-level __getitem__, bound (map() over a frame's texts); a miss lands in __missing__.
    """

    def __init__(self, value_of: Callable[[str], _Value]) -> None:
        super().__init__()
        self._value_of: Callable[[str], _Value] = value_of

    def __missing__(self, text: str) -> _Value:
        # _plain_unsigned's test of a plain text, inline: its call cost ~300 a miss.
        digits = text.replace(".", "", 1)
        if digits.isdigit() and digits.isascii() and text[0] != "." and text[-1] != ".":
            plain_text = text
        else:
            plain_text = _plain_unsigned(text)
        value = self._value_of(plain_text)
        if plain_text is text:
            if len(self) >= KNOWN_TEXTS:
                self.clear()
            self[text] = value
        else:
            _in_exponent_form.append(text)
        return value


class _PriceKeys(_KnownTexts[Key]):
    """price text -> key (see _price_key), for one side's scaling and sign."""

    def __init__(self, scaling: list[int], sign: str) -> None:
        super().__init__(partial(_price_key, scaling, sign))
        self._scaling = scaling

    def __missing__(self, text: str) -> Key:
        # The common new price, plain with at most KEY_SCALE decimals, keyed here in one
        # pass: its plain test and _price_key each took the text apart, and the call of
        # _price_key cost ~1.5k instructions a new price. Any other goes the general way.
        integer, point, fraction = text.partition(".")
        digits = integer + fraction
        if digits.isdigit() and digits.isascii() and integer and (fraction or not point) \
                and len(fraction) <= KEY_SCALE:
            key = int(digits) * self._scaling[len(fraction)]
            if key:
                if len(self) >= KNOWN_TEXTS:
                    self.clear()
                self[text] = key
                return key
        return super().__missing__(text)


_ASK_KEYS: _KnownTexts[Key] = _PriceKeys(_ASK_SCALING, "")
_BID_KEYS: _KnownTexts[Key] = _PriceKeys(_BID_SCALING, "-")
_SNAPSHOT_SIZE_ZERO: _KnownTexts[bool] = _KnownTexts(_size_is_zero)
# Bound once: bound at each snapshot, a method object made and freed a side.
_snapshot_size_zero = _SNAPSHOT_SIZE_ZERO.__getitem__
_PRICE, _SIZE = itemgetter(0), itemgetter(1)


def _written_plain(levels: Iterable[Sequence[str]]) -> list[Level]:
    """The levels with every text in plain notation; clears _in_exponent_form."""
    _in_exponent_form.clear()
    return [(plain(level[0]), plain(level[1])) for level in levels]


def _checked_changes(levels: Sequence[Sequence[str]], key_of: Callable[[str], Key]) -> list[tuple[Key, str, str]]:
    """(key, price, size) of each (price, size, ...) of a change message, all checked.

    A change's size is new text more often than not: checked, not remembered. One flat
    loop: in Python 3.11 every call, a list comprehension's too, costs ~1,500 instructions.
    """
    changes = []
    for level in levels:
        price = level[0]
        key = key_of(price)
        size = level[1]
        digits = size.replace(".", "", 1)
        if not (digits.isdigit() and digits.isascii() and size[0] != "." and size[-1] != "."):
            size = _plain_unsigned(size)
        changes.append((key, price, size))
    if _in_exponent_form:  # prices read in exponent form (rare), written plain; once, not a test a level
        changes = [(key, plain(price) if price in _in_exponent_form else price, size) for key, price, size in changes]
        _in_exponent_form.clear()
    return changes


# --- checksums -------------------------------------------------------------------------


class Checksum(NamedTuple):
    """An exchange's book checksum: how many levels a side it covers, and how it is computed.

    With `level_text` and `of_texts`, the book keeps each covered level's text as its levels
    change, so that a checksum builds again only the texts of the levels that changed:
    flattening 50 levels for one join cost ~37k instructions of OKX's ~55k.
    """

    levels: int
    of: Callable[[Sequence[Level], Sequence[Level]], int]  # (bids, asks), best first
    level_text: Callable[[Level], str] | None = None  # a level as the checksum writes it
    of_texts: Callable[[list[str], list[str]], int] | None = None  # (bids, asks) texts, best first


def okx_checksum(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """OKX `books`: CRC32 of bid1px:bid1sz:ask1px:ask1sz:bid2px:... over the first 25 of
    each side (a side's missing levels are skipped), of the texts as received, as a
    signed 32-bit int (how OKX sends it)."""
    return okx_checksum_of_texts(list(map(_okx_level_text, bids[:25])), list(map(_okx_level_text, asks[:25])))


# "price:size", in C.
_okx_level_text: Callable[[Level], str] = ":".join


def okx_checksum_of_texts(bids: list[str], asks: list[str]) -> int:
    """okx_checksum from the "price:size" texts of each side's first 25 levels, best first."""
    # In checksum order, interleaved by two slice assignments in C: bid1, ask1, ... for
    # the levels both sides have, then the rest of the longer side.
    common = min(len(bids), len(asks))
    texts = bids[:common] * 2
    texts[0::2], texts[1::2] = bids[:common], asks[:common]
    texts += bids[common:] or asks[common:]
    crc = zlib.crc32(":".join(texts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def kraken_checksum(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """Kraken (v2 `checksum`, v1 `c`): CRC32 of the top 10 asks then the top 10 bids, each
    price then size with '.' removed and leading zeros stripped, as an unsigned 32-bit int.
    The texts must be the wire's digits, trailing zeros included."""
    texts = chain.from_iterable(chain(asks[:10], bids[:10]))
    return zlib.crc32("".join([text.replace(".", "").lstrip("0") for text in texts]).encode())


OKX = Checksum(25, okx_checksum, _okx_level_text, okx_checksum_of_texts)
KRAKEN = Checksum(10, kraken_checksum)


# --- the book --------------------------------------------------------------------------


class _Side:
    """One side's levels, best first, and their keys (see _ASK_KEYS) in ascending order."""

    __slots__ = ("keys", "levels", "key_of", "_ladder", "_ladder_keys", "texts", "text_of", "texts_kept")

    def __init__(self, known_keys: _KnownTexts[Key], checksum: Checksum | None) -> None:
        self.keys: list[Key] = []
        self.levels: list[Level] = []
        # The checksum's text of each of the best `texts_kept` levels (Checksum.level_text),
        # or None for a checksum without level texts.
        self.texts: list[str] | None = None
        self.text_of: Callable[[Level], str] | None = None
        self.texts_kept = 0
        if checksum is not None and checksum.level_text is not None and checksum.of_texts is not None:
            self.texts, self.text_of, self.texts_kept = [], checksum.level_text, checksum.levels
        # Bound: `known_keys[price]` on a dict subclass would take CPython's slow path.
        self.key_of = known_keys.__getitem__
        # The prices of the last snapshot that came best first, and their keys: a book
        # pushed whole every 100 ms mostly changes sizes, and its next frame's prices
        # are often these again, text for text. Forgotten once changes are applied.
        self._ladder: list[str] | None = None
        self._ladder_keys: list[Key] = []

    def snapshot(self, levels: list[Level], window: int | None) -> tuple[list[Key], list[Level]]:
        """Keys and levels of a complete side, best first, without zero sizes, at most
        `window` of them: every price checked, and the size of every level kept.

        Exchanges send most snapshots best first already: checking that costs one
        comparison a level, and only an unsorted one (Coinbase) is sorted here.
        """
        if not levels:
            return [], []
        prices = list(map(_PRICE, levels))  # in C: a list comprehension cost ~240 more a side
        if prices == self._ladder:
            keys = self._ladder_keys
        else:
            keys = list(map(self.key_of, prices))
            if all(map(lt, keys, islice(keys, 1, None))):
                # A ladder with a price in exponent form is not kept: reusing it would
                # skip the lookup that has the level written plain.
                if not _in_exponent_form:
                    self._ladder, self._ladder_keys = prices, keys
            else:
                by_key = dict(zip(keys, levels))  # one level a price: the last one sent
                keys = sorted(by_key)
                levels = list(map(by_key.__getitem__, keys))
        kept = len(levels) if window is None else window
        kept_keys, kept_levels = keys[:kept], levels[:kept]
        if any(map(_snapshot_size_zero, map(_SIZE, kept_levels))):
            # Bithumb sends sizes that round to zero: drop them, and the next levels move up.
            nonzero = [(key, level) for key, level in zip(keys, levels) if not _SNAPSHOT_SIZE_ZERO[level[1]]][:kept]
            kept_keys, kept_levels = [key for key, _ in nonzero], [level for _, level in nonzero]
        if _in_exponent_form:
            kept_levels = _written_plain(kept_levels)
        return kept_keys, kept_levels

    def write_texts(self) -> None:
        """The checksum's texts of the best levels, all built again (after a snapshot)."""
        if self.text_of is not None:
            self.texts = list(map(self.text_of, self.levels[:self.texts_kept]))

    def apply(self, changes: list[tuple[Key, str, str]], watched: int, window: int | None) -> bool:
        """Apply checked changes (a size without a character but 0 and the point deletes);
        True when one of them was within the best `watched` levels."""
        # A book kept from changes gets a snapshot seldom: its ladder would only hold memory.
        if self._ladder is not None:  # not a new empty list a message
            self._ladder, self._ladder_keys = None, []
        side_keys, levels = self.keys, self.levels
        first = watched  # the best rank changed: the levels above it are as they were
        for key, price, size in changes:
            index = bisect_left(side_keys, key)
            # Not `index < len(side_keys) and ...`: the len() call cost ~380 a change
            # (okx-deep 48.5k -> 47.4k); a price past the worst level raises (~3k), which
            # is rare but where a book is cut to a window (Kraken) and has little room.
            try:
                held = side_keys[index] == key
            except IndexError:
                held = False
            if size.strip("0."):
                if held:
                    levels[index] = (price, size)  # the latest text of the price, and its size
                else:
                    side_keys.insert(index, key)
                    levels.insert(index, (price, size))
            elif held:
                del side_keys[index]
                del levels[index]
            else:
                continue  # a delete of a price the book does not hold changes nothing
            if index < first:
                first = index
        if window is not None:
            del side_keys[window:]
            del levels[window:]
        if first == watched:
            return False
        texts, text_of = self.texts, self.text_of
        if texts is not None and text_of is not None and first < self.texts_kept:
            texts[first:] = map(text_of, levels[first:self.texts_kept])
        return True


class OrderBook:
    """One market's local order book: bids and asks, best first, exact.

    depth     the N of the published top N
    window    levels kept a side after each message, when the exchange stops sending
              changes beyond it (Kraken: the subscribed depth; Bybit: 50); None keeps all
    checksum  the exchange's book checksum (OKX, KRAKEN), if it sends one
    """

    def __init__(self, market: str, depth: int, window: int | None = None, checksum: Checksum | None = None) -> None:
        # Changes within the best `watched` levels of a side may change a record or a checksum.
        self._watched = max(depth, checksum.levels if checksum else 0)
        if depth < 1:
            raise ValueError(f"{market}: a depth of {depth} levels")
        if window is not None and window < self._watched:
            raise ValueError(f"{market}: a window of {window} levels cannot hold a top {self._watched}")
        self.market = market
        self.depth = depth
        self.window = window
        self.checksum = checksum
        self.state: BookState = "awaiting_snapshot"
        self.lost_reason: LossReason | None = None
        self.update_id: int | None = None  # the exchange's sequence id of the last message applied
        self._bids = _Side(_BID_KEYS, checksum)
        self._asks = _Side(_ASK_KEYS, checksum)
        # Counts the messages that changed something within the watched levels: the
        # record and the checksum are recomputed only when it moved.
        self._version = 0
        self._published_version = -1
        self._published: tuple[list[Level], list[Level]] | None = None  # the first top is always published
        self._checksum_version = -1
        self._checksum = 0
        self._crossed_version = -1  # the version last found not crossed

    def replace(self, bids: list[Level], asks: list[Level]) -> None:
        """Make the book this complete snapshot, in any order; it is live. Read like
        changes to an empty book: of a price listed twice the last wins, and a zero size
        is no level."""
        bid_keys, bid_levels = self._bids.snapshot(bids, self.window)
        ask_keys, ask_levels = self._asks.snapshot(asks, self.window)
        self._bids.keys, self._bids.levels = bid_keys, bid_levels
        self._asks.keys, self._asks.levels = ask_keys, ask_levels
        if self._bids.texts is not None:  # not two calls a frame for a book without level texts
            self._bids.write_texts()
            self._asks.write_texts()
        self.state = "live"
        self.lost_reason = None
        self._version += 1

    def apply(self, bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> None:
        """Apply one change message: each level (price, size, ...) sets its price's size;
        size zero deletes it (a price the book does not hold is ignored)."""
        if self.state != "live":
            raise RuntimeError(f"{self.market}: changes applied to a book that is {self.state}")
        # Every number of the message is checked before the book changes: nothing raises half way.
        bid_changes = _checked_changes(bids, self._bids.key_of) if bids else None
        ask_changes = _checked_changes(asks, self._asks.key_of) if asks else None
        touched = False
        if bid_changes:
            touched = self._bids.apply(bid_changes, self._watched, self.window)
        if ask_changes and self._asks.apply(ask_changes, self._watched, self.window):
            touched = True
        if touched:
            self._version += 1

    def top(self, levels: int) -> tuple[list[Level], list[Level]]:
        """The best `levels` bids and asks, best first."""
        return self._bids.levels[:levels], self._asks.levels[:levels]

    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask. Integer keys compare as
        they are; a Decimal key negated back could round, so those compare the texts."""
        bids, asks = self._bids.levels, self._asks.levels
        if not (bids and asks):
            return False
        bid_key, ask_key = self._bids.keys[0], self._asks.keys[0]
        if isinstance(bid_key, int) and isinstance(ask_key, int):
            return -bid_key >= ask_key
        return Decimal(bids[0][0]) >= Decimal(asks[0][0])

    def check(self, checksum: int | None = None) -> None:
        """Raise BookLost (the book is lost) when the exchange's checksum of this message
        differs from the book's, or when the book is crossed."""
        if checksum is not None:
            if self.checksum is None:
                raise ValueError(f"{self.market}: a checksum to check, and no checksum algorithm for the book")
            if self._checksum_version != self._version:
                of_texts = self.checksum.of_texts
                if of_texts is not None and self._bids.texts is not None and self._asks.texts is not None:
                    self._checksum = of_texts(self._bids.texts, self._asks.texts)
                else:
                    self._checksum = self.checksum.of(*self.top(self.checksum.levels))
                self._checksum_version = self._version
            if checksum != self._checksum:
                raise self.lose("checksum", f"the exchange's {checksum}, the book's {self._checksum}")
        # Only a change to the best levels can cross the book, and it moves the version.
        if self._crossed_version != self._version:
            if self.crossed():
                raise self.lose("crossed", f"best bid {self._bids.levels[0][0]}, best ask {self._asks.levels[0][0]}")
            self._crossed_version = self._version

    def changed_top(self) -> tuple[list[Level], list[Level]] | None:
        """The top N (bids, asks) to publish, or None when it is the last one published.

        Exact: None means that no price or size text of the top N differs from the last
        record's. A message that changed nothing within the watched levels costs no copy.
        """
        if self.state != "live":
            raise RuntimeError(f"{self.market}: a record asked of a book that is {self.state}")
        if self._version == self._published_version:
            return None
        self._published_version = self._version
        top = self._bids.levels[:self.depth], self._asks.levels[:self.depth]
        if top == self._published:
            return None
        self._published = top
        return top

    def lose(self, reason: LossReason, detail: str) -> BookLost:
        """Mark the book lost and empty it; return the BookLost for the caller to raise.

        The last record stays the reference for conflation: the rebuilt book publishes
        when its top N differs from it.
        """
        self.state = "lost"
        self.lost_reason = reason
        self.update_id = None
        self._bids.keys, self._bids.levels = [], []
        self._asks.keys, self._asks.levels = [], []
        self._bids.write_texts()
        self._asks.write_texts()
        self._version += 1
        return BookLost(self.market, reason, detail)
