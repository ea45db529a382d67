"""shared.book against a reference book built with Decimal keys, over random message sequences.

Prices include values equal only as floats (differing in the 17th significant digit),
values beyond Decimal's default 28-digit precision, one value written several ways
(trailing zeros, exponent form) and a value both sides use, so that books cross.
"""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.book import BookLost, Checksum, Level, OrderBook, okx_checksum
from shared.numbers import plain

BID_VALUES = ["0.99999999999999999", "1", "1.0000000000000001", "1.00000000000000000000000000001",
              "1.1", "1.25", "1.3", "1.5"]
ASK_VALUES = ["1.5", "1.6", "2", "2.0000000000000002", "2.00000000000000000000000000001", "2.5", "30", "300"]
SIZES = ["0", "0.0", "0.00000000", "0E-8", "1", "1.0", "2.50", "0.00000001", "1E-8", "7.9276E-4",
         "12345678901234567890.123"]
# A checksum over the top 3: fewer levels than some depths, more than others.
TOP_3 = Checksum(3, okx_checksum)


@st.composite
def written(draw: st.DrawFn, values: list[str]) -> str:
    """One of `values`, in one of the ways an exchange may write it."""
    value = draw(st.sampled_from(values))
    integer, _, fraction = value.partition(".")
    way = draw(st.sampled_from(["as is", "trailing zeros", "exponent"]))
    if way == "trailing zeros":
        return value + ("" if fraction else ".") + "0" * draw(st.integers(1, 3))
    if way == "exponent":
        return f"{integer}{fraction}E-{len(fraction)}"
    return value


def levels(prices: list[str]) -> st.SearchStrategy[list[Level]]:
    return st.lists(st.tuples(written(prices), st.sampled_from(SIZES)), max_size=6)


messages = st.lists(st.tuples(st.sampled_from(["snapshot", "change", "change", "change"]),
                              levels(BID_VALUES), levels(ASK_VALUES)), min_size=1, max_size=25)


class ReferenceBook:
    """The obvious book: a dict from Decimal value to (plain price, plain size), sorted when read."""

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.bids: dict[Decimal, Level] = {}
        self.asks: dict[Decimal, Level] = {}

    def replace(self, bids: list[Level], asks: list[Level]) -> None:
        """A snapshot is its levels applied to an empty book: the last one of a price wins."""
        self.bids, self.asks = {}, {}
        self.apply(bids, asks)

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, size in changes:
                value = Decimal(plain(price))
                if Decimal(plain(size)) == 0:
                    side.pop(value, None)
                else:
                    side[value] = (plain(price), plain(size))
        self._truncate()

    def top(self, levels: int) -> tuple[list[Level], list[Level]]:
        bids = [self.bids[value] for value in sorted(self.bids, reverse=True)[:levels]]
        asks = [self.asks[value] for value in sorted(self.asks)[:levels]]
        return bids, asks

    def crossed(self) -> bool:
        return bool(self.bids and self.asks) and max(self.bids) >= min(self.asks)

    def _truncate(self) -> None:
        if self.window is not None:
            bids, asks = self.top(self.window)
            self.bids = {Decimal(price): (price, size) for price, size in bids}
            self.asks = {Decimal(price): (price, size) for price, size in asks}


@settings(max_examples=400, deadline=None)
@given(messages=messages, depth=st.integers(1, 4), window_beyond=st.none() | st.integers(0, 3),
       with_checksum=st.booleans())
def test_the_book_is_the_reference_book_after_any_messages(
        messages: list[tuple[str, list[Level], list[Level]]], depth: int, window_beyond: int | None,
        with_checksum: bool) -> None:
    checksum = TOP_3 if with_checksum else None
    watched = max(depth, 3 if checksum else 0)
    window = None if window_beyond is None else watched + window_beyond
    book = OrderBook("BTC-USDT", depth, window=window, checksum=checksum)
    reference = ReferenceBook(window)
    published = None
    for kind, bids, asks in messages:
        if kind == "change" and book.state != "live":
            continue  # a new or lost book waits for its snapshot
        if kind == "snapshot":
            book.replace(bids, asks)
            reference.replace(bids, asks)
        else:
            book.apply(bids, asks)
            reference.apply(bids, asks)
        assert book.top(100) == reference.top(100)
        exchange_checksum = okx_checksum(*reference.top(3)) if checksum else None
        if reference.crossed():
            with pytest.raises(BookLost) as lost:
                book.check(exchange_checksum)
            assert lost.value.reason == "crossed" and book.state == "lost"
            continue
        book.check(exchange_checksum)
        top = reference.top(depth)
        # Conflation is exact: a record exactly when the top N differs from the last record.
        if top != published:
            assert book.changed_top() == top
            published = top
        else:
            assert book.changed_top() is None

