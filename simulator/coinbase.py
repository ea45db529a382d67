"""Coinbase Exchange as the simulator plays it: one subscribe request per connection
within 5 s (else the socket is dropped), an ack listing the whole subscription, one
ticker per product right after subscribing that repeats its latest state, tickers with
string decimals of varying length and a per-product `sequence` that skips numbers,
heartbeats once a second per product, error frames for bad requests, RFC 6455 pings
as the only keepalive, and the /products REST endpoints.

Order books: the Advanced Trade feed on its own path (ADVANCED_TRADE_PATH, the real
wss://advanced-trade-ws.coinbase.com), and /products/{id}/book?level=2 of the Exchange API
with its `sequence` (simulator/books.py keeps the books). Advanced Trade takes one channel a
request: `level2` ({"type":"subscribe"|"unsubscribe","product_ids":[...],"channel":"level2"})
sends each new product's snapshot (every level, in no order) and then the acknowledgement,
as a real capture had them, then l2_data updates; `heartbeats` sends one frame a second. Every
frame of a connection, acks and heartbeats included, carries the connection's sequence_num,
0 first; book faults (simulator/books.py) act on numbered frames, so a dropped update leaves
a hole, a repeated one its number twice, a held-back one an older number. An unknown channel
answers the real {"type":"error","message":"authentication failure"}.

Only the `ticker` and `heartbeat` channels of the Exchange feed are simulated; other
channel names are refused like invalid ones. The texts of errors for malformed JSON, unknown
request types and bad Advanced Trade requests are this simulator's own (no sample of them
exists), and so is the ack's `heartbeats` entry.
"""

import asyncio
import json
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from simulator.books import BookFeed, BookUpdate
from simulator.core import ExchangeSim, Quote, fixed

CHANNELS = ("ticker", "heartbeat")
ADVANCED_TRADE_PATH = "/advanced-trade-ws"
BOOK_CHANNEL = "level2"
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


def advanced_frame(channel: str, timestamp: str, sequence_num: int, events: list[dict[str, Any]]) -> str:
    """An Advanced Trade frame as the wire writes it: l2_data's carry an empty client_id."""
    head = {"channel": channel, "client_id": ""} if channel == "l2_data" else {"channel": channel}
    return json.dumps({**head, "timestamp": timestamp, "sequence_num": sequence_num, "events": events},
                      separators=(",", ":"))


def l2_event(kind: str, product_id: str, levels: list[tuple[str, str, str]], event_time: str) -> dict[str, Any]:
    """One product's l2_data event: (side "bid"|"offer", price, new quantity) levels."""
    return {"type": kind, "product_id": product_id, "updates": [
        {"side": side, "event_time": event_time, "price_level": price, "new_quantity": quantity}
        for side, price, quantity in levels]}


def rest_book(sequence: int, bids: Levels, asks: Levels, now_ms: int) -> dict[str, Any]:
    """The body of GET /products/{id}/book?level=2: [price, size, number of orders] levels."""
    return {"bids": [[*level, 1] for level in bids], "asks": [[*level, 1] for level in asks],
            "sequence": sequence, "auction_mode": False, "auction": None, "time": rfc3339(now_ms, "000")}


class CoinbaseSim(ExchangeSim):
    name = "coinbase"
    default_quote = "USD"
    ws_paths = ("/", ADVANCED_TRADE_PATH)
    book_ws_path = ADVANCED_TRADE_PATH
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
        self.advanced: weakref.WeakKeyDictionary[ServerConnection, _AdvancedSocket] = weakref.WeakKeyDictionary()
        self._started = time.monotonic()  # heartbeat_counter counts seconds since

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}-{quote}"

    async def on_message(self, socket: ServerConnection, message: str | bytes) -> list[str] | None:
        if socket.request is not None and socket.request.path == ADVANCED_TRADE_PATH:
            self._advanced_request(socket, message)
            return None
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
            await self._acknowledge(socket, held)
            return held.get("ticker", [])
        had_heartbeats = "heartbeat" in held
        new_tickers = [market_id for market_id in requested.get("ticker", []) if market_id not in held.get("ticker", [])]
        for channel, market_ids in requested.items():
            held[channel] = held.get(channel, []) + [m for m in market_ids if m not in held.get(channel, [])]
        await self._acknowledge(socket, held)
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

    # --- Advanced Trade: the book socket -------------------------------------------

    def _advanced_request(self, socket: ServerConnection, message: str | bytes) -> None:
        state = self.advanced.setdefault(socket, _AdvancedSocket())
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict) or request.get("type") not in ("subscribe", "unsubscribe"):
            return self._advanced_error(socket, "only subscribe and unsubscribe requests are simulated")
        subscribing = request["type"] == "subscribe"
        channel = request.get("channel")
        if channel == "heartbeats":
            if subscribing and state.heartbeats is None:
                state.heartbeats = asyncio.create_task(self._advanced_heartbeats(socket, state))
                self._heartbeat_tasks.add(state.heartbeats)  # the loop keeps only weak references
                state.heartbeats.add_done_callback(self._heartbeat_tasks.discard)
            elif not subscribing and state.heartbeats is not None:
                state.heartbeats.cancel()
                state.heartbeats = None
        elif channel == BOOK_CHANNEL:
            product_ids = request.get("product_ids")
            if not isinstance(product_ids, list) or not product_ids:
                return self._advanced_error(socket, "level2 needs product_ids")
            unknown = [product_id for product_id in product_ids if product_id not in self.quotes]
            if unknown:
                return self._advanced_error(socket, f"unknown product {unknown[0]}")
            if subscribing:
                new = [product_id for product_id in product_ids if product_id not in state.level2]
                state.level2 += new
                self.book_feed.subscribe(socket, new)  # their snapshots, before the ack
            else:
                state.level2 = [product_id for product_id in state.level2 if product_id not in product_ids]
                self.book_feed.unsubscribe(socket, product_ids)
        else:
            return self._advanced_error(socket, "authentication failure")  # the real answer
        subscriptions = {BOOK_CHANNEL: state.level2} if state.level2 else {}
        if state.heartbeats is not None:
            subscriptions["heartbeats"] = ["heartbeats"]
        self.book_feed.send(socket, advanced_frame("subscriptions", rfc3339(int(time.time() * 1000), "662782"),
                                                   state.numbered(), [{"subscriptions": subscriptions}]))

    def _advanced_error(self, socket: ServerConnection, message: str) -> None:
        """An error frame: the only one without a sequence_num."""
        self.book_feed.send(socket, json.dumps({"type": "error", "message": message}, separators=(",", ":")))

    async def _advanced_heartbeats(self, socket: ServerConnection, state: "_AdvancedSocket") -> None:
        """One heartbeats frame a second on the connection, books changing or not."""
        while socket.state is not State.CLOSED:
            await asyncio.sleep(1)
            now_ms = int(time.time() * 1000)
            counter = int(time.monotonic() - self._started)
            moment = _EPOCH + timedelta(milliseconds=now_ms)
            current_time = f"{moment:%Y-%m-%d %H:%M:%S}.{now_ms % 1000:03d}409 +0000 UTC m=+{counter}.272674714"
            self.book_feed.send(socket, advanced_frame("heartbeats", rfc3339(now_ms, "755362"), state.numbered(),
                                                       [{"current_time": current_time,
                                                         "heartbeat_counter": counter}]))

    def book_snapshot_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        """Every level of the book, in no order, as the real snapshots."""
        bids, asks = update.view(REST_BOOK_LEVELS)
        levels = [("bid", price, size) for price, size in bids] + [("offer", price, size) for price, size in asks]
        self.rng.shuffle(levels)
        return self._l2_data(socket, "snapshot", market_id, levels, update.ts_ms)

    def book_update_frame(self, socket: ServerConnection, market_id: str, update: BookUpdate) -> str:
        levels = [("bid" if side == "bid" else "offer", price, size) for side, price, size in update.changes]
        return self._l2_data(socket, "update", market_id, levels, update.ts_ms)

    def _l2_data(self, socket: ServerConnection, kind: str, market_id: str, levels: list[tuple[str, str, str]],
                 ts_ms: int) -> str:
        timestamp = rfc3339(ts_ms, "355")
        number = self.advanced.setdefault(socket, _AdvancedSocket()).numbered()
        return advanced_frame("l2_data", timestamp, number, [l2_event(kind, market_id, levels, timestamp)])

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


@dataclass
class _AdvancedSocket:
    """One Advanced Trade connection: its level2 products, heartbeats, and numbering."""

    level2: list[str] = field(default_factory=list)
    heartbeats: "asyncio.Task[None] | None" = None
    next_number: int = 0  # the connection's next sequence_num

    def numbered(self) -> int:
        """The next sequence_num of the connection: every frame but an error takes one."""
        number = self.next_number
        self.next_number += 1
        return number
