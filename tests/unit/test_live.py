"""coinstream.live's pure parts: the cross view's prices from book records (the terminal
itself is tests/integration/test_live.py)."""

from decimal import Decimal

import msgspec

from coinstream.live import (CROSS_COLUMNS_LEFT_OUT_FIRST, CROSS_HEADER, NUMERIC_COLUMNS, Board, Filters, cross_view,
                             fitted_table, premium_percent)
from shared.record import Book, Level, Ticker

NOW_NS = 1_800_000_000_000_000_000
ALL = Filters(set(), set())


def book(exchange: str, symbol: str, bids: list[Level], asks: list[Level], update_id: int | None = 7) -> bytes:
    base, quote = symbol.split("-")
    return msgspec.json.encode(Book(exchange, symbol, f"{quote}-{base}", bids, asks, 10, update_id, None,
                                    NOW_NS - 300_000_000, "ws", "run", 5))


def ticker(exchange: str, symbol: str, last: str, bid: str | None = None, ask: str | None = None) -> bytes:
    base, quote = symbol.split("-")
    return msgspec.json.encode(Ticker(exchange, symbol, f"{quote}-{base}", last, bid, ask, None, None, None, None,
                                      None, None, None, None, NOW_NS - 2_000_000_000, "ws", "run", 1))


def test_undecodable_book_records_are_counted_not_shown() -> None:
    board = Board()
    board.take_book(b'{"exchange": "okx"}')
    board.take_book(book("okx", "BTC-USDT", [("not a number", "1")], [("1", "1")]))
    assert board.undecodable == 2 and board.books == {}


def test_cross_view_prices_on_the_book_mid_where_a_book_exists() -> None:
    board = Board()
    for value in (ticker("binance", "BTC-USDT", "100010", "99999", "100011"),
                  book("binance", "BTC-USDT", [("99990.5", "1")], [("100009.5", "2")]),  # mid 100000
                  ticker("coinbase", "BTC-USD", "100002"),  # no book: its last
                  ticker("upbit", "BTC-KRW", "141000000"),
                  book("upbit", "BTC-KRW", [("140000000", "1")], [("140100000", "1")]),  # mid 140050000
                  book("bithumb", "BTC-KRW", [("139000000", "1")], [("139000000.5", "1")]),  # book only
                  book("upbit", "USDT-KRW", [("1399", "10")], [("1401", "10")])):  # rate: mid 1400
        if b'"bids"' in value:
            board.take_book(value)
        else:
            board.take(value)
    notes, rows = cross_view(board, ALL, "BTC", None, NOW_NS)
    reference = Decimal("100001.0")  # median of 100000.0 (mid) and 100002 (last)
    assert notes == [f"BTC reference: {reference} USD (median mid/last of 2 USD/USDT markets)",
                     "KRW per USD: 1400 (median USDT-KRW of upbit)"]
    by_market = {(row[0], row[1]): row for row in rows}
    assert by_market[("binance", "BTC-USDT")] == ["binance", "BTC-USDT", "100010", "99990.5", "100009.5", "0.3s",
                                                  "mid", ""]
    assert by_market[("coinbase", "BTC-USD")][2:] == ["100002", "-", "-", "2.0s", "last", ""]
    upbit = by_market[("upbit", "BTC-KRW")]
    assert upbit[2:7] == ["141000000", "140000000", "140100000", "0.3s", "mid"]
    expected = premium_percent(Decimal("140050000"), Decimal("1400"), reference)
    assert upbit[7] == f"{expected.quantize(Decimal('0.01')):+}%" == "+0.03%"
    assert by_market[("bithumb", "BTC-KRW")][2:7] == ["-", "139000000", "139000000.5", "0.3s", "mid"]
    assert ("upbit", "USDT-KRW") not in by_market


def test_cross_view_one_sided_book_falls_back_to_the_ticker_or_has_no_premium() -> None:
    board = Board()
    board.take(ticker("binance", "BTC-USDT", "100000"))
    board.take(ticker("upbit", "BTC-KRW", "140000000"))
    board.take_book(book("upbit", "BTC-KRW", [("139990000", "1")], []))
    board.take_book(book("korbit", "BTC-KRW", [], [("140010000", "1")]))
    _, rows = cross_view(board, ALL, "BTC", Decimal("1400"), NOW_NS)
    by_market = {(row[0], row[1]): row for row in rows}
    assert by_market[("upbit", "BTC-KRW")][2:] == ["140000000", "139990000", "-", "2.0s", "last", "+0.00%"]
    assert by_market[("korbit", "BTC-KRW")][2:] == ["-", "-", "140010000", "0.3s", "-", "n/a"]


def test_cross_view_on_80_columns_leaves_out_bid_and_ask_and_keeps_the_premium() -> None:
    board = Board()
    board.take(ticker("binance", "BTC-USDT", "101234.56000000"))
    board.take_book(book("binance", "BTC-USDT", [("101234.55000000", "1")], [("101234.56000000", "1")]))
    board.take(ticker("upbit", "BTC-KRW", "143250000"))
    board.take_book(book("upbit", "BTC-KRW", [("143240000", "1")], [("143250000", "1")]))
    _, rows = cross_view(board, ALL, "BTC", Decimal("1400"), NOW_NS)
    wide, left_out = fitted_table(CROSS_HEADER, rows, NUMERIC_COLUMNS, 200, CROSS_COLUMNS_LEFT_OUT_FIRST)
    assert left_out == [] and max(map(len, wide)) > 80 and wide[0].split() == list(CROSS_HEADER)
    narrow, left_out = fitted_table(CROSS_HEADER, rows, NUMERIC_COLUMNS, 80, CROSS_COLUMNS_LEFT_OUT_FIRST)
    assert left_out == ["BID", "ASK"] and max(map(len, narrow)) <= 80
    assert narrow[0].split() == ["EXCHANGE", "SYMBOL", "LAST", "AGE", "PRICED", "PREMIUM"]
    upbit = next(line.split() for line in narrow if line.startswith("upbit"))
    premium = next(row[-1] for row in rows if row[0] == "upbit")
    assert upbit == ["upbit", "BTC-KRW", "143250000", "0.3s", "mid", premium] and premium.endswith("%")


def test_cross_view_too_narrow_for_any_column_but_the_premium_keeps_it() -> None:
    board = Board()
    board.take(ticker("upbit", "BTC-KRW", "143250000"))
    _, rows = cross_view(board, ALL, "BTC", Decimal("1400"), NOW_NS)
    lines, left_out = fitted_table(CROSS_HEADER, rows, NUMERIC_COLUMNS, 30, CROSS_COLUMNS_LEFT_OUT_FIRST)
    assert left_out == ["BID", "ASK", "AGE", "PRICED", "LAST"]
    assert [line.split() for line in lines] == [["EXCHANGE", "SYMBOL", "PREMIUM"], ["upbit", "BTC-KRW", "n/a"]]
