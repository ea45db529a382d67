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
    """A combined-stream envelope (/stream) or the bare event (/ws)."""
    frame = json.loads(line)
    data = frame.get("data", frame) if isinstance(frame, dict) else None
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


def bithumb(line: str) -> Expected | None:
    """Bithumb's v1 socket sends Upbit's DEFAULT ticker: the same keys, `timestamp` in ms UTC."""
    return upbit(line)


def bybit(line: str) -> Expected | None:
    frame = json.loads(line)
    if not isinstance(frame, dict) or not str(frame.get("topic", "")).startswith("tickers."):
        return None
    data = frame["data"]
    return {
        "raw_symbol": data["symbol"], "exchange_ts": frame["ts"],
        "last": Decimal(data["lastPrice"]), "bid": None, "ask": None, "bid_size": None, "ask_size": None,
        "open_24h": Decimal(data["prevPrice24h"]), "high_24h": Decimal(data["highPrice24h"]),
        "low_24h": Decimal(data["lowPrice24h"]), "volume_24h": Decimal(data["volume24h"]),
        "quote_volume_24h": Decimal(data["turnover24h"]),
    }


def coinone(line: str) -> Expected | None:
    frame = json.loads(line)
    if not isinstance(frame, dict) or frame.get("response_type") != "DATA" or frame.get("channel") != "TICKER":
        return None
    data = frame["data"]

    def number(key: str) -> Decimal | None:
        return None if data.get(key) is None else Decimal(data[key])

    return {
        "raw_symbol": data["quote_currency"] + "/" + data["target_currency"], "exchange_ts": data["timestamp"],
        "last": Decimal(data["last"]), "bid": number("bid_best_price"), "ask": number("ask_best_price"),
        "bid_size": number("bid_best_qty"), "ask_size": number("ask_best_qty"),
        "open_24h": Decimal(data["first"]), "high_24h": Decimal(data["high"]), "low_24h": Decimal(data["low"]),
        "volume_24h": Decimal(data["target_volume"]), "quote_volume_24h": Decimal(data["quote_volume"]),
    }


def kraken(line: str) -> Expected | None:
    from datetime import datetime, timezone

    frame = _decimal_json(line)
    if not isinstance(frame, dict) or frame.get("channel") != "ticker":
        return None
    [data] = frame["data"]
    stamp = datetime.strptime(data["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return {
        "raw_symbol": data["symbol"], "exchange_ts": int(stamp.replace(microsecond=0).timestamp()) * 1000 + stamp.microsecond // 1000,
        "last": Decimal(data["last"]), "bid": Decimal(data["bid"]), "ask": Decimal(data["ask"]),
        "bid_size": Decimal(data["bid_qty"]), "ask_size": Decimal(data["ask_qty"]),
        "open_24h": None, "high_24h": Decimal(data["high"]), "low_24h": Decimal(data["low"]),
        "volume_24h": Decimal(data["volume"]), "quote_volume_24h": None,
    }


def korbit(line: str) -> Expected | None:
    frame = json.loads(line)
    if not isinstance(frame, dict) or frame.get("type") != "ticker":
        return None
    data = frame["data"]
    # A best price of zero is a stopped pair's "no order": the record carries None.
    bid, ask = Decimal(data["bestBidPrice"]), Decimal(data["bestAskPrice"])
    return {
        "raw_symbol": frame["symbol"], "exchange_ts": frame["timestamp"],
        "last": Decimal(data["close"]), "bid": bid or None, "ask": ask or None, "bid_size": None, "ask_size": None,
        "open_24h": Decimal(data["open"]), "high_24h": Decimal(data["high"]), "low_24h": Decimal(data["low"]),
        "volume_24h": Decimal(data["volume"]), "quote_volume_24h": Decimal(data["quoteVolume"]),
    }


def gateio(line: str) -> Expected | None:
    frame = json.loads(line)
    if not isinstance(frame, dict) or frame.get("channel") != "spot.tickers" or frame.get("event") != "update":
        return None
    result = frame["result"]

    def number(key: str) -> Decimal | None:
        return Decimal(result[key]) if result.get(key) else None

    return {
        "raw_symbol": result["currency_pair"],
        "exchange_ts": frame["time_ms"] if "time_ms" in frame else frame["time"] * 1000,
        "last": Decimal(result["last"]), "bid": number("highest_bid"), "ask": number("lowest_ask"),
        "bid_size": None, "ask_size": None, "open_24h": None,
        "high_24h": number("high_24h"), "low_24h": number("low_24h"),
        "volume_24h": number("base_volume"), "quote_volume_24h": number("quote_volume"),
    }


def coinbase(line: str) -> Expected | None:
    import calendar
    import time

    frame = json.loads(line)
    if not isinstance(frame, dict) or frame.get("type") != "ticker":
        return None
    whole, fraction = frame["time"].rstrip("Z").split(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    optional = {key: Decimal(frame[key]) if key in frame else None for key in ("best_bid_size", "best_ask_size")}
    return {
        "raw_symbol": frame["product_id"], "exchange_ts": int((seconds + Decimal("0." + fraction)) * 1000),
        "last": Decimal(frame["price"]), "bid": Decimal(frame["best_bid"]), "ask": Decimal(frame["best_ask"]),
        "bid_size": optional["best_bid_size"], "ask_size": optional["best_ask_size"],
        "open_24h": Decimal(frame["open_24h"]), "high_24h": Decimal(frame["high_24h"]),
        "low_24h": Decimal(frame["low_24h"]), "volume_24h": Decimal(frame["volume_24h"]), "quote_volume_24h": None,
    }


def okx(line: str) -> Expected | None:
    frame = json.loads(line)
    if not isinstance(frame, dict) or frame.get("arg", {}).get("channel") != "tickers" or "data" not in frame:
        return None
    [data] = frame["data"]

    def number(key: str) -> Decimal | None:
        # An empty book is "" on OKX: the record carries None.
        return Decimal(data[key]) if data[key] else None

    return {
        "raw_symbol": data["instId"], "exchange_ts": int(data["ts"]),
        "last": Decimal(data["last"]), "bid": number("bidPx"), "ask": number("askPx"),
        "bid_size": number("bidSz"), "ask_size": number("askSz"),
        "open_24h": number("open24h"), "high_24h": number("high24h"), "low_24h": number("low24h"),
        "volume_24h": number("vol24h"), "quote_volume_24h": number("volCcy24h"),
    }


PARSERS: dict[str, Callable[[str], Expected | None]] = {"okx": okx, "coinbase": coinbase, "gateio": gateio, "korbit": korbit, "coinone": coinone, "binance": binance, "bithumb": bithumb, "bybit": bybit, "upbit": upbit, "kraken": kraken}
NUMBER_FIELDS = ("last", "bid", "ask", "bid_size", "ask_size", "open_24h", "high_24h", "low_24h",
                 "volume_24h", "quote_volume_24h")
