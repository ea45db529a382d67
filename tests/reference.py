"""Independent reference parsers for the simulator's journal: stdlib json with Decimal,
written the naive way, so integration tests check the workers' numbers against a
second implementation rather than against themselves.

Each function takes one journal line (a frame exactly as the simulator sent it) and
returns {"raw_symbol", "exchange_ts", <number fields as Decimal>} for a ticker frame,
or None for anything else.
"""

import json
from decimal import Decimal
from typing import Any, Callable

Expected = dict[str, Any]


def _decimal_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def binance(line: str) -> Expected | None:
    frame = json.loads(line)
    data = frame.get("data") if isinstance(frame, dict) else None
    if not isinstance(data, dict) or data.get("e") != "24hrTicker":
        return None
    return {
        "raw_symbol": data["s"], "exchange_ts": data["E"],
        "last": Decimal(data["c"]), "bid": Decimal(data["b"]), "ask": Decimal(data["a"]),
        "bid_size": Decimal(data["B"]), "ask_size": Decimal(data["A"]),
        "open_24h": Decimal(data["o"]), "high_24h": Decimal(data["h"]), "low_24h": Decimal(data["l"]),
        "volume_24h": Decimal(data["v"]), "quote_volume_24h": Decimal(data["q"]),
    }


def upbit(line: str) -> Expected | None:
    frame = _decimal_json(line)
    if not isinstance(frame, dict) or frame.get("type") != "ticker":
        return None
    return {
        "raw_symbol": frame["code"], "exchange_ts": int(frame["timestamp"]),
        "last": frame["trade_price"], "bid": None, "ask": None, "bid_size": None, "ask_size": None,
        "open_24h": frame["opening_price"], "high_24h": frame["high_price"], "low_24h": frame["low_price"],
        "volume_24h": frame["acc_trade_volume_24h"], "quote_volume_24h": frame["acc_trade_price_24h"],
    }


PARSERS: dict[str, Callable[[str], Expected | None]] = {"binance": binance, "upbit": upbit}
NUMBER_FIELDS = ("last", "bid", "ask", "bid_size", "ask_size", "open_24h", "high_24h", "low_24h",
                 "volume_24h", "quote_volume_24h")
