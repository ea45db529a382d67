"""The live view in a real terminal: `python -m coinstream live` runs in a tmux pane against
a real broker; the test writes Ticker records to the topic, reads the screen with
`tmux capture-pane`, and ends the view with Ctrl-C as a user would.
"""

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import msgspec
import pytest
import yaml
from confluent_kafka import Producer

from coinstream.live import CUT_MARK
from shared.record import Book, Ticker
from tests.harness import ROOT, override_file, wait_until

pytestmark = pytest.mark.integration


class Pane:
    """A shell in a detached tmux session on a server of its own (its own socket)."""

    def __init__(self, columns: int = 160, lines: int = 40) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed: the live view is tested in a real terminal "
                        "(apt-get install -y tmux; .ci/run installs it)")
        self.server = f"coinstream-test-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "live", "-x", str(columns), "-y", str(lines), "-c", str(ROOT),
                   "bash --norc --noprofile")
        self.runs = 0

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True,
                              timeout=10, check=True)
        return done.stdout

    def start_live(self, config: Path, *options: str) -> str:
        """Start the live view; returns the line the shell prints when it has exited."""
        self.runs += 1
        exited = f"live run {self.runs} exited"
        command = f"{sys.executable} -m coinstream live --config {config} {' '.join(options)}; echo \"{exited} $?\""
        self._tmux("send-keys", "-t", "live", "-l", command)
        self._tmux("send-keys", "-t", "live", "Enter")
        return exited

    def interrupt(self) -> None:
        self._tmux("send-keys", "-t", "live", "C-c")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "live")

    def wait_for(self, text: str, timeout_s: float = 20) -> str:
        def showing() -> str | None:
            screen = self.screen()
            return screen if text in screen else None
        return str(wait_until(showing, timeout_s, f"{text!r} on the screen"))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def pane() -> Iterator[Pane]:
    started = Pane()
    yield started
    started.close()


@pytest.fixture
def small_pane() -> Iterator[Pane]:
    """The terminal a new user may well have: 80 columns, 24 lines."""
    started = Pane(80, 24)
    yield started
    started.close()


def ticker(exchange: str, symbol: str, last: str, bid: str | None = None, ask: str | None = None) -> Ticker:
    base, quote = symbol.split("-")
    return Ticker(exchange, symbol, f"{quote}-{base}", last, bid, ask, None, None, None, None, None, None, None,
                  None, time.time_ns(), "ws", "test-run", 1)


def produce(bootstrap: str, topic: str, tickers: list[Ticker] | list[Book]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for record in tickers:
        producer.produce(topic, msgspec.json.encode(record), f"{record.exchange}:{record.symbol}".encode())
    assert producer.flush(10) == 0


def table_rows(screen: str) -> dict[tuple[str, str], list[str]]:
    """(exchange, symbol) -> the row's cells, for every table row on the screen."""
    rows = {}
    for line in screen.splitlines():
        cells = line.split()
        if len(cells) >= 6 and "-" in cells[1] and cells[0].isalpha() and cells[0].islower():
            rows[(cells[0], cells[1])] = cells
    return rows


def topic_of(config: Path, kind: str = "ticker") -> str:
    return str(yaml.safe_load(config.read_text())["topics"][kind])


def test_latest_prices_filters_and_ctrl_c(kafka: str, tmp_path: Path, pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    topic = topic_of(config)
    produce(kafka, topic, [ticker("kraken", "ETH-USD", "1790.10")])  # before the view: not shown

    exited = pane.start_live(config)
    pane.wait_for(" 0 rows ")
    first = [ticker("upbit", "BTC-KRW", "143250000"),
             ticker("binance", "BTC-USDT", "101234.56000000", "101234.55000000", "101234.56000000"),
             ticker("okx", "SHIB-USDT", "0.00001234000", "0.00001233000", "0.00001234000")]

    def shows_first_records() -> dict[tuple[str, str], list[str]] | None:
        # From the latest offsets: keep writing until the view's group has its partitions.
        produce(kafka, topic, first)
        rows = table_rows(pane.screen())
        # Partitions reach the view separately: wait for all three rows.
        wanted = {("upbit", "BTC-KRW"), ("binance", "BTC-USDT"), ("okx", "SHIB-USDT")}
        return rows if wanted <= rows.keys() else None

    rows = wait_until(shows_first_records, 30, "the live view to show new records", interval_s=1)
    assert rows[("upbit", "BTC-KRW")][2:5] == ["143250000", "-", "-"]
    assert rows[("binance", "BTC-USDT")][2:5] == ["101234.56000000", "101234.55000000", "101234.56000000"]
    assert rows[("okx", "SHIB-USDT")][2] == "0.00001234000", "exact digits, trailing zeros kept"
    assert ("kraken", "ETH-USD") not in rows, "a record older than the view was shown without --from-beginning"

    produce(kafka, topic, [ticker("upbit", "BTC-KRW", "143300000")])
    wait_until(lambda: table_rows(pane.screen())[("upbit", "BTC-KRW")][2] == "143300000", 10,
               "the newer upbit price to replace the older one")
    assert sum(1 for key in table_rows(pane.screen()) if key == ("upbit", "BTC-KRW")) == 1

    pane.interrupt()
    pane.wait_for(f"{exited} 0")

    exited = pane.start_live(config, "--from-beginning", "--exchange", "upbit", "--exchange", "okx")
    pane.wait_for(" 2 rows ")
    rows = table_rows(pane.screen())
    assert set(rows) == {("upbit", "BTC-KRW"), ("okx", "SHIB-USDT")}
    assert rows[("upbit", "BTC-KRW")][2] == "143300000"
    pane.interrupt()
    pane.wait_for(f"{exited} 0")

    exited = pane.start_live(config, "--from-beginning", "--symbol", "eth-usd")
    pane.wait_for(" 1 rows ")
    assert set(table_rows(pane.screen())) == {("kraken", "ETH-USD")}
    pane.interrupt()
    pane.wait_for(f"{exited} 0")

    # Names are case-insensitive; a symbol nothing matches (Upbit's own KRW-BTC) says so.
    exited = pane.start_live(config, "--from-beginning", "--exchange", "UPBIT", "--symbol", "krw-btc")
    pane.wait_for(" 0 rows ")
    pane.wait_for("no market of the 4 seen matches --exchange/--symbol")
    pane.interrupt()
    pane.wait_for(f"{exited} 0")


def expected_premium(krw_last: str, krw_per_usd: Decimal, reference: Decimal) -> str:
    premium = (Decimal(krw_last) / krw_per_usd / reference - 1) * 100
    return f"{premium.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):+}%"


def test_cross_exchange_view_shows_the_krw_premium(kafka: str, tmp_path: Path, pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    topic = topic_of(config)
    references = {("binance", "BTC-USDT"): "101234.56", ("okx", "BTC-USDT"): "101240.1",
                  ("coinbase", "BTC-USD"): "101250.00", ("kraken", "BTC-USD"): "101229.9"}
    korean = {("upbit", "BTC-KRW"): "143250000", ("bithumb", "BTC-KRW"): "143311000",
              ("korbit", "BTC-KRW"): "139000000"}
    produce(kafka, topic, [
        *(ticker(exchange, symbol, last) for (exchange, symbol), last in {**references, **korean}.items()),
        ticker("upbit", "USDT-KRW", "1391.5"), ticker("bithumb", "USDT-KRW", "1392"),
        ticker("upbit", "ETH-KRW", "2500000"), ticker("kraken", "BTC-EUR", "93000.1"),
    ])
    # Median of four: the mean of the middle two; KRW per USD: median of the two USDT-KRW prices.
    middle = sorted(Decimal(last) for last in references.values())[1:3]
    reference = sum(middle) / 2
    krw_per_usd = (Decimal("1391.5") + Decimal("1392")) / 2

    exited = pane.start_live(config, "--from-beginning", "--base", "btc", "--krw-per-usd", "1000")
    screen = pane.wait_for(" 8 rows ")
    assert f"BTC reference: {reference} USD (median last of 4 USD/USDT markets)" in screen
    assert f"KRW per USD: {krw_per_usd} (median USDT-KRW of bithumb, upbit)" in screen, \
        "the rate in the data wins over the --krw-per-usd fallback"
    rows = table_rows(screen)
    assert set(rows) == {*references, *korean, ("kraken", "BTC-EUR")}, "only BTC markets, ETH and USDT left out"
    for key, last in korean.items():
        assert rows[key][2] == last
        assert rows[key][-1] == expected_premium(last, krw_per_usd, reference), screen
    assert rows[("korbit", "BTC-KRW")][-1].startswith("-"), "a KRW price below the reference: a discount"
    for key in (*references, ("kraken", "BTC-EUR")):
        assert rows[key][6] == "last" and len(rows[key]) == 7, f"{key}: only KRW prices have a premium: {rows[key]}"
    pane.interrupt()
    pane.wait_for(f"{exited} 0")


def test_cross_exchange_view_without_usdt_krw_uses_the_given_rate_or_says_na(
        kafka: str, tmp_path: Path, pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    produce(kafka, topic_of(config), [ticker("upbit", "BTC-KRW", "140000000"),
                                      ticker("binance", "BTC-USDT", "100000.00")])

    exited = pane.start_live(config, "--from-beginning", "--base", "BTC", "--krw-per-usd", "1380.25")
    screen = pane.wait_for(" 2 rows ")
    assert "KRW per USD: 1380.25 (--krw-per-usd)" in screen
    assert table_rows(screen)[("upbit", "BTC-KRW")][-1] == expected_premium(
        "140000000", Decimal("1380.25"), Decimal("100000.00"))
    pane.interrupt()
    pane.wait_for(f"{exited} 0")

    exited = pane.start_live(config, "--from-beginning", "--base", "BTC")
    screen = pane.wait_for(" 2 rows ")
    assert "KRW per USD: n/a" in screen
    assert table_rows(screen)[("upbit", "BTC-KRW")][-1] == "n/a"
    pane.interrupt()
    pane.wait_for(f"{exited} 0")


def book_record(exchange: str, symbol: str, raw: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                update_id: int) -> Book:
    return Book(exchange, symbol, raw, bids, asks, 3, update_id, None, time.time_ns(), "ws", "test-run", update_id)


def test_book_ladder_of_one_market(kafka: str, tmp_path: Path, pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    topic = str(yaml.safe_load(config.read_text())["topics"]["book"])
    exited = pane.start_live(config, "--book", "OKX:btc-usdt", "--from-beginning")
    pane.wait_for("okx:BTC-USDT: no book record yet")
    producer = Producer({"bootstrap.servers": kafka})
    records = [
        book_record("okx", "BTC-USDT", "BTC-USDT", [("101234.5", "0.25"), ("101234.4", "1.5")],
                    [("101234.6", "0.125"), ("101234.70", "3")], 7),
        book_record("okx", "ETH-USDT", "ETH-USDT", [("3000.1", "1")], [("3000.2", "1")], 8),  # another market
        book_record("okx", "BTC-USDT", "BTC-USDT", [("101234.5", "0.30"), ("101234.4", "1.5")],
                    [("101234.6", "0.125"), ("101234.70", "3")], 9),
    ]
    for record in records:
        producer.produce(topic, msgspec.json.encode(record), f"okx:{record.symbol}".encode())
    assert producer.flush(10) == 0
    screen = pane.wait_for("update_id 9")
    ladder = [line.split() for line in screen.splitlines() if line.split()[:1] in (["ask"], ["bid"])]
    # Asks worst first down to the best, then bids best first: the texts as the record has them.
    assert ladder == [["ask", "101234.70", "3"], ["ask", "101234.6", "0.125"],
                      ["bid", "101234.5", "0.30"], ["bid", "101234.4", "1.5"]]
    assert "spread 0.1  mid 101234.55" in screen
    pane.interrupt()
    pane.wait_for(f"{exited} 0")
    done = subprocess.run([sys.executable, "-m", "coinstream", "live", "--book", "okx-BTC-USDT"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "expected EXCHANGE:BASE-QUOTE" in done.stderr


def top_of_book(exchange: str, symbol: str, bid: str, ask: str) -> Book:
    base, quote = symbol.split("-")
    return book_record(exchange, symbol, f"{quote}-{base}", [(bid, "0.1")], [(ask, "0.2")], 1)


def test_cross_exchange_view_prices_on_the_book_mid(kafka: str, tmp_path: Path, pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    produce(kafka, topic_of(config), [ticker("binance", "BTC-USDT", "100500.00", "100499.99", "100500.00"),
                                      ticker("upbit", "BTC-KRW", "141000000"),
                                      ticker("coinbase", "BTC-USD", "100100.00"),
                                      ticker("upbit", "USDT-KRW", "1395")])
    produce(kafka, topic_of(config, "book"), [
        top_of_book("binance", "BTC-USDT", "99999.99", "100000.01"),
        top_of_book("upbit", "BTC-KRW", "140000000", "140020000"),
        top_of_book("bithumb", "BTC-KRW", "139500000", "139600000"),  # a book, no ticker
        top_of_book("upbit", "USDT-KRW", "1399", "1401"),
    ])
    # Mids: binance 100000.00, upbit 140010000, bithumb 139550000, USDT-KRW 1400; coinbase's last.
    reference = (Decimal("100000.00") + Decimal("100100.00")) / 2
    krw_per_usd = (Decimal("1399") + Decimal("1401")) / 2

    exited = pane.start_live(config, "--from-beginning", "--base", "BTC")
    screen = pane.wait_for(" 4 rows ")
    assert f"BTC reference: {reference} USD (median mid/last of 2 USD/USDT markets)" in screen, screen
    assert f"KRW per USD: {krw_per_usd} (median USDT-KRW of upbit)" in screen, screen
    rows = table_rows(screen)
    assert rows[("binance", "BTC-USDT")][2:5] == ["100500.00", "99999.99", "100000.01"], "BID and ASK: the book's"
    assert rows[("binance", "BTC-USDT")][6] == "mid"
    assert rows[("coinbase", "BTC-USD")][6] == "last"
    assert rows[("upbit", "BTC-KRW")][3:5] == ["140000000", "140020000"]
    assert rows[("upbit", "BTC-KRW")][-1] == expected_premium("140010000", krw_per_usd, reference)
    assert rows[("bithumb", "BTC-KRW")][2:5] == ["-", "139500000", "139600000"]
    assert rows[("bithumb", "BTC-KRW")][-1] == expected_premium("139550000", krw_per_usd, reference)
    pane.interrupt()
    pane.wait_for(f"{exited} 0")


def test_book_ladder_on_a_small_terminal_and_of_a_market_never_seen(kafka: str, tmp_path: Path,
                                                                    small_pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    bids = [(f"101233.{9 - digit}", "1") for digit in range(10)]
    asks = [(f"101234.{digit}", "1") for digit in range(10)]
    produce(kafka, topic_of(config, "book"), [book_record("okx", "BTC-USDT", "BTC-USDT", bids, asks, 7)])

    # Title, two notes, a blank line, the header and 20 levels: 25 lines. On 24, the view keeps
    # the last line free: 22 of them and a line for the 3 levels left out.
    exited = small_pane.start_live(config, "--book", "okx:BTC-USDT", "--from-beginning")
    screen = small_pane.wait_for("update_id 7")
    assert screen.rstrip().splitlines()[-1] == "... 3 more levels (a taller terminal shows them)", screen
    small_pane.interrupt()
    small_pane.wait_for(f"{exited} 0")

    # A market the topic never has (KRW-BTC: BTC-KRW as Upbit's wire names it) says so.
    exited = small_pane.start_live(config, "--book", "okx:KRW-BTC", "--from-beginning")
    small_pane.wait_for("no book record yet")
    small_pane.wait_for("no market of the 1 seen matches --book")
    small_pane.interrupt()
    small_pane.wait_for(f"{exited} 0")


def test_cross_exchange_view_on_80_columns_keeps_the_premium(kafka: str, tmp_path: Path, small_pane: Pane) -> None:
    config = override_file(tmp_path, kafka, {})
    produce(kafka, topic_of(config), [ticker("binance", "BTC-USDT", "100000.00000000"),
                                      ticker("upbit", "BTC-KRW", "141000000"), ticker("upbit", "USDT-KRW", "1400")])
    produce(kafka, topic_of(config, "book"), [top_of_book("binance", "BTC-USDT", "99999.99000000", "100000.01000000"),
                                              top_of_book("upbit", "BTC-KRW", "140990000", "141010000")])

    exited = small_pane.start_live(config, "--from-beginning", "--base", "BTC")
    screen = small_pane.wait_for(" 2 rows")
    lines = screen.splitlines()
    assert lines[0].endswith(CUT_MARK), "the title is longer than 80 columns: cut, and marked so"
    assert "BID, ASK left out: a wider terminal shows them" in screen, screen
    assert ["EXCHANGE", "SYMBOL", "LAST", "AGE", "PRICED", "PREMIUM"] in [line.split() for line in lines], screen
    upbit = next(line.split() for line in lines if line.startswith("upbit "))
    assert upbit[-1] == expected_premium("141000000", Decimal("1400"), Decimal("100000.00")), screen
    small_pane.interrupt()
    small_pane.wait_for(f"{exited} 0")
