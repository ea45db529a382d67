"""shared.book: ordering by exact value, snapshots and changes, conflation, states."""

import json

import msgspec
import pytest

from shared.book import OKX, BookLost, Checksum, OrderBook, okx_checksum
from shared.numbers import NumberError
from shared.record import Book


def live_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], depth: int = 5, **options: object) -> OrderBook:
    book = OrderBook("BTC-USDT", depth, **options)  # type: ignore[arg-type]
    book.replace(bids, asks)
    return book


def test_a_snapshot_in_any_order_comes_out_best_first_without_zero_sizes() -> None:
    # Coinbase sends its snapshot unsorted, Coinone its asks worst first, Bithumb sizes of "0".
    book = live_book([("99.5", "1"), ("100", "2"), ("98", "0"), ("99.75", "3")],
                     [("102", "1"), ("101", "2"), ("101.5", "0.0")])
    assert book.top(5) == ([("100", "2"), ("99.75", "3"), ("99.5", "1")], [("101", "2"), ("102", "1")])


def test_prices_equal_only_as_floats_are_two_levels() -> None:
    one, other = "0.10000000000000001", "0.1"  # the same double
    assert float(one) == float(other)
    book = live_book([(one, "1"), (other, "2")], [("1.00000000000000001", "3"), ("1", "4")])
    assert book.top(5) == ([(one, "1"), (other, "2")], [("1", "4"), ("1.00000000000000001", "3")])


def test_more_digits_than_decimals_default_precision_keep_their_order() -> None:
    # 30 significant digits: a bid's key is its exact negation, not one rounded to 28 digits.
    high, low = "1.00000000000000000000000000002", "1.00000000000000000000000000001"
    book = live_book([(low, "1"), (high, "1")], [("1.00000000000000000000000000003", "1")])
    assert [price for price, _ in book.top(5)[0]] == [high, low]
    book.apply([("1.00000000000000000000000000003", "1")], [])
    assert book.crossed()


def test_prices_on_either_side_of_the_integer_keys_scale_order_exactly() -> None:
    # 18 decimals get an integer key, more a Decimal one; "...0010" is the 18-decimal value.
    at_scale, beyond = "3.000000000000000007", "3.0000000000000000071"
    same_value = "3.0000000000000000070"
    book = live_book([(beyond, "1"), (at_scale, "2")], [(beyond, "3"), (at_scale, "4")])
    assert book.top(5) == ([(beyond, "1"), (at_scale, "2")], [(at_scale, "4"), (beyond, "3")])
    book.apply([(same_value, "5")], [(same_value, "0")])
    assert book.top(5) == ([(beyond, "1"), (same_value, "5")], [(beyond, "3")])


def test_one_value_written_two_ways_is_one_level_that_keeps_the_latest_text() -> None:
    book = live_book([("1.10", "5")], [("2", "1")])
    book.apply([("1.1", "6.000")], [("2.0", "1")])
    assert book.top(5) == ([("1.1", "6.000")], [("2.0", "1")])
    book.apply([("1.100", "0")], [])  # deleted, whichever way it is written
    assert book.top(5) == ([], [("2.0", "1")])


def test_changes_insert_update_delete_and_ignore_deleting_an_unknown_price() -> None:
    book = live_book([("100", "1"), ("99", "1")], [("101", "1")])
    book.apply([("99.5", "2"), ("100", "3"), ("99", "0"), ("42", "0")], [("101", "0.00000000"), ("103", "1")])
    assert book.top(5) == ([("100", "3"), ("99.5", "2")], [("103", "1")])


def test_changes_of_a_message_apply_in_order() -> None:
    book = live_book([("100", "1")], [])
    book.apply([("100", "0"), ("100", "2"), ("101", "1"), ("101", "0")], [])
    assert book.top(5) == ([("100", "2")], [])


def test_levels_of_any_sequence_type_beyond_price_and_size_are_read() -> None:
    # OKX levels are [price, size, "0", order count]; Kraken v1 [price, volume, time].
    book = live_book([], [])
    book.apply([["100", "1", "0", "3"]], [["101", "2", "1618678133.924027"]])
    assert book.top(5) == ([("100", "1")], [("101", "2")])


def test_window_keeps_only_the_best_levels_after_each_message() -> None:
    book = live_book([(str(price), "1") for price in range(100, 90, -1)], [], depth=2, window=3)
    assert [price for price, _ in book.top(10)[0]] == ["100", "99", "98"]
    book.apply([("100", "0")], [])
    # The level at 97 left the window with the snapshot: nothing brings it back.
    assert [price for price, _ in book.top(10)[0]] == ["99", "98"]
    book.apply([("98.5", "1")], [])
    assert [price for price, _ in book.top(10)[0]] == ["99", "98.5", "98"]


def test_numbers_with_an_exponent_become_plain() -> None:
    # Upbit's DEFAULT format writes 1.16539E8; its SIMPLE format sizes as 7.9276E-4.
    book = live_book([("1.16539E8", "7.9276E-4")], [("1.1654E8", "0E-8"), ("116541000", "5.0E-4")])
    assert book.top(5) == ([("116539000", "0.00079276")], [("116541000", "0.00050")])
    book.apply([("1.16538E8", "1E+1"), ("116539000", "0e0")], [])
    assert book.top(5)[0] == [("116538000", "10")]


@pytest.mark.parametrize("price, size", [
    ("abc", "1"), ("", "1"), ("1.", "1"), ("NaN", "1"), ("1", "-1"), ("-1", "1"), ("0", "1"), ("0.000", "1"),
    ("1", "Infinity"), ("1_0", "1"), ("١", "1"), ("1", " 1"),
])
def test_a_message_with_a_bad_number_changes_nothing(price: str, size: str) -> None:
    book = live_book([("100", "1")], [("101", "1")])
    with pytest.raises(NumberError):
        book.apply([("99", "5"), (price, size)], [("102", "1")])
    assert book.top(5) == ([("100", "1")], [("101", "1")])
    with pytest.raises(NumberError):
        book.replace([(price, size)], [])
    assert book.top(5) == ([("100", "1")], [("101", "1")])


def test_a_frame_with_the_prices_of_the_last_one_gets_its_new_sizes() -> None:
    # A book pushed whole every frame: the next frame often has the same prices, other sizes.
    book = live_book([("100", "1"), ("99", "1"), ("98", "1")], [("101", "1")], depth=2, window=2)
    book.replace([("100", "2"), ("99", "0"), ("98", "3")], [("101", "1")])
    assert book.top(5) == ([("100", "2"), ("98", "3")], [("101", "1")])
    book.replace([("100", "4"), ("99", "5"), ("98", "3")], [("101", "1")])
    assert book.top(5) == ([("100", "4"), ("99", "5")], [("101", "1")])


def test_a_frame_with_prices_in_exponent_form_is_written_plain_every_time() -> None:
    book = live_book([("1.16539E8", "1")], [], window=5)
    book.replace([("1.16539E8", "2")], [])
    assert book.top(5) == ([("116539000", "2")], [])


def test_zero_sizes_within_the_window_let_the_next_levels_up() -> None:
    book = live_book([("100", "1"), ("99", "0"), ("98", "0.000"), ("97", "1"), ("96", "1")], [], depth=2, window=2)
    assert book.top(5) == ([("100", "1"), ("97", "1")], [])


def test_top_n_is_best_first_and_at_most_n() -> None:
    book = live_book([(str(price), "1") for price in range(90, 100)], [(str(price), "1") for price in range(110, 100, -1)],
                     depth=3)
    assert book.changed_top() == ([("99", "1"), ("98", "1"), ("97", "1")], [("101", "1"), ("102", "1"), ("103", "1")])


def test_conflation_publishes_only_a_changed_top_n() -> None:
    book = live_book([("100", "1"), ("99", "1"), ("98", "1")], [("101", "1"), ("102", "1"), ("103", "1")], depth=2)
    first = book.changed_top()
    assert first == ([("100", "1"), ("99", "1")], [("101", "1"), ("102", "1")])
    assert book.changed_top() is None  # nothing happened
    book.apply([("98", "7"), ("97", "1")], [("104", "1")])  # below the top 2
    assert book.changed_top() is None
    book.apply([("99", "2")], [])  # a size in the top 2
    assert book.changed_top() == ([("100", "1"), ("99", "2")], [("101", "1"), ("102", "1")])
    book.apply([("99", "1")], [])
    book.apply([("99", "2")], [])  # changed and changed back since the last record
    assert book.changed_top() is None
    book.apply([("99.5", "1")], [])  # a new price enters the top 2
    assert book.changed_top() == ([("100", "1"), ("99.5", "1")], [("101", "1"), ("102", "1")])
    book.apply([("100", "0")], [])  # a delete pulls the third level up
    assert book.changed_top() == ([("99.5", "1"), ("99", "2")], [("101", "1"), ("102", "1")])


def test_an_identical_snapshot_frame_publishes_nothing() -> None:
    # Bithumb sends many identical consecutive frames.
    book = live_book([("100", "1")], [("101", "1")])
    assert book.changed_top() is not None
    book.replace([("100", "1")], [("101", "1")])
    assert book.changed_top() is None
    book.replace([("100.0", "1")], [("101", "1")])  # the same value in another text is a change of the record
    assert book.changed_top() == ([("100.0", "1")], [("101", "1")])


def test_the_first_record_is_published_even_for_an_empty_book() -> None:
    # Korbit: a stopped pair sends one snapshot with empty sides.
    assert live_book([], []).changed_top() == ([], [])


def test_a_crossed_book_is_lost() -> None:
    book = live_book([("100", "1")], [("101", "1")])
    book.check()
    book.apply([("101", "1")], [])
    assert book.crossed()
    with pytest.raises(BookLost) as lost:
        book.check()
    assert (lost.value.market, lost.value.reason) == ("BTC-USDT", "crossed")
    assert "best bid 101, best ask 101" in str(lost.value)


def test_a_lost_book_publishes_nothing_until_a_snapshot_rebuilds_it() -> None:
    book = OrderBook("BTC-USDT", 5)
    assert book.state == "awaiting_snapshot"
    with pytest.raises(RuntimeError):
        book.apply([("100", "1")], [])
    book.replace([("100", "1")], [("101", "1")])
    book.update_id = 41
    assert book.changed_top() is not None
    lost = book.lose("gap", "prevSeqId 43 after seqId 41")
    assert isinstance(lost, BookLost) and (lost.reason, book.lost_reason, book.state) == ("gap", "gap", "lost")
    assert book.update_id is None and book.top(5) == ([], [])
    for call in (lambda: book.apply([("100", "2")], []), book.changed_top):
        with pytest.raises(RuntimeError, match="lost"):
            call()
    # Rebuilt to the top last published: nothing new to publish.
    book.replace([("100", "1")], [("101", "1")])
    assert (book.state, book.lost_reason) == ("live", None)
    assert book.changed_top() is None
    book.replace([("100", "2")], [("101", "1")])
    assert book.changed_top() == ([("100", "2")], [("101", "1")])


def test_the_checksum_is_computed_again_only_when_its_levels_changed() -> None:
    calls = []

    def counted(bids: object, asks: object) -> int:
        calls.append(1)
        return okx_checksum(bids, asks)  # type: ignore[arg-type]

    bids = [(str(price), "1") for price in range(100, 70, -1)]
    book = live_book(bids, [("101", "1")], depth=5, checksum=Checksum(25, counted))
    book.check(okx_checksum(*book.top(25)))
    book.apply([("72", "9")], [])  # 29th bid
    book.check(okx_checksum(*book.top(25)))
    assert len(calls) == 1
    book.apply([("80", "9")], [])  # 21st bid: in the checksum, not in the top 5
    book.check(okx_checksum(*book.top(25)))
    assert len(calls) == 2 and book.changed_top() is not None
    book.apply([("80", "1")], [])
    assert book.changed_top() is None


def test_a_checksum_for_a_book_without_an_algorithm_is_an_error() -> None:
    with pytest.raises(ValueError, match="no checksum algorithm"):
        live_book([("1", "1")], []).check(123)


def test_a_window_smaller_than_what_is_watched_is_refused() -> None:
    with pytest.raises(ValueError, match="window of 10 levels cannot hold a top 25"):
        OrderBook("BTC-USDT", 10, window=10, checksum=OKX)
    with pytest.raises(ValueError):
        OrderBook("BTC-USDT", 0)


def test_the_book_record_is_the_contract_of_issue_20() -> None:
    book = live_book([("86704.77000000", "4.67805000"), ("86704.76000000", "0.00224000")],
                     [("86704.78000000", "0.73337000")], depth=10)
    top = book.changed_top()
    assert top is not None
    record = Book("binance", "BTC-USDT", "BTCUSDT", *top, book.depth, 100530416202, None, 1_790_000_000_000_000_000,
                  "ws", run="r1", seq=3)
    # Encoded as the sink encodes a Ticker: one msgspec JSON encoder, a JSON object.
    assert json.loads(msgspec.json.Encoder().encode(record)) == {
        "exchange": "binance", "symbol": "BTC-USDT", "raw_symbol": "BTCUSDT",
        "bids": [["86704.77000000", "4.67805000"], ["86704.76000000", "0.00224000"]],
        "asks": [["86704.78000000", "0.73337000"]], "depth": 10, "update_id": 100530416202,
        "exchange_ts": None, "received_ns": 1_790_000_000_000_000_000, "source": "ws", "run": "r1", "seq": 3}
