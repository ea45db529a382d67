"""Values no real market has never become a record: prices are positive, sizes and
volumes zero or more, a number is written in at most 40 characters, so has at most 40
significant digits (else the frame is dead-lettered: shared.numbers, the decode Structs'
Number type, shared.record.check_values), and an exchange_ts outside 2009-01-01 ..
arrival + 1 day becomes null, counted. The shapes real exchanges send for "nothing here" pass: Korbit's "0" best
prices on a stopped pair, Upbit's 0E-8, OKX's "" (null)."""

import copy
import logging

import msgspec
import pytest

from shared.config import ExchangeConfig, Runtime
from shared.numbers import NumberError
from shared.record import FrameError, Ticker, check_values
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.venue import Venue
from shared.worker import Worker
from tests.conftest import fixture_bytes
from workers.binance import Binance
from workers.coinone import Coinone
from workers.korbit import Korbit
from workers.okx import Okx
from workers.upbit import Upbit

# 2022-05-29: when the Binance sample was sent; a record arrives just after.
RECEIVED_NS = 1_653_812_650_400_000_000
BINANCE_TICKER = fixture_bytes("binance", "ws_ticker_combined_1.json")


def _venue(venue_class: type[Venue], *symbols: str) -> Venue:
    venue = venue_class("ws://127.0.0.1/ws", "http://127.0.0.1")
    venue.learn([venue.market(*symbol.split("-")) for symbol in symbols])
    return venue


def _binance(frame: bytes) -> list[Ticker]:
    return _venue(Binance, "ETH-USDT").parse_ws(frame, RECEIVED_NS)


def _with(field: str, value: str, frame: bytes = BINANCE_TICKER) -> bytes:
    """The Binance sample with one field's string value replaced."""
    start = frame.index(f'"{field}":"'.encode()) + len(field) + 4
    return frame[:start] + value.encode() + frame[frame.index(b'"', start):]


def test_the_sample_passes_untouched() -> None:
    tickers = _binance(BINANCE_TICKER)
    before = copy.copy(tickers)
    assert check_values(tickers) == 0
    assert tickers == before


@pytest.mark.parametrize("field, value, error, problem", [
    ("c", "-5", NumberError, "negative: '-5'"),
    ("c", "-0", NumberError, "negative: '-0'"),
    ("b", "-1792.83", NumberError, "negative: '-1792.83'"),
    ("v", "-0.5", NumberError, "negative: '-0.5'"),
    ("c", "1" * 5000, msgspec.ValidationError, r"Expected `str` of length <= 40 - at `\$.data.c`"),
    ("q", "1" * 41, msgspec.ValidationError, r"Expected `str` of length <= 40 - at `\$.data.q`"),
    ("q", "1E+40", NumberError, "41 characters, more than 40"),
])
def test_values_no_market_has_are_refused(field: str, value: str, error: type[Exception], problem: str) -> None:
    with pytest.raises(error, match=problem):
        check_values(_binance(_with(field, value)))


@pytest.mark.parametrize("number, problem", [
    ("1" * 41, "41 characters, more than 40"), ("-2083.82485091", "negative"), ("-0E-8", "negative"),
    ("1E-45", "47 characters, more than 40"),
])
def test_raw_json_numbers_no_market_has_are_refused(number: str, problem: str) -> None:
    with pytest.raises(NumberError, match=problem):
        _sample(Upbit, "BTC-KRW", "ws_ticker_1.json", UPBIT_RECEIVED_NS,
                (b'"acc_trade_volume_24h":2083.82485091', f'"acc_trade_volume_24h":{number}'.encode()))


def test_a_last_price_of_zero_is_refused() -> None:
    with pytest.raises(FrameError, match="last 0.00000000: a price must be positive"):
        check_values(_binance(_with("c", "0.00000000")))


@pytest.mark.parametrize("value", [
    "1" * 20 + "." + "2" * 19,  # 40 characters
    "1" * 40,
    "95078733694.3792000000000000",  # Upbit's acc_trade_price, the longest an exchange was seen to write
])
def test_numbers_of_40_characters_pass(value: str) -> None:
    [ticker] = _binance(_with("q", value))
    assert check_values([ticker]) == 0
    assert ticker.quote_volume_24h == value


def test_zero_best_prices_and_day_prices_are_no_price_and_zero_sizes_stay() -> None:
    frame = BINANCE_TICKER
    for field, value in (("b", "0.00000000"), ("o", "0"), ("h", "0"), ("l", "0.0"), ("A", "0.00000000"), ("v", "0")):
        frame = _with(field, value, frame)
    [ticker] = _binance(frame)
    assert check_values([ticker]) == 0
    # No bid: no bid price, and no size for it. The ask's size of zero is a size.
    assert (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size) == (None, None, "1792.84000000", "0.00000000")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h, ticker.volume_24h) == (None, None, None, "0")


@pytest.mark.parametrize("event_ms, kept", [
    (10**30 - 1, False),  # beyond int64
    (-1, False),
    (1_230_767_999_999, False),  # just before 2009-01-01
    (1_230_768_000_000, True),
    (RECEIVED_NS // 1_000_000 + 86_400_000, True),  # a day ahead of arrival: a skewed clock
    (RECEIVED_NS // 1_000_000 + 86_400_001, False),
])
def test_an_exchange_ts_out_of_range_becomes_null_and_is_counted(event_ms: int, kept: bool) -> None:
    [ticker] = _binance(BINANCE_TICKER.replace(b'"E":1653812650349', f'"E":{event_ms}'.encode()))
    assert check_values([ticker]) == (0 if kept else 1)
    assert ticker.exchange_ts == (event_ms if kept else None)


def _sample(venue_class: type[Venue], symbol: str, fixture: str, received_ns: int,
            *replacements: tuple[bytes, bytes]) -> list[Ticker]:
    """The tickers of a verbatim sample, with some of its values replaced."""
    frame = fixture_bytes(venue_class.name, fixture)
    for old, new in replacements:
        assert old in frame
        frame = frame.replace(old, new)
    return _venue(venue_class, symbol).parse_ws(frame, received_ns)


def test_korbit_stopped_pair_zero_best_prices_are_no_price() -> None:
    tickers = _sample(Korbit, "BTC-KRW", "ws_ticker_1.json", 1_730_365_099_100_000_000,
                      (b'"bestAskPrice":"100651000"', b'"bestAskPrice":"0"'),
                      (b'"bestBidPrice":"100650000"', b'"bestBidPrice":"0.00"'))
    assert check_values(tickers) == 0
    assert (tickers[0].bid, tickers[0].ask, tickers[0].last) == (None, None, "100650000")


UPBIT_RECEIVED_NS = 1_758_875_205_300_000_000
UPBIT_ZERO_VOLUME = (b'"acc_trade_volume_24h":2083.82485091', b'"acc_trade_volume_24h":0E-8')


def test_upbit_zero_written_0e_8() -> None:
    tickers = _sample(Upbit, "BTC-KRW", "ws_ticker_1.json", UPBIT_RECEIVED_NS, UPBIT_ZERO_VOLUME,
                      (b'"opening_price":158219000.00000000', b'"opening_price":0E-8'))
    assert check_values(tickers) == 0
    assert (tickers[0].volume_24h, tickers[0].open_24h) == ("0.00000000", None)
    with pytest.raises(FrameError, match="last 0.00000000: a price must be positive"):
        check_values(_sample(Upbit, "BTC-KRW", "ws_ticker_1.json", UPBIT_RECEIVED_NS, UPBIT_ZERO_VOLUME,
                             (b'"trade_price":158201000.00000000', b'"trade_price":0E-8')))


def test_okx_empty_strings_are_null_not_refused() -> None:
    tickers = _sample(Okx, "BTC-USDT", "ws_ticker_1.json", 1_652_459_225_000_000_000,
                      (b'"bidPx":"30228.6","bidSz":"0.23393"', b'"bidPx":"","bidSz":""'))
    assert check_values(tickers) == 0
    assert (tickers[0].bid, tickers[0].bid_size, tickers[0].ask) == (None, None, "30228.7")


def test_the_worker_dead_letters_refused_frames_and_counts_nulled_timestamps(
        capsys: pytest.CaptureFixture[str]) -> None:
    exchange = ExchangeConfig(ws_url="ws://127.0.0.1:1/stream", rest_url="http://127.0.0.1:1",
                              symbols=["ETH-USDT"])
    stats = Stats()
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(), StdoutSink(stats), stats,
                    logging.getLogger("coinstream.test"))
    assert worker.on_frame(_with("c", "-5"), RECEIVED_NS, exchange.ws_url) == 0
    assert worker.on_frame(BINANCE_TICKER.replace(b'"E":1653812650349', b'"E":-1'), RECEIVED_NS, exchange.ws_url) == 1
    assert (stats.dead_letters, stats.records, stats.timestamps_nulled) == (1, 1, 1)
    captured = capsys.readouterr()
    assert '"exchange_ts":null' in captured.out and "negative: '-5'" in captured.err



class CountingSink(StdoutSink):
    """StdoutSink that keeps each publish call's tickers."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self.calls: list[list[Ticker]] = []

    def publish(self, tickers: list[Ticker]) -> None:
        self.calls.append(list(tickers))
        super().publish(tickers)


def test_a_read_is_published_in_one_call_and_a_zero_last_price_dead_letters_its_frame_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Worker.on_frames: a read's tickers are checked and handed to the sink together (one
    Python call a read, not three a frame: the hot path's instructions, bench.profile);
    a frame whose last price is zero is dead-lettered, its neighbours published in order."""
    exchange = ExchangeConfig(ws_url="ws://127.0.0.1:1/stream", rest_url="http://127.0.0.1:1",
                              symbols=["ETH-USDT"])
    stats = Stats()
    sink = CountingSink(stats)
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(), sink, stats,
                    logging.getLogger("coinstream.test"))
    second = _with("c", "2.5")
    assert worker.on_frames([BINANCE_TICKER, second, BINANCE_TICKER], RECEIVED_NS, exchange.ws_url) == 3
    assert [len(call) for call in sink.calls] == [3]
    assert [ticker.last for ticker in sink.calls[0]] == [_binance(BINANCE_TICKER)[0].last, "2.5",
                                                         _binance(BINANCE_TICKER)[0].last]

    sink.calls.clear()
    zero = _with("c", "0.00000000")
    assert worker.on_frames([second, zero, _with("c", "3.5")], RECEIVED_NS, exchange.ws_url) == 2
    assert [[ticker.last for ticker in call] for call in sink.calls] == [["2.5", "3.5"]]
    assert [ticker.seq for ticker in sink.calls[0]] == [4, 5]
    assert (stats.dead_letters, stats.records, stats.frames) == (1, 5, 6)
    assert "a price must be positive" in capsys.readouterr().err


def _binance_worker(sink: StdoutSink, stats: Stats) -> Worker:
    exchange = ExchangeConfig(ws_url="ws://127.0.0.1:1/stream", rest_url="http://127.0.0.1:1",
                              symbols=["ETH-USDT"])
    return Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, Runtime(), sink, stats,
                  logging.getLogger("coinstream.test"))


def test_a_reads_numbers_are_checked_together_and_a_frame_with_a_bad_one_dead_lettered_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Worker.on_frames checks the numbers of a read's tickers in one pass
    (shared.numbers.check_read_later). When one is not plain the read is parsed again with
    each ticker's numbers checked at once: an exponent is expanded, a negative number
    dead-letters its frame alone, and a frame that failed the first parse for another
    reason (no JSON at all) is dead-lettered once, not again."""
    stats = Stats()
    sink = CountingSink(stats)
    worker = _binance_worker(sink, stats)
    url = "ws://127.0.0.1:1/stream"
    frames = [BINANCE_TICKER, _with("c", "1.5E-7"), b"{not json", _with("v", "-0.5"), _with("c", "2.5")]
    assert worker.on_frames(frames, RECEIVED_NS, url) == 3
    assert [[ticker.last for ticker in call] for call in sink.calls] == [
        [_binance(BINANCE_TICKER)[0].last, "0.00000015", "2.5"]]
    assert [ticker.seq for ticker in sink.calls[0]] == [1, 2, 3]
    assert (stats.dead_letters, stats.records, stats.frames) == (2, 3, 5)
    err = capsys.readouterr().err
    assert err.count("dead-letter ") == 2 and "negative: '-0.5'" in err

    # The check is the read's alone: the next read, and a REST body, are checked at once.
    assert worker.on_frames([_with("c", "3.5")], RECEIVED_NS, url) == 1
    assert _binance(_with("c", "2E+3"))[0].last == "2000"
    with pytest.raises(NumberError):
        _binance(_with("c", "-1"))


def test_a_reads_check_catches_what_no_ticker_alone_shows() -> None:
    """Joined, texts that are each a number's piece must not make one: "1," and "5" are
    two numbers to the join but no number each; a comma inside a text is refused."""
    stats = Stats()
    sink = CountingSink(stats)
    worker = _binance_worker(sink, stats)
    frames = [_with("c", "1,5"), _with("c", "2.5")]
    assert worker.on_frames(frames, RECEIVED_NS, "ws://127.0.0.1:1/stream") == 1
    assert [[ticker.last for ticker in call] for call in sink.calls] == [["2.5"]]
    assert stats.dead_letters == 1


def test_okx_empty_strings_in_a_read_are_null() -> None:
    """An OKX "" fails the read's one-pass check; parsed again, it is a null, as alone."""
    okx = _venue(Okx, "BTC-USDT")
    exchange = ExchangeConfig(ws_url="ws://127.0.0.1:1/ws/v5/public", rest_url="http://127.0.0.1:1",
                              symbols=["BTC-USDT"])
    stats = Stats()
    sink = CountingSink(stats)
    worker = Worker(okx, exchange, Runtime(), sink, stats, logging.getLogger("coinstream.test"))
    sample = fixture_bytes("okx", "ws_ticker_1.json")
    empty = sample.replace(b'"bidPx":"30228.6","bidSz":"0.23393"', b'"bidPx":"","bidSz":""')
    received_ns = 1_652_459_225_000_000_000
    assert worker.on_frames([sample, empty, sample], received_ns, exchange.ws_url) == 3
    assert [(ticker.bid, ticker.bid_size) for ticker in sink.calls[0]] == [
        ("30228.6", "0.23393"), (None, None), ("30228.6", "0.23393")]
    assert stats.dead_letters == 0


def test_a_coinone_read_with_a_zero_last_price_keeps_its_other_tickers(capsys: pytest.CaptureFixture[str]) -> None:
    """Coinone drops a ticker id it has seen (a repeat): a read with one zero last price
    used to be parsed again, and its other tickers, seen once already, were dropped as
    repeats, neither published nor counted. The refused frame alone is dead-lettered."""
    sample = fixture_bytes("coinone", "ws_ticker_1.json")
    ticker_id = b"1790133796484001"
    exchange = ExchangeConfig(ws_url="wss://127.0.0.1:1", rest_url="http://127.0.0.1:1", symbols=["BTC-KRW"])
    stats = Stats()
    sink = CountingSink(stats)
    worker = Worker(_venue(Coinone, "BTC-KRW"), exchange, Runtime(), sink, stats, logging.getLogger("coinstream.test"))

    def frame(number: int, last: bytes = b"116380000") -> bytes:
        return sample.replace(ticker_id, b"%d" % (int(ticker_id) + number)).replace(
            b'"last":"116380000"', b'"last":"' + last + b'"')

    received_ns = 1_790_133_796_500_000_000
    assert worker.on_frames([frame(1), frame(2, b"0"), frame(3), frame(3)], received_ns, exchange.ws_url) == 2
    assert [(ticker.last, ticker.seq) for ticker in sink.calls[0]] == [("116380000", 1), ("116380000", 2)]
    assert (stats.dead_letters, stats.records) == (1, 2)
    assert "last 0: a price must be positive" in capsys.readouterr().err


def test_a_refused_frames_nulled_timestamp_is_not_counted_as_published() -> None:
    """timestamps_nulled counts records published with a null exchange_ts: a frame
    dead-lettered for its zero last price published none, whatever check_values nulled in it."""
    sample = fixture_bytes("coinone", "ws_ticker_1.json")
    exchange = ExchangeConfig(ws_url="wss://127.0.0.1:1", rest_url="http://127.0.0.1:1", symbols=["BTC-KRW"])
    stats = Stats()
    worker = Worker(_venue(Coinone, "BTC-KRW"), exchange, Runtime(), CountingSink(stats), stats,
                    logging.getLogger("coinstream.test"))

    def frame(number: int, last: bytes) -> bytes:  # dated 1990: out of range, nulled
        return (sample.replace(b"1790133796484001", b"%d" % (1790133796484001 + number))
                .replace(b'"last":"116380000"', b'"last":"' + last + b'"')
                .replace(b'"timestamp":1790133796484', b'"timestamp":631152000000'))

    assert worker.on_frames([frame(1, b"116380000"), frame(2, b"0")], 1_790_133_796_500_000_000,
                            exchange.ws_url) == 1
    assert (stats.records, stats.dead_letters, stats.timestamps_nulled) == (1, 1, 1)
