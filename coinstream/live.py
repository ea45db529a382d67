"""coinstream live: the latest ticker of every (exchange, symbol), or one market's book, redrawn in place.

Consumes the configured ticker topic(s) in a consumer group of its own, from the
latest offsets (or --from-beginning), keeps the newest record per (exchange, symbol)
and redraws a table about twice a second with plain ANSI escapes.

--base BTC is the cross-exchange view: every market of that base asset side by side,
and the KRW premium of each KRW price over the reference, the median of the USD and
USDT prices of that base:

    premium = KRW price / (KRW per USD) / reference - 1

A market's price is the mid of its book's best bid and ask when a book record of it has
arrived (BID and ASK then are the book's, PRICED says "mid"), else its ticker's last
price ("last"). KRW per USD is the median USDT-KRW price in the data (USDT taken as
USD); when no USDT-KRW record has arrived, --krw-per-usd RATE; else the premium is
"n/a". Prices are Decimal from the records' exact strings; only the display rounds.
A terminal too narrow for every column loses the least needed first (BID and ASK), so
that PREMIUM stays.

--book EXCHANGE:SYMBOL is one market's order book ladder from its book topic: the asks
above (the best lowest), the bids below (the best highest), each price and size as the
record has it, the spread and the mid between them, redrawn as each record arrives.
"""

import argparse
import shutil
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import FrameType
from typing import Literal, TextIO

import msgspec
from confluent_kafka import Consumer, KafkaException

from shared import config as configuration
from shared.arguments import OneLineParser, number
from shared.record import Book, Ticker
from coinstream.table import format_table
from shared.config import client_settings

REDRAW_INTERVAL_S = 0.5
REFERENCE_QUOTES = ("USD", "USDT")
KRW_RATE_SYMBOL = "USDT-KRW"
PREMIUM_PLACES = Decimal("0.01")
EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69

# Alternate screen and hidden cursor while running; both undone on exit.
ENTER_SCREEN = "\x1b[?1049h\x1b[?25l"
LEAVE_SCREEN = "\x1b[?25h\x1b[?1049l"
HOME = "\x1b[H"
CLEAR_LINE_END = "\x1b[K"
CLEAR_BELOW = "\x1b[J"

PRICE_HEADER = ("EXCHANGE", "SYMBOL", "LAST", "BID", "ASK", "AGE")
CROSS_HEADER = (*PRICE_HEADER, "PRICED", "PREMIUM")
NUMERIC_COLUMNS = {2, 3, 4, 5, 7}
# The cross view's columns a narrow terminal leaves out, in this order, so that PREMIUM,
# the point of the view, stays on screen: the book's sides first (PRICED says whether the
# price is their mid), then the age, the price's basis, the last price.
CROSS_COLUMNS_LEFT_OUT_FIRST = (("BID", "ASK"), ("AGE",), ("PRICED",), ("LAST",))
# What the rows below the terminal's last line are, and how to see them.
TICKER_ROWS_HIDDEN = "rows (narrow with --exchange/--symbol)"
LADDER_ROWS_HIDDEN = "levels (a taller terminal shows them)"
# Ends a line cut at the terminal's right edge.
CUT_MARK = "…"

Market = tuple[str, str]  # (exchange, unified symbol)
Basis = Literal["mid", "last"]


def exchange_order(exchange: str) -> int:
    """Rows follow the configuration's exchange order; unknown names go last."""
    try:
        return configuration.EXCHANGES.index(exchange)
    except ValueError:
        return len(configuration.EXCHANGES)


def format_age(received_ns: int, now_ns: int) -> str:
    seconds = max(0, now_ns - received_ns) / 1e9
    return f"{seconds:.1f}s" if seconds < 100 else f"{seconds:.0f}s"


def format_premium(premium: Decimal | None) -> str:
    if premium is None:
        return "n/a"
    return f"{premium.quantize(PREMIUM_PLACES, rounding=ROUND_HALF_UP):+}%"


def premium_percent(krw_price: Decimal, krw_per_usd: Decimal, reference_usd: Decimal) -> Decimal:
    return (krw_price / krw_per_usd / reference_usd - 1) * 100


@dataclass
class Filters:
    exchanges: set[str]  # empty: every exchange
    symbols: set[str]  # empty: every symbol

    def shows(self, market: Market) -> bool:
        exchange, symbol = market
        return ((not self.exchanges or exchange in self.exchanges)
                and (not self.symbols or symbol in self.symbols))


class Board:
    """The newest ticker and the newest book record per (exchange, symbol)."""

    def __init__(self) -> None:
        self.tickers: dict[Market, Ticker] = {}
        self.books: dict[Market, Book] = {}
        self.undecodable = 0
        self._ticker_decoder = msgspec.json.Decoder(Ticker)
        self._book_decoder = msgspec.json.Decoder(Book)

    def take(self, value: bytes) -> None:
        try:
            ticker = self._ticker_decoder.decode(value)
            Decimal(ticker.last)
        except (msgspec.DecodeError, InvalidOperation):
            self.undecodable += 1
            return
        self.tickers[(ticker.exchange, ticker.symbol)] = ticker

    def take_book(self, value: bytes) -> None:
        try:
            book = self._book_decoder.decode(value)
            for price, _ in (*book.bids[:1], *book.asks[:1]):  # what the views compute on
                Decimal(price)
        except (msgspec.DecodeError, InvalidOperation):
            self.undecodable += 1
            return
        self.books[(book.exchange, book.symbol)] = book

    def markets(self) -> set[Market]:
        return self.tickers.keys() | self.books.keys()

    def shown(self, filters: Filters) -> list[Market]:
        return sorted((market for market in self.markets() if filters.shows(market)),
                      key=lambda market: (exchange_order(market[0]), market[1]))

    def with_symbol(self, symbol: str) -> list[Market]:
        return [market for market in self.markets() if market[1] == symbol]


@dataclass
class Priced:
    """One market as the cross view shows it: the book's best bid and ask where a book
    record exists, and the price its premium is computed on."""

    last: str | None
    bid: str | None
    ask: str | None
    price: Decimal | None  # the book's mid, else the ticker's last; None: neither
    basis: Basis | None
    received_ns: int  # of the record the price comes from


def priced(ticker: Ticker | None, book: Book | None) -> Priced:
    last = ticker.last if ticker else None
    if book is not None:
        bid = book.bids[0][0] if book.bids else None
        ask = book.asks[0][0] if book.asks else None
        if bid is not None and ask is not None:
            return Priced(last, bid, ask, (Decimal(bid) + Decimal(ask)) / 2, "mid", book.received_ns)
        if ticker is None:  # a one-sided book and no ticker: nothing to price it on
            return Priced(None, bid, ask, None, None, book.received_ns)
        return Priced(last, bid, ask, Decimal(ticker.last), "last", ticker.received_ns)
    assert ticker is not None
    return Priced(last, ticker.bid, ticker.ask, Decimal(ticker.last), "last", ticker.received_ns)


def median_price(quotes: list[Priced]) -> tuple[Decimal | None, str]:
    """The median of the prices, and what they are: "last", "mid" or "mid/last"."""
    prices = [quote for quote in quotes if quote.price is not None]
    if not prices:
        return None, "last"
    bases = sorted({quote.basis for quote in prices if quote.basis}, reverse=True)
    return statistics.median(quote.price for quote in prices if quote.price is not None), "/".join(bases)


def price_cells(market: Market, quote: Priced, now_ns: int) -> list[str]:
    exchange, symbol = market
    return [exchange, symbol, quote.last or "-", quote.bid or "-", quote.ask or "-",
            format_age(quote.received_ns, now_ns)]


def price_view(board: Board, filters: Filters, now_ns: int) -> tuple[list[str], list[list[str]]]:
    rows = [price_cells(market, priced(board.tickers[market], None), now_ns)
            for market in board.shown(filters) if market in board.tickers]
    return [], rows


def fitted_table(header: Sequence[str], rows: list[list[str]], right_aligned: set[int], columns: int,
                 left_out_first: Sequence[Sequence[str]]) -> tuple[list[str], list[str]]:
    """The table's lines, less as few of the groups of left_out_first, in order, as its lines
    need to fit in `columns` (all of them, if that is not enough); and the names left out."""
    left_out: list[str] = []
    for group in ((), *left_out_first):
        left_out += group
        kept = [column for column, name in enumerate(header) if name not in left_out]
        lines = format_table([header[column] for column in kept], [[row[column] for column in kept] for row in rows],
                             {position for position, column in enumerate(kept) if column in right_aligned})
        if max(map(len, lines)) <= columns:
            break
    return lines, left_out


def unmatched_warning(seen: int, options: str) -> str:
    """The warning under the title (where 80 columns show it) when no market seen matches
    what the options ask for: a symbol the data never has (KRW-BTC for BTC-KRW) would show
    nothing forever."""
    return f"(no market of the {seen} seen matches {options})"


def cross_view(board: Board, filters: Filters, base: str, krw_per_usd_fallback: Decimal | None,
               now_ns: int) -> tuple[list[str], list[list[str]]]:
    def quote(market: Market) -> Priced:
        return priced(board.tickers.get(market), board.books.get(market))

    references = [market for reference_quote in REFERENCE_QUOTES
                  for market in board.with_symbol(f"{base}-{reference_quote}")]
    reference, reference_basis = median_price([quote(market) for market in references])
    rate_markets = board.with_symbol(KRW_RATE_SYMBOL)
    rate, _ = median_price([quote(market) for market in rate_markets])
    if rate is not None:
        rate_source = f"median {KRW_RATE_SYMBOL} of {', '.join(sorted(exchange for exchange, _ in rate_markets))}"
    elif krw_per_usd_fallback is not None:
        rate, rate_source = krw_per_usd_fallback, "--krw-per-usd"
    else:
        rate_source = f"no {KRW_RATE_SYMBOL} yet; pass --krw-per-usd"
    notes = [
        f"{base} reference: {reference if reference is not None else 'n/a'} USD "
        f"(median {reference_basis} of {len(references)} {'/'.join(REFERENCE_QUOTES)} markets)",
        f"KRW per USD: {rate if rate is not None else 'n/a'} ({rate_source})",
    ]
    rows = []
    for market in board.shown(filters):
        if market[1].split("-", 1)[0] != base:
            continue
        shown = quote(market)
        if not market[1].endswith("-KRW"):
            premium = ""
        elif rate is None or reference is None or shown.price is None:
            premium = "n/a"
        else:
            premium = format_premium(premium_percent(shown.price, rate, reference))
        rows.append([*price_cells(market, shown, now_ns), shown.basis or "-", premium])
    return notes, rows


class Screen:
    """Redraws in place: home, each line cleared to its end, the rest cleared below."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> "Screen":
        self.out.write(ENTER_SCREEN)
        self.out.flush()
        return self

    def __exit__(self, *_: object) -> None:
        self.out.write(LEAVE_SCREEN)
        self.out.flush()

    def draw(self, lines: list[str], rows_hidden: str) -> None:
        """`rows_hidden` names the lines a short terminal cannot show, and how to see them."""
        size = shutil.get_terminal_size()
        if len(lines) > size.lines - 1:
            hidden = len(lines) - (size.lines - 2)
            lines = [*lines[:size.lines - 2], f"... {hidden} more {rows_hidden}"]
        self.out.write(HOME + "".join(_cut(line, size.columns) + CLEAR_LINE_END + "\n" for line in lines)
                       + CLEAR_BELOW)
        self.out.flush()


def _cut(line: str, columns: int) -> str:
    """The line as the terminal's width holds it, marked where it is cut."""
    return line if len(line) <= columns else line[:columns - len(CUT_MARK)] + CUT_MARK


LADDER_HEADER = ("SIDE", "PRICE", "SIZE")


class BookBoard:
    """The newest book record of one market."""

    def __init__(self, exchange: str, symbol: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.latest: Book | None = None
        self.seen: set[Market] = set()  # every market of the topic's records, this one or not
        self.undecodable = 0
        self._decoder = msgspec.json.Decoder(Book)

    def take(self, value: bytes) -> None:
        try:
            book = self._decoder.decode(value)
        except msgspec.DecodeError:
            self.undecodable += 1
            return
        self.seen.add((book.exchange, book.symbol))
        if (book.exchange, book.symbol) == (self.exchange, self.symbol):
            self.latest = book


def ladder_view(board: BookBoard, now_ns: int) -> tuple[list[str], list[list[str]]]:
    """Notes (depth, update id, age, spread and mid) and the ladder's rows: asks worst first
    down to the best, then bids best first."""
    book = board.latest
    if book is None:
        return [f"{board.exchange}:{board.symbol}: no book record yet"], []
    rows = [["ask", price, size] for price, size in reversed(book.asks)]
    rows += [["bid", price, size] for price, size in book.bids]
    notes = [f"{book.exchange}:{book.symbol} ({book.raw_symbol}) top {book.depth}, update_id "
             f"{book.update_id if book.update_id is not None else '-'}, source {book.source}, seq {book.seq}, "
             f"age {format_age(book.received_ns, now_ns)}"]
    if book.bids and book.asks:
        best_bid, best_ask = Decimal(book.bids[0][0]), Decimal(book.asks[0][0])
        notes.append(f"spread {best_ask - best_bid}  mid {(best_ask + best_bid) / 2}")
    return notes, rows


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(consumer: Consumer, topics: list[str], book_topics: set[str], arguments: argparse.Namespace,
        out: TextIO, client_errors: list[str] | None = None) -> None:
    """`client_errors`: where the consumer's error_cb puts its own errors (Kafka
    unreachable), during consume(); taken from it as they come."""
    filters = Filters(set(arguments.exchange), set(arguments.symbol))
    base = arguments.base
    board: Board | BookBoard = BookBoard(*arguments.book) if arguments.book else Board()
    kafka_error = ""
    next_draw = 0.0
    with Screen(out) as screen:
        try:
            while True:
                for message in consumer.consume(num_messages=10_000, timeout=0.1):
                    error = message.error()
                    if error is not None:
                        kafka_error = error.str()
                    elif isinstance(board, Board) and message.topic() in book_topics:
                        board.take_book(message.value())
                    else:
                        board.take(message.value())
                if client_errors:
                    kafka_error = client_errors[-1]
                    client_errors.clear()
                if time.monotonic() < next_draw:
                    continue
                next_draw = time.monotonic() + REDRAW_INTERVAL_S
                now_ns = time.time_ns()
                warning_lines: list[str] = []
                if isinstance(board, BookBoard):
                    notes, rows = ladder_view(board, now_ns)
                    counted, rows_hidden = "levels", LADDER_ROWS_HIDDEN
                    table = format_table(LADDER_HEADER, rows, {1, 2})
                    if board.latest is None and board.seen:
                        warning_lines.append(unmatched_warning(len(board.seen), "--book"))
                else:
                    counted, rows_hidden = "rows", TICKER_ROWS_HIDDEN
                    if base:
                        notes, rows = cross_view(board, filters, base, arguments.krw_per_usd, now_ns)
                        table, left_out = fitted_table(CROSS_HEADER, rows, NUMERIC_COLUMNS,
                                                       shutil.get_terminal_size().columns, CROSS_COLUMNS_LEFT_OUT_FIRST)
                        if left_out:
                            notes.append(f"{', '.join(left_out)} left out: a wider terminal shows them")
                    else:
                        notes, rows = price_view(board, filters, now_ns)
                        table = format_table(PRICE_HEADER, rows, NUMERIC_COLUMNS)
                    seen = len(board.markets())
                    if not rows and seen and (filters.exchanges or filters.symbols):
                        warning_lines.append(unmatched_warning(seen, "--exchange/--symbol"))
                title = (f"coinstream live  {', '.join(topics)}  {len(rows)} {counted}  "
                         f"{time.strftime('%H:%M:%S', time.gmtime())} UTC  Ctrl-C quits")
                if board.undecodable:
                    title += f"  ({board.undecodable} undecodable records skipped)"
                if kafka_error:
                    title += f"  last Kafka error: {kafka_error}"
                screen.draw([title, *warning_lines, *notes, "", *table], rows_hidden)
        except KeyboardInterrupt:
            pass


def _market(text: str) -> tuple[str, str]:
    """EXCHANGE:SYMBOL, in any case: upbit:btc-krw is ("upbit", "BTC-KRW")."""
    exchange, colon, symbol = text.partition(":")
    if not colon or exchange.lower() not in configuration.EXCHANGES or "-" not in symbol:
        raise argparse.ArgumentTypeError(f"{text!r}: expected EXCHANGE:BASE-QUOTE, such as upbit:BTC-KRW "
                                         f"(exchanges: {', '.join(configuration.EXCHANGES)})")
    return exchange.lower(), symbol.upper()


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream live", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", help="override file (default: $COINSTREAM_CONFIG)")
    # Names and symbols in any case: --exchange Upbit --symbol btc-krw.
    parser.add_argument("--exchange", metavar="NAME", action="append", default=[], type=str.lower,
                        choices=configuration.EXCHANGES, help="show only this exchange (repeatable)")
    parser.add_argument("--symbol", metavar="BASE-QUOTE", action="append", default=[], type=str.upper,
                        help="show only this unified symbol, e.g. BTC-KRW (repeatable)")
    parser.add_argument("--base", metavar="ASSET", type=str.upper,
                        help="cross-exchange view of this base asset, e.g. BTC")
    parser.add_argument("--krw-per-usd", metavar="RATE", type=number(Decimal, above=Decimal(0)),
                        help="KRW per USD for the premium when the data has no USDT-KRW price")
    parser.add_argument("--book", metavar="EXCHANGE:SYMBOL", type=_market,
                        help="one market's order book ladder, e.g. upbit:BTC-KRW")
    parser.add_argument("--from-beginning", action="store_true",
                        help="read the topics from their beginning instead of only new records")
    arguments = parser.parse_args(argv)
    try:
        config = configuration.load(arguments.config)
    except configuration.ConfigError as error:
        print(f"coinstream live: error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    book_topics: set[str] = set()
    if arguments.book:
        topics = [config.book_topic(arguments.book[0])]
    else:
        if arguments.base:  # the cross view prices a market on its book where one is published
            book_topics = {config.book_topic(name) for name in configuration.EXCHANGES}
        topics = sorted({config.ticker_topic(name) for name in configuration.EXCHANGES} | book_topics)
    # librdkafka's errors go to the screen's title; its log lines, written to the
    # terminal, would land over the redrawn screen.
    client_errors: list[str] = []
    consumer = Consumer({
        **client_settings(config.kafka.producer),
        "logger": configuration.UNHEARD,
        "error_cb": lambda error: client_errors.append(error.str()),
        "group.id": f"coinstream-live-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest" if arguments.from_beginning else "latest",
        "enable.auto.commit": False,
    })
    try:
        consumer.subscribe(topics)
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        run(consumer, topics, book_topics, arguments, sys.stdout, client_errors)
    except KafkaException as error:
        print(f"coinstream live: error: {error.args[0].str()}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
