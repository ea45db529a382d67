"""Coinbase Exchange as the simulator plays it: one subscribe request per connection
within 5 s (else the socket is dropped), an ack listing the whole subscription, one
ticker per product right after subscribing that repeats its latest state, tickers with
string decimals of varying length and a per-product `sequence` that skips numbers,
heartbeats once a second per product, error frames for bad requests, RFC 6455 pings
as the only keepalive, and the /products REST endpoints.

Order books: `level2_batch` (the ack, then the whole book in one snapshot, then l2update
changes, no sequence), unsubscribe included, and /products/{id}/book?level=2 with its
`sequence` (simulator/books.py keeps the books).

Only the `ticker`, `heartbeat` and `level2_batch` channels are simulated; other channel
names are refused like invalid ones. The texts of errors for malformed JSON and unknown request
types are this simulator's own (no sample of them exists).
"""

import asyncio
import json
import time
import weakref
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote, fixed

BOOK_CHANNEL = "level2_batch"
CHANNELS = ("ticker", "heartbeat", BOOK_CHANNEL)
_EPOCH = datetime(1970, 1, 1)
# Levels as Coinbase prints them: prices at the product's quote increment, sizes at its
# base increment (8 places, the true book's texts).
Levels = list[tuple[str, str]]
REST_BOOK_LEVELS = 1000  # level 2 is the whole book, aggregated: more than the true book holds


def trimmed(value: Decimal, places: int = 8) -> str:
    """A price as Coinbase prints its last trade: trailing zeros dropped ("29940.9", "31888")."""
    text = fixed(value, places)
    return text.rstrip("0").rstrip(".") if "." in text else text


def rfc3339(now_ms: int, sub_ms_digits: str) -> str:
    """'2025-06-06T05:00:31.886136Z': a UTC time with more digits than the millisecond."""
    moment = _EPOCH + timedelta(milliseconds=now_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{now_ms % 1000:03d}{sub_ms_digits}Z"


def l2_snapshot(product_id: str, bids: Levels, asks: Levels) -> str:
    """A level2(_batch) snapshot: the whole book, asks first as the feed writes it, no time."""
    return json.dumps({"type": "snapshot", "product_id": product_id, "asks": [list(level) for level in asks],
                       "bids": [list(level) for level in bids]}, separators=(",", ":"))


def l2_update(product_id: str, bids: Levels, asks: Levels, now_ms: int) -> str:
    """A level2(_batch) l2update: [side, price, new size] changes, "buy" for bids, "sell" for
    asks, size 0 deleting the level."""
    changes = [["buy", *level] for level in bids] + [["sell", *level] for level in asks]
    return json.dumps({"type": "l2update", "product_id": product_id, "changes": changes,
                       "time": rfc3339(now_ms, "000")}, separators=(",", ":"))


def rest_book(sequence: int, bids: Levels, asks: Levels, now_ms: int) -> dict[str, Any]:
    """The body of GET /products/{id}/book?level=2: [price, size, number of orders] levels."""
    return {"bids": [[*level, 1] for level in bids], "asks": [[*level, 1] for level in asks],
            "sequence": sequence, "auction_mode": False, "auction": None, "time": rfc3339(now_ms, "000")}


class CoinbaseSim(ExchangeSim):
    name = "coinbase"
    default_quote = "USD"
    ws_paths = ("/",)
    edge_kinds = ("no_best_sizes",)
    # A client that sends nothing, not even a protocol ping, was seen dropped after
    # ~100 s; pings count as traffic.
    client_idle_timeout_s = 100.0
    client_pings_count = True
    subscribe_deadline_s = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sequence = {market_id: 106_614_625_991 + index * 7_000_000 for index, market_id in enumerate(self.quotes)}
        self.trade_id = {market_id: 834_270_521 + index * 1_000_000 for index, market_id in enumerate(self.quotes)}
        self.last_trade_ms: dict[str, int] = {}
        # channel -> product ids, per open socket
        self.channels: weakref.WeakKeyDictionary[ServerConnection, dict[str, list[str]]] = weakref.WeakKeyDictionary()
        self._heartbeat_tasks: set[asyncio.Task[None]] = set()
        self.book_feed = BookFeed(self)

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}-{quote}"

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        try:
            request = json.loads(message)
        except ValueError:
            return await self._error(socket, "Malformed JSON")
        kind = request.get("type") if isinstance(request, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            return await self._error(socket, "Failed to subscribe", "only subscribe requests are simulated")
        requested, problem = self._channels(request)
        if problem:
            return await self._error(socket, f"Failed to {kind}", problem)
        held = self.channels.setdefault(socket, {})
        if kind == "unsubscribe":
            for channel, market_ids in requested.items():
                held[channel] = [market_id for market_id in held.get(channel, []) if market_id not in market_ids]
            self.book_feed.unsubscribe(socket, requested.get(BOOK_CHANNEL, []))
            await self._acknowledge(socket, held)
            return held.get("ticker", [])
        had_heartbeats = "heartbeat" in held
        new_tickers = [market_id for market_id in requested.get("ticker", []) if market_id not in held.get("ticker", [])]
        for channel, market_ids in requested.items():
            held[channel] = held.get(channel, []) + [m for m in market_ids if m not in held.get(channel, [])]
        await self._acknowledge(socket, held)
        # A book's snapshot comes after the ack, then its l2updates.
        self.book_feed.subscribe(socket, requested.get(BOOK_CHANNEL, []))
        # Each new product's latest state first, with the time of its last trade.
        now_ms = int(time.time() * 1000)
        for market_id in new_tickers:
            await self._send(socket, self.ticker_frame(
                market_id, self.quotes[market_id], self.last_trade_ms.get(market_id, now_ms)))
        if "heartbeat" in held and not had_heartbeats:
            heartbeats = asyncio.create_task(self._heartbeats(socket))
            self._heartbeat_tasks.add(heartbeats)  # the loop keeps only weak references to tasks
            heartbeats.add_done_callback(self._heartbeat_tasks.discard)
        return held.get("ticker", [])

    @staticmethod
    async def _acknowledge(socket: ServerConnection, held: dict[str, list[str]]) -> None:
        """The ack lists the connection's whole subscription."""
        await socket.send(json.dumps({"type": "subscriptions", "channels": [
            {"name": channel, "product_ids": market_ids, "account_ids": None}
            for channel, market_ids in held.items() if market_ids
        ]}))

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        bids, asks = update.view(REST_BOOK_LEVELS)
        return l2_snapshot(market_id, bids, asks)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        bids = [(price, size) for side, price, size in update.changes if side == "bid"]
        asks = [(price, size) for side, price, size in update.changes if side == "ask"]
        return l2_update(market_id, bids, asks, update.ts_ms)

    def _channels(self, request: dict[str, Any]) -> tuple[dict[str, list[str]], str]:
        """channel -> product ids of a subscribe request, or the reason it fails as a whole."""
        default_ids = request.get("product_ids", [])
        channels = request.get("channels")
        if not isinstance(channels, list) or not channels:
            return {}, "channels must be a non-empty list"
        requested: dict[str, list[str]] = {}
        for channel in channels:
            if isinstance(channel, dict):
                name, market_ids = channel.get("name"), channel.get("product_ids", default_ids)
            else:
                name, market_ids = channel, default_ids
            if name not in CHANNELS:
                return {}, f"{name} is not a valid channel"
            if not market_ids:
                return {}, f"You need to specify at least one product ID for channel {name}"
            for market_id in market_ids:
                if market_id not in self.quotes:
                    return {}, f"{market_id} is not a valid product"
            requested[name] = requested.get(name, []) + list(market_ids)
        return requested, ""

    async def _error(self, socket: ServerConnection, message: str, reason: str | None = None) -> None:
        body = {"type": "error", "message": message}
        if reason:
            body["reason"] = reason
        await socket.send(json.dumps(body))
        return None

    async def _heartbeats(self, socket: ServerConnection) -> None:
        """One heartbeat a second per subscribed product, trading or not."""
        try:
            while True:
                await asyncio.sleep(1)
                if time.monotonic() < self.faults.stalled.get(socket, 0):
                    continue
                now_ms = int(time.time() * 1000)
                for market_id in self.channels.get(socket, {}).get("heartbeat", []):
                    await socket.send(json.dumps({
                        "type": "heartbeat", "last_trade_id": self.trade_id[market_id], "product_id": market_id,
                        "sequence": self.sequence[market_id], "time": rfc3339(now_ms, "464"),
                    }))
        except ConnectionClosed:
            pass

    def edge_frame(self, kind: str, market_id: str, quote: Quote, now_ms: int, form: str) -> str:
        # no_best_sizes: a ticker without best_bid_size/best_ask_size, as before 2022-10.
        frame = json.loads(self.ticker_frame(market_id, quote, now_ms))
        del frame["best_bid_size"], frame["best_ask_size"]
        return json.dumps(frame, separators=(",", ":"))

    def ticker_frame(self, market_id: str, quote: Quote, now_ms: int) -> str:
        # Other channels' messages consume sequence numbers too: tickers skip some.
        self.sequence[market_id] = self.sequence.get(market_id, 1) + self.rng.randint(1, 4)
        self.trade_id[market_id] = self.trade_id.get(market_id, 1) + 1
        self.last_trade_ms[market_id] = now_ms
        last = quote.price()
        volume = quote.volume()
        return json.dumps({
            "type": "ticker", "sequence": self.sequence[market_id], "product_id": market_id,
            "price": trimmed(last), "open_24h": trimmed(quote.price(-40)), "volume_24h": fixed(volume),
            "low_24h": trimmed(quote.price(-60)), "high_24h": trimmed(quote.price(30)),
            "volume_30d": fixed(volume * 30), "best_bid": fixed(quote.price(-1), quote.scale),
            "best_bid_size": "0.05883958", "best_ask": fixed(last, quote.scale), "best_ask_size": "0.15161616",
            "side": "buy", "time": rfc3339(now_ms, f"{self.rng.randint(0, 999):03d}"),
            "trade_id": self.trade_id[market_id], "last_size": "0.00481191",
        }, separators=(",", ":"))

    def wrong_shape_frame(self) -> str:
        return '{"type":"ticker","sequence":1,"product_id":"BTC-USD","price":{"nested":true}}'

    def rest(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/products":
            return 200, [self._product(market_id, quote) for market_id, quote in self.quotes.items()]
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "products" and parts[3] == "book":
            if parts[2] not in self.quotes:
                return 404, {"message": "NotFound"}
            view = self.book_feed.rest_view(parts[2])
            bids, asks = view.view(REST_BOOK_LEVELS)
            return 200, rest_book(view.update_id, bids, asks, int(time.time() * 1000))
        if len(parts) == 4 and parts[1] == "products" and parts[3] == "ticker":
            market_id = parts[2]
            if market_id not in self.quotes:
                return 404, {"message": "NotFound"}
            quote = self.quotes[market_id]
            now_ms = int(time.time() * 1000)
            return 200, {
                "ask": fixed(quote.price(), quote.scale), "bid": fixed(quote.price(-1), quote.scale),
                "volume": fixed(quote.volume()), "trade_id": self.trade_id[market_id],
                "price": trimmed(quote.price()), "size": "0.00061522",
                "time": rfc3339(now_ms, f"{self.rng.randint(0, 999_999):06d}"), "rfq_volume": "3.5",
            }
        return 404, {"message": "NotFound"}

    @staticmethod
    def _product(market_id: str, quote: Quote) -> dict[str, Any]:
        return {
            "id": market_id, "base_currency": quote.base, "quote_currency": quote.quote,
            "quote_increment": fixed(Decimal(1).scaleb(-quote.scale), quote.scale), "base_increment": "0.00000001",
            "display_name": market_id.replace("-", "/"), "min_market_funds": "1", "margin_enabled": False,
            "post_only": False, "limit_only": False, "cancel_only": False, "status": "online",
            "status_message": "", "trading_disabled": False, "fx_stablecoin": False,
            "max_slippage_percentage": "0.03000000", "auction_mode": False, "high_bid_limit_percentage": "",
        }
