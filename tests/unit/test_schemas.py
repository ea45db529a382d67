"""schemas/*.schema.json, the consumers' contract: valid JSON Schema, field for field the
record Structs of shared/record.py, and strict where a consumer relies on it (exact
decimal strings, never a float). tests/integration/test_demo.py validates real records
read back from Kafka against them."""

import json
import re
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from shared.config import EXCHANGES
from shared.record import Book, DeadLetter, Ticker
from tests.conftest import fixture_bytes
from tests.harness import ROOT
from workers.upbit import Upbit

SCHEMAS = ROOT / "schemas"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("name, struct", [("ticker", Ticker), ("book", Book), ("dead-letter", DeadLetter)])
def test_schema_names_every_field_of_the_record(name: str, struct: type[msgspec.Struct]) -> None:
    schema = validator(name).schema
    fields = [field.name for field in msgspec.structs.fields(struct)]
    assert list(schema["properties"]) == fields
    assert schema["required"] == fields
    assert schema["additionalProperties"] is False
    assert schema["properties"]["exchange"]["enum"] == list(EXCHANGES)


def readme_example() -> dict[str, Any]:
    section = (ROOT / "README.md").read_text().split("## The record", 1)[1]
    example = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert example, "no JSON example in the README's record section"
    return dict(json.loads(example.group(1)))


def upbit_record() -> dict[str, Any]:
    """A record as the worker publishes it, from a verbatim Upbit frame (no bid or ask: nulls)."""
    upbit = Upbit("wss://api.upbit.com/websocket/v1", "https://api.upbit.com")
    upbit.learn([upbit.market("BTC", "KRW")])
    [ticker] = upbit.parse_ws(fixture_bytes("upbit", "ws_ticker_1.json"), 1_795_501_532_843_935_493)
    ticker.run, ticker.seq = "190f0ad9f9354d2d", 1
    return dict(msgspec.json.decode(msgspec.json.encode(ticker)))


def test_published_records_are_valid() -> None:
    ticker = validator("ticker")
    ticker.validate(readme_example())
    ticker.validate(upbit_record())
    letter = DeadLetter("binance", "DecodeError: JSON is malformed", 1, "ws", "wss://stream.binance.com/stream",
                        "\x00garbage", "190f0ad9f9354d2d")
    validator("dead-letter").validate(msgspec.json.decode(msgspec.json.encode(letter)))


@pytest.mark.parametrize("change", [
    {"last": 158201000.0},  # a float: the digits a consumer trusts are gone
    {"last": "1.58201E8"},  # an exponent
    {"bid": ""},
    {"symbol": "btc-krw"},
    {"source": "replay"},
    {"seq": 0},
    {"price": "1"},  # a field no Struct has
])
def test_schema_refuses_what_no_worker_publishes(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validator("ticker").validate(upbit_record() | change)


def test_a_book_record_is_valid_and_a_float_or_exponent_is_not() -> None:
    """A record as the worker publishes it, from the verbatim Upbit book frame (1.16539E8 on the wire)."""
    upbit = Upbit("wss://api.upbit.com/websocket/v1", "https://api.upbit.com")
    [message] = upbit.parse_book_ws(fixture_bytes("upbit", "book_ws_orderbook_snapshot_probe_2026_trimmed.json"), 1)
    record = Book("upbit", "BTC-KRW", message.raw, list(message.bids), list(message.asks),  # type: ignore[arg-type]
                  10, None, message.exchange_ts, 1_790_134_742_200_000_000, "ws", "190f0ad9f9354d2d", 1)
    book = validator("book")
    value = dict(msgspec.json.decode(msgspec.json.encode(record)))
    book.validate(value)
    for wrong in ([[116538000.0, "0.08120946"]], [["1.16538E8", "0.08120946"]], [["116538000", "0.1", "3"]]):
        with pytest.raises(ValidationError):
            book.validate({**value, "bids": wrong})
