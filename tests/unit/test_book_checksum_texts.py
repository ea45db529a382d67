"""A checksum the book keeps level texts for (Checksum.level_text, of_texts: OKX's) is the
checksum of the book's levels after any messages: the texts of the changed levels, and
only those, are built again (shared.book._Side.apply)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.book import OKX, BookLost, Checksum, Level, OrderBook, okx_checksum, okx_checksum_of_texts
from tests.unit.test_book_properties import ReferenceBook, messages

# Over the top 3, as the property tests' checksum: fewer levels than some depths, more than others.
TOP_3_TEXTS = Checksum(3, okx_checksum, ":".join, okx_checksum_of_texts)


@settings(max_examples=200, deadline=None)
@given(messages=messages, depth=st.integers(1, 4), window_beyond=st.none() | st.integers(0, 3))
def test_the_checksum_from_kept_texts_is_the_checksum_of_the_levels(
        messages: list[tuple[str, list[Level], list[Level]]], depth: int, window_beyond: int | None) -> None:
    window = None if window_beyond is None else max(depth, 3) + window_beyond
    book = OrderBook("BTC-USDT", depth, window=window, checksum=TOP_3_TEXTS)
    reference = ReferenceBook(window)
    for kind, bids, asks in messages:
        if kind == "change" and book.state != "live":
            continue
        for kept in (book, reference):
            (kept.replace if kind == "snapshot" else kept.apply)(bids, asks)
        exchange_checksum = okx_checksum(*reference.top(3))
        if reference.crossed():
            with pytest.raises(BookLost, match="crossed"):
                book.check(exchange_checksum)
        else:
            book.check(exchange_checksum)  # BookLost ("checksum") if the texts were stale


def test_a_change_below_the_checksum_levels_keeps_them_and_one_within_builds_them_again() -> None:
    asks = [(str(price), "1") for price in range(101, 131)]
    book = OrderBook("BTC-USDT", 5, checksum=OKX)
    book.replace([("100", "1")], asks)
    book.check(okx_checksum(*book.top(25)))
    book.apply([], [("127", "2"), ("130.5", "1")])  # below the 25th ask
    book.check(okx_checksum(*book.top(25)))
    book.apply([], [("110", "0"), ("110.5", "3"), ("124", "4")])  # within: the 26th moves up
    assert book.top(25)[1][8:10] == [("109", "1"), ("110.5", "3")]
    book.check(okx_checksum(*book.top(25)))
    book.apply([], [("101", "0"), ("102", "0")])
    book.check(okx_checksum(*book.top(25)))
    book.lose("gap", "a test")
    book.replace([("100", "1")], asks[:3])
    book.check(okx_checksum(*book.top(25)))
