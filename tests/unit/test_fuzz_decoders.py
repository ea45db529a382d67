"""Every decoder, fed mutations of its real samples through the worker's own frame path.

The frames are the verbatim samples in tests/fixtures/<exchange>/, mutated at the byte
level (truncated, bytes flipped, inserted or deleted, invalid UTF-8, empty) and at the
JSON level (a value replaced by another JSON type, keys dropped or duplicated, numbers
made huge, written with exponents, or buried in nested garbage). They go through
Worker.on_frame and Worker.on_rest_body, exactly as the live runtime and --replay feed
them, into an in-memory sink. Properties:

  * no exception leaves the worker, except ServerRestart (a reconnect request);
  * a frame that fails becomes exactly one dead letter, or one exchange error, and no
    record;
  * every number a record carries is plain decimal text equal to a number written
    somewhere in the frame: nothing invented, rounded or passed through unchecked.
"""

import asyncio
import json
import logging
import re
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinstream.check import venue_class
from shared import config as configuration
from shared.record import DeadLetter, FrameError, ServerRestart, Ticker
from shared.stats import Stats
from shared.venue import Market, Venue
from shared.worker import Worker
from tests.conftest import FIXTURES
from tests.unit.test_kraken import REST_ASSET_PAIR, REST_TICKER

PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Any number as a frame may write it: bare or quoted, with or without an exponent.
NUMBER_IN_FRAME = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
PRICE_FIELDS = ("last", "bid", "ask", "bid_size", "ask_size", "open_24h", "high_24h", "low_24h",
                "volume_24h", "quote_volume_24h")
# Every quote a sample's market list may hold, so a sampled list teaches all its markets.
SAMPLE_QUOTES = ["KRW", "USDT", "USDC", "USD", "EUR", "BTC"]
UNKNOWN_SYMBOL = re.compile(r"unknown symbol '([^']*)'")
EXAMPLES_PER_TRANSPORT = 400


class MemorySink:
    """The Sink protocol in memory: records and dead letters kept in lists, in order."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.run = "fuzz"
        self.tickers: list[Ticker] = []
        self.dead_letters: list[DeadLetter] = []

    def publish(self, tickers: list[Ticker]) -> None:
        self.tickers += tickers
        self.stats.records += len(tickers)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)
        self.stats.dead_letters += 1

    def queue_depth(self) -> int:
        return 0

    def serve_deliveries(self) -> None:
        """Nothing to serve: records are kept in memory at once."""

    async def serve(self) -> None:
        # Nothing to flush or poll: wait until the worker cancels this task at stop.
        await asyncio.Event().wait()

    def close(self, timeout_s: float) -> None:
        """Nothing is buffered: every record is in the lists already."""

    def forget(self) -> None:
        self.tickers.clear()
        self.dead_letters.clear()


# --- The exchanges' samples, and a venue that knows their markets. ------------------

@dataclass(frozen=True)
class Samples:
    ws: list[bytes]
    rest: list[bytes]


# Doc samples of a single-item response, for endpoints the worker calls in their list form.
AS_THE_WORKER_ASKS: dict[str, Callable[[bytes], bytes]] = {
    "binance/rest_ticker_24hr_doc.json": lambda body: b"[" + body + b"]",  # ?symbols=[...]
}


# REST bodies built in their documented shapes, where the reference samples hold none (Kraken's
# REST ticker capture is kept aside for acceptance checks).
DOCUMENTED_REST: dict[str, list[bytes]] = {"kraken": [REST_ASSET_PAIR, REST_TICKER]}


@cache
def samples(exchange: str) -> Samples:
    files = sorted(path for path in (FIXTURES / exchange).iterdir() if path.suffix in (".json", ".txt"))

    def read(path: Path) -> bytes:
        return AS_THE_WORKER_ASKS.get(f"{exchange}/{path.name}", bytes)(path.read_bytes())

    return Samples(ws=[read(path) for path in files if not path.name.startswith("rest_")],
                   rest=[read(path) for path in files if path.name.startswith("rest_")]
                   + DOCUMENTED_REST.get(exchange, []))


@dataclass
class Prepared:
    worker: Worker
    venue: Venue  # learned every sample's markets; each example works on a copy of it
    sink: MemorySink
    market_list_url: str
    ticker_url: str
    # The samples that decode to records, which mutations are drawn from more often.
    ticker_frames: list[bytes]
    ticker_bodies: list[bytes]


def _learn_named_symbols(venue: Venue, parse: Callable[[Venue], object]) -> None:
    """Parse until no 'unknown symbol' is left, learning each one named as it comes.

    Each try parses on a copy, so that state a parse keeps (Coinone's newest ticker id)
    does not make the real run drop the sample. The unified name given is irrelevant to
    these properties; only the raw id must be known.
    """
    for _ in range(2000):
        try:
            parse(deepcopy(venue))
            return
        except FrameError as error:
            named = UNKNOWN_SYMBOL.search(str(error))
            if named is None:
                return
            raw = named.group(1)
            venue.learn([Market(raw=raw, base=re.sub(r"[^A-Z0-9]", "", raw.upper()) or "X", quote="SAMPLE")])
        except Exception:  # noqa: BLE001 - a sample that is not a ticker teaches nothing
            return


@cache
def prepared_for(exchange: str) -> Prepared:
    """A worker on the exchange's shipped config, with a venue that knows every sample's markets."""
    loaded = configuration.load(None)
    exchange_config = loaded.exchange(exchange)
    venue = venue_class(exchange)(exchange_config.ws_url, exchange_config.rest_url)
    stats = Stats()
    sink = MemorySink(stats)
    log = logging.getLogger(f"coinstream.fuzz.{exchange}")
    worker = Worker(venue, exchange_config, loaded.runtime_for(exchange), sink, stats, log)
    worker.quotes = SAMPLE_QUOTES
    market_list_url = venue.market_list_url()
    found = samples(exchange)
    for body in found.rest:  # market lists first: Kraken's REST keys come from AssetPairs
        try:
            venue.parse_rest(market_list_url, body, 0, SAMPLE_QUOTES)
        except Exception:  # noqa: BLE001, S112 - a ticker body is no market list
            continue
    some_quote = (exchange_config.quotes or [exchange_config.symbols[0].split("-")[1]])[0]  # type: ignore[index]
    # The last URL: Kraken puts an AssetPairs lookup first for pairs it has no REST key for.
    [*_, ticker_url] = venue.rest_ticker_urls([venue.market("BTC", some_quote)])
    for frame in found.ws:
        _learn_named_symbols(venue, lambda scratch: scratch.parse_ws(frame, 0))
    for body in found.rest:
        _learn_named_symbols(venue, lambda scratch: scratch.parse_rest(ticker_url, body, 0, SAMPLE_QUOTES))
    return Prepared(worker, venue, sink, market_list_url, ticker_url,
                    [frame for frame in found.ws if _makes_records(lambda: deepcopy(venue).parse_ws(frame, 0))],
                    [body for body in found.rest if _makes_records(
                        lambda: deepcopy(venue).parse_rest(ticker_url, body, 0, SAMPLE_QUOTES))])


def _makes_records(parse: Callable[[], list[Ticker]]) -> bool:
    try:
        return bool(parse())
    except Exception:  # noqa: BLE001 - an ack, an error, a market list
        return False


# --- Mutations. ----------------------------------------------------------------------

class JsonNumber(str):
    """A JSON number kept as its text, so re-encoding writes the sample's own digits."""


class JsonObject(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in order, so that a key may repeat."""


TreePath: TypeAlias = tuple[int, ...]  # child indexes from the root


def load_tree(text: bytes) -> Any:
    return json.loads(text, parse_float=JsonNumber, parse_int=JsonNumber, object_pairs_hook=JsonObject)


def dump_tree(node: Any) -> str:
    if isinstance(node, JsonObject):
        return "{" + ",".join(f"{json.dumps(key)}:{dump_tree(value)}" for key, value in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dump_tree(item) for item in node) + "]"
    if isinstance(node, JsonNumber):
        return str(node)
    return json.dumps(node)


def children(node: Any) -> list[Any]:
    if isinstance(node, JsonObject):
        return [value for _, value in node]
    return node if isinstance(node, list) else []


def paths(node: Any, at: TreePath = ()) -> list[TreePath]:
    found = [at]
    for index, child in enumerate(children(node)):
        found.extend(paths(child, (*at, index)))
    return found


def node_at(tree: Any, path: TreePath) -> Any:
    for index in path:
        tree = children(tree)[index]
    return tree


def numeric_paths(tree: Any) -> list[TreePath]:
    """Paths to the numbers, bare or quoted: where a price lives."""
    return [path for path in paths(tree)[1:]
            if isinstance(node := node_at(tree, path), str) and NUMBER_IN_FRAME.fullmatch(node.encode())]


def edit(tree: Any, path: TreePath, change: Callable[[list[Any], int], None]) -> None:
    """Apply `change(parent, index)` to the node at `path` (not the root) inside its parent."""
    parent = tree
    for index in path[:-1]:
        parent = children(parent)[index]
    change(parent, path[-1])


def _put(value: Any) -> Callable[[list[Any], int], None]:
    def change(parent: list[Any], index: int) -> None:
        parent[index] = (parent[index][0], value) if isinstance(parent, JsonObject) else value
    return change


def _drop(parent: list[Any], index: int) -> None:
    del parent[index]


def _duplicate(parent: list[Any], index: int) -> None:
    parent.insert(index + 1, deepcopy(parent[index]))


big_exponent = st.integers(-400, 400)
numbers_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.builds(lambda digits, exponent: f"{digits}E{exponent:+d}", st.integers(-10**30, 10**30), big_exponent),
    st.builds(lambda digits, exponent: f"{digits}e{exponent}", st.integers(0, 999), big_exponent),
    st.integers(1, 400).map(lambda width: "9" * width),
    st.integers(1, 400).map(lambda width: "0." + "0" * width + "1"),
    st.sampled_from(["0", "-0", "0E-8", "1.16539E8", "00012", "1.", ".5", "1e", "NaN", "Infinity", "-", "1_000",
                     "٣", "1.5.3", " 1", "1 ", "+1", "0x1F", "1E999999999", "1e-999999999"]),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12),
    numbers_text.filter(lambda text: PLAIN_DECIMAL.fullmatch(text) is not None).map(JsonNumber),
    numbers_text,  # as a JSON string
)
json_values = st.recursive(json_scalars,
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.lists(st.tuples(st.text(max_size=6), inner), max_size=3)
                                                   .map(JsonObject)),
                           max_leaves=8)
nested_garbage = st.integers(1, 5000).map(lambda depth: JsonNumber("[" * depth + "]" * depth))


@st.composite
def json_mutation(draw: st.DrawFn, sample: bytes) -> bytes:
    tree = load_tree(sample)
    # Mostly one change, so that many mutants still decode and their numbers get checked.
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(["replace", "number", "number", "garbage", "drop", "duplicate", "root"]))
        if kind == "root":
            tree = draw(st.one_of(json_values, nested_garbage))
            continue
        candidates = (kind == "number" and numeric_paths(tree)) or paths(tree)[1:]
        if not candidates:
            continue
        path = draw(st.sampled_from(candidates))
        if kind == "replace":
            edit(tree, path, _put(draw(json_values)))
        elif kind == "number":
            text = draw(numbers_text)
            # Mostly the sample's own kind (bare or quoted), so that the decoder reads it.
            bare = isinstance(node_at(tree, path), JsonNumber) == draw(st.sampled_from([True, True, True, False]))
            edit(tree, path, _put(JsonNumber(text) if bare else text))
        elif kind == "garbage":
            edit(tree, path, _put(draw(nested_garbage)))
        else:
            edit(tree, path, _drop if kind == "drop" else _duplicate)
    return dump_tree(tree).encode()


@st.composite
def byte_mutation(draw: st.DrawFn, sample: bytes) -> bytes:
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "invalid_utf8", "empty"]))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "invalid_utf8":
            data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80"]))
        elif kind == "empty":
            data.clear()
    return bytes(data)


def _is_json(sample: bytes) -> bool:
    try:
        load_tree(sample)
    except ValueError:
        return False
    return True


def mutated(sample_list: list[bytes], ticker_samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mutants of any sample, half of them of a sample that decodes to records."""
    def of(sample: bytes) -> st.SearchStrategy[bytes]:
        if _is_json(sample):
            return st.one_of(byte_mutation(sample), json_mutation(sample))
        return byte_mutation(sample)
    return st.one_of(st.sampled_from(ticker_samples), st.sampled_from(sample_list)).flatmap(of)


# --- The properties. -----------------------------------------------------------------

def numbers_in(frame: bytes) -> set[Decimal]:
    return {Decimal(match.decode()) for match in NUMBER_IN_FRAME.findall(frame)}


def check_outcome(prepared: Prepared, feed: Callable[[Worker], int], frame: bytes, transport: str) -> None:
    worker, sink = prepared.worker, prepared.sink
    worker.venue = deepcopy(prepared.venue)  # examples don't teach each other symbols
    sink.forget()
    errors_before = worker.stats.exchange_errors
    try:
        published = feed(worker)
    except ServerRestart:
        # The socket reconnects at once: a restart notice, not a failure. REST has no such path.
        assert transport == "ws", "ServerRestart escaped the REST path"
        published = 0
    failures = len(sink.dead_letters) + worker.stats.exchange_errors - errors_before
    assert failures <= 1, f"{failures} failures counted for one frame"
    if failures:
        assert not sink.tickers, "a failed frame also published records"
    assert published == len(sink.tickers)
    if not sink.tickers:
        return
    allowed = numbers_in(frame)
    for ticker in sink.tickers:
        for field in PRICE_FIELDS:
            value = getattr(ticker, field)
            if value is None:
                continue
            assert isinstance(value, str) and PLAIN_DECIMAL.fullmatch(value), f"{field}={value!r} is not plain"
            assert Decimal(value) in allowed, f"{field}={value!r} is no number of the frame"
        assert ticker.exchange_ts is None or type(ticker.exchange_ts) is int


FUZZ = settings(max_examples=EXAMPLES_PER_TRANSPORT, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("exchange", configuration.EXCHANGES)
def test_every_sample_learns_its_markets(exchange: str) -> None:
    """The fuzzing below starts from samples that decode to records: otherwise it proves little."""
    prepared = prepared_for(exchange)
    found = samples(exchange)
    from_socket = from_rest = 0
    for frame in found.ws:
        check_outcome(prepared, lambda worker: worker.on_frame(frame, 1, "wss://fuzz"), frame, "ws")
        from_socket += len(prepared.sink.tickers)
    for body in found.rest:
        check_outcome(prepared, lambda worker: worker.on_rest_body(body, 1, prepared.ticker_url), body, "rest")
        from_rest += len(prepared.sink.tickers)
    assert from_socket > 0, f"no {exchange} sample frame decodes to a record"
    assert from_rest > 0, f"no {exchange} sample REST body decodes to a record"


@pytest.mark.parametrize("transport", ["ws", "rest"])
@pytest.mark.parametrize("exchange", configuration.EXCHANGES)
@FUZZ
@given(data=st.data())
def test_mutated_payloads(exchange: str, transport: str, data: st.DataObject) -> None:
    prepared = prepared_for(exchange)
    found = samples(exchange)
    feed: Callable[[Worker], int]
    if transport == "ws":
        payload = data.draw(mutated(found.ws, prepared.ticker_frames))
        feed = lambda worker: worker.on_frame(payload, 1, "wss://fuzz")  # noqa: E731
    else:
        payload = data.draw(mutated(found.rest, prepared.ticker_bodies))
        url = data.draw(st.sampled_from([prepared.ticker_url, prepared.market_list_url]))
        feed = lambda worker: worker.on_rest_body(payload, 1, url)  # noqa: E731
    check_outcome(prepared, feed, payload, transport)


def _outcome(prepared: Prepared, feed: Callable[[Worker], int]) -> tuple[list[Ticker], list[str], int]:
    """What `feed` publishes, dead-letters (the payloads, sorted) and counts as exchange
    errors, on a fresh copy of the venue."""
    worker, sink = prepared.worker, prepared.sink
    worker.venue = deepcopy(prepared.venue)
    sink.forget()
    errors_before = worker.stats.exchange_errors
    try:
        feed(worker)
    except ServerRestart:
        pass
    return (list(sink.tickers), sorted(letter.raw for letter in sink.dead_letters),
            worker.stats.exchange_errors - errors_before)


@pytest.mark.parametrize("exchange", configuration.EXCHANGES)
@FUZZ
@given(data=st.data())
def test_a_read_of_mutants_equals_its_frames_one_by_one(exchange: str, data: st.DataObject) -> None:
    """A socket read's tickers are checked together (Worker.on_frames: its numbers in one
    pass, then the read parsed again when one is not plain; a zero last price refused by
    its frame): whatever the frames, the read publishes, dead-letters and counts exactly
    what the same frames do handed over one at a time with their numbers checked at once.
    The same records in the same order, the same dead letters (a frame refused for a zero
    last price is dead-lettered once the read is parsed, after the read's other failures:
    their order may differ)."""
    prepared = prepared_for(exchange)
    found = samples(exchange)
    frames = data.draw(st.lists(st.one_of(st.sampled_from(prepared.ticker_frames),
                                          mutated(found.ws, prepared.ticker_frames)), min_size=2, max_size=6))

    def one_by_one(worker: Worker) -> int:
        """Each frame alone, its numbers checked at once, as a venue whose parse keeps state
        has them. Through on_frames, as the read: a frame nested as deep as the decoder's
        recursion limit fails or not by the Python stack's depth, which on_frame deepens."""
        worker.venue.parse_repeatable = False  # type: ignore[misc]  # on _outcome's copy alone
        published = 0
        for frame in frames:
            try:
                published += worker.on_frames([frame], 1, "wss://fuzz")
            except ServerRestart:
                pass
        return published

    assert _outcome(prepared, lambda worker: worker.on_frames(frames, 1, "wss://fuzz")) == _outcome(
        prepared, one_by_one)
