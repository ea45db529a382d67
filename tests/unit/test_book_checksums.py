"""Book checksums: OKX `books` and Kraken v1/v2.

Kraken's are reproduced on exchange frames (tests/fixtures/kraken, see SOURCES.md): the real
v1 `book-1000` snapshot and its next two updates, and the v2 docs' snapshot. No real OKX
`books` push with a checksum is available in the reference material (/work/shared), and the
docs' own snapshot example carries a checksum that does not match its levels. So OKX's is
checked against the docs' example strings and, on books built here, against the docs' rule
written out plainly below (`okx_docs_checksum`): a second, independent implementation, not
a frame the exchange sent.
"""

import json
import zlib
from typing import Any

import msgspec
import pytest

from shared.book import KRAKEN, OKX, BookLost, Level, OrderBook, kraken_checksum, okx_checksum
from shared.numbers import raw_plain
from tests.conftest import fixture_bytes


def okx_docs_checksum(bids: list[Level], asks: list[Level]) -> int:
    """OKX's rule as its docs state it: bid1px:bid1sz:ask1px:ask1sz:bid2px:... over the first
    25 levels of each side, a missing entry skipped; CRC32 of that string, read as signed."""
    fields = []
    for rank in range(25):
        if rank < len(bids):
            fields += bids[rank]
        if rank < len(asks):
            fields += asks[rank]
    crc = zlib.crc32(":".join(fields).encode())
    return int.from_bytes(crc.to_bytes(4, "big"), "big", signed=True)


def okx_levels(levels: list[list[str]]) -> list[Level]:
    """(price, size) of OKX's [price, size, "0", order count] levels."""
    return [(price, size) for price, size, _, _ in levels]


def okx_docs_snapshot() -> dict[str, Any]:
    """The docs' `books` snapshot: BTC-USDT, 8 levels a side, best first."""
    [data] = json.loads(fixture_bytes("okx", "ws_books_snapshot_doc.json"))["data"]
    return data


def okx_book_of_the_docs_snapshot() -> OrderBook:
    data = okx_docs_snapshot()
    book = OrderBook("BTC-USDT", depth=10, checksum=OKX)
    book.replace(okx_levels(data["bids"]), okx_levels(data["asks"]))
    return book


# An update to the docs' snapshot, built here in OKX's level format: a size changed (ask
# 8477), a bid deleted (8475.3), a bid and an ask added between existing levels.
OKX_UPDATE = {"bids": [["8475.3", "0", "0", "0"], ["8476.5", "12", "0", "2"]],
              "asks": [["8477", "9", "0", "3"], ["8477.1", "0.5", "0", "1"]]}
# The book after it, written out by hand.
OKX_BIDS_AFTER = [("8476.97", "256"), ("8476.5", "12"), ("8475.55", "101"), ("8475.54", "100"),
                  ("8447.32", "6"), ("8447.02", "246"), ("8446.83", "24"), ("8446", "95")]
OKX_ASKS_AFTER = [("8476.98", "415"), ("8477", "9"), ("8477.1", "0.5"), ("8477.34", "85"), ("8477.56", "1"),
                  ("8505.84", "8"), ("8506.37", "85"), ("8506.49", "2"), ("8506.96", "100")]


@pytest.mark.parametrize("bids, asks, string, signed", [
    # The docs' two example strings; the second has one bid for three asks: the asks'
    # entries without a bid beside them follow each other. CRC32 values from the notes.
    ([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")],
     b"3366.1:7:3366.8:9:3366:6:3368:8", -1881014294),
    ([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")],
     b"3366.1:7:3366.8:9:3368:8:3372:8", 831078360),
])
def test_okx_checksum_of_the_docs_example_strings(bids: list[Level], asks: list[Level], string: bytes,
                                                  signed: int) -> None:
    assert zlib.crc32(string) == signed % (1 << 32)  # the string OKX describes, its CRC read unsigned
    assert okx_checksum(bids, asks) == signed


def test_okx_checksum_uses_the_texts_as_received() -> None:
    # "30244" and "30244.0" are one price, but OKX hashes the text it sent.
    assert okx_checksum([("30244", "1")], []) != okx_checksum([("30244", "1.0")], [])


@pytest.mark.parametrize("bid_count, ask_count", [(30, 27), (3, 30), (26, 0), (0, 1), (0, 0)])
def test_okx_checksum_interleaves_the_sides_over_25_levels(bid_count: int, ask_count: int) -> None:
    bids = [(f"{30000 - rank}.{rank % 10}", f"0.{rank + 1:03d}") for rank in range(bid_count)]
    asks = [(f"{30001 + rank}", f"{rank + 2}") for rank in range(ask_count)]
    assert okx_checksum(bids, asks) == okx_docs_checksum(bids, asks)
    # The 26th level of either side is not covered.
    assert okx_checksum(bids[:25], asks[:25]) == okx_checksum(bids, asks)


def test_okx_checksum_of_a_snapshot_then_updates() -> None:
    data = okx_docs_snapshot()
    book = okx_book_of_the_docs_snapshot()
    assert book.top(25) == (okx_levels(data["bids"]), okx_levels(data["asks"]))
    snapshot_checksum = okx_docs_checksum(*book.top(25))
    assert snapshot_checksum == -2102840145
    assert data["checksum"] != snapshot_checksum  # the docs' example value is not its levels'
    assert okx_checksum(*book.top(25)) == snapshot_checksum
    book.check(snapshot_checksum)

    book.apply(OKX_UPDATE["bids"], OKX_UPDATE["asks"])
    assert book.top(25) == (OKX_BIDS_AFTER, OKX_ASKS_AFTER)
    update_checksum = okx_docs_checksum(OKX_BIDS_AFTER, OKX_ASKS_AFTER)
    assert okx_checksum(*book.top(25)) == update_checksum != snapshot_checksum
    book.check(update_checksum)  # the book's own checksum, computed again after the change

    # Then the best ask goes: the book's cached checksum must follow.
    book.apply([], [["8476.98", "0", "0", "0"]])
    book.check(okx_docs_checksum(OKX_BIDS_AFTER, OKX_ASKS_AFTER[1:]))
    assert book.state == "live"


def test_a_wrong_okx_checksum_loses_the_book() -> None:
    book = okx_book_of_the_docs_snapshot()
    exchange_checksum = okx_docs_checksum(OKX_BIDS_AFTER, OKX_ASKS_AFTER)  # what OKX sends after the update
    # The update as received with one size changed in transit: the book no longer matches.
    bids = [[price, size + "1", *rest] for price, size, *rest in OKX_UPDATE["bids"][1:]]
    book.apply(OKX_UPDATE["bids"][:1] + bids, OKX_UPDATE["asks"])
    with pytest.raises(BookLost) as lost:
        book.check(exchange_checksum)
    assert (lost.value.market, lost.value.reason) == ("BTC-USDT", "checksum")
    assert book.state == "lost" and book.top(25) == ([], [])


class KrakenLevel(msgspec.Struct):
    price: msgspec.Raw  # JSON numbers: their text keeps the trailing zeros the checksum needs
    qty: msgspec.Raw


class KrakenBookData(msgspec.Struct):
    symbol: str
    bids: list[KrakenLevel]
    asks: list[KrakenLevel]
    checksum: int


class KrakenBookPush(msgspec.Struct):
    channel: str
    type: str
    data: list[KrakenBookData]


def kraken_side(levels: list[KrakenLevel]) -> list[Level]:
    return [(raw_plain(level.price), raw_plain(level.qty)) for level in levels]


def test_kraken_v2_checksum_of_the_docs_snapshot() -> None:
    push = msgspec.json.decode(fixture_bytes("kraken", "ws_v2_book_snapshot_doc.json"), type=KrakenBookPush)
    [data] = push.data
    book = OrderBook("BTC/USD", depth=10, window=10, checksum=KRAKEN)
    book.replace(kraken_side(data.bids), kraken_side(data.asks))
    assert book.top(1) == ([("45283.5", "0.10000000")], [("45285.2", "0.00100000")])
    assert kraken_checksum(*book.top(10)) == data.checksum == 3310070434  # unsigned: above 2**31
    book.check(data.checksum)


def test_kraken_checksum_fails_after_a_float_round_trip() -> None:
    """Why the numbers must stay text: json.loads turns 0.10000000 into 0.1."""
    [data] = json.loads(fixture_bytes("kraken", "ws_v2_book_snapshot_doc.json"))["data"]
    bids = [(str(level["price"]), str(level["qty"])) for level in data["bids"]]
    asks = [(str(level["price"]), str(level["qty"])) for level in data["asks"]]
    assert kraken_checksum(bids, asks) != 3310070434


def kraken_v1(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes("kraken", name))[1]


def test_kraken_v1_book_1000_snapshot_and_the_next_two_updates() -> None:
    snapshot = kraken_v1("ws_v1_book1000_snapshot_xbtchf.json")
    book = OrderBook("XBT/CHF", depth=10, window=1000, checksum=KRAKEN)
    book.replace([(price, size) for price, size, _ in snapshot["bs"]],
                 [(price, size) for price, size, _ in snapshot["as"]])
    for name, deleted_bid in (("ws_v1_book_update_1_xbtchf.json", None),
                              ("ws_v1_book_update_2_xbtchf.json", "55978.50000")):
        update = kraken_v1(name)
        before = book.top(1000)[0]
        book.apply(update.get("b", []), update.get("a", []))
        book.check(int(update["c"]))  # v1 sends the checksum as a string
        assert kraken_checksum(*book.top(10)) == int(update["c"])
        if deleted_bid is not None:
            assert [price for price, _ in before if price == deleted_bid] == [deleted_bid]
            assert deleted_bid not in [price for price, _ in book.top(1000)[0]]


def test_a_wrong_kraken_checksum_loses_the_book() -> None:
    push = msgspec.json.decode(fixture_bytes("kraken", "ws_v2_book_snapshot_doc.json"), type=KrakenBookPush)
    [data] = push.data
    book = OrderBook("BTC/USD", depth=10, window=10, checksum=KRAKEN)
    book.replace(kraken_side(data.bids), kraken_side(data.asks))
    # A change the book never saw: the exchange's next checksum no longer matches.
    with pytest.raises(BookLost) as lost:
        book.check(data.checksum ^ 1)
    assert lost.value.reason == "checksum" and book.state == "lost"
