"""Bithumb (Korea): the public `ticker` and `orderbook` types on the Upbit-style v1 socket.

Endpoints   wss://ws-api.bithumb.com/websocket/v1, https://api.bithumb.com/v1
            (the legacy wss://pubwss.bithumb.com/pub/ws and /public/... REST still
            answer, with another protocol: not used)
Subscribe   Upbit's request: one JSON array [{"ticket": <uuid>}, {"type": "ticker",
            "codes": [...]}, {"format": "DEFAULT"}], codes upper case QUOTE-BASE
            (KRW-BTC, BTC-ETH). A new request replaces the connection's whole
            subscription, so each connection sends its complete list once. No ack;
            unknown or lower-case codes are ignored silently.
            Snapshot flags: neither is sent. The default (one SNAPSHOT frame per code,
            then REALTIME) is what a collector wants, and it sidesteps a spelling
            conflict: the docs print is_only_snapshot/is_only_realtime, the wire
            honours only isOnlySnapshot/isOnlyRealtime. SNAPSHOT and REALTIME frames
            are both published as they come; their order is not guaranteed.
Limits      10 connects/s per IP (public and private together; 429, then a 10 min
            block); no published cap on codes per connection (493 in one worked).
Keepalive   the socket is dropped after 60 s without client traffic (docs: 120 s),
            with no close frame. RFC 6455 pings count; a text `PING` is answered with
            {"status":"UP"}, which then repeats every 10 s: a heartbeat that keeps the
            watchdog fed on connections whose markets are quiet. The server never pings.
Frames      binary (opcode 2) UTF-8 JSON, one object each. Every price and size is a
            JSON number, printed plain (493100, 0.01775026) and sometimes longer than a
            double holds (728107452.06423197609921044): kept as raw text. The SIMPLE
            format's abbreviated keys (tp, cd...) are read too, as Upbit's.
Errors      {"error":{"name":"WRONG_FORMAT","message":...}} (Korean text), then the
            server closes with 1000.
Ticker      Upbit's DEFAULT keys, but the day fields (opening_price, acc_*) reset at
            00:00 KST; *_24h are rolling. `timestamp` is the message time, ms UTC (true
            UTC on the socket). No best bid/ask in this type. delisting_date is null
            or "" (not read).
REST        /v1/ticker?markets=KRW-BTC,... at most 200 markets a call (more: HTTP 400;
            a long URL: 414); Upbit's calls of 100 fit. Errors come with HTTP 200 as
            {"error":{"name":404,"message":"Code not found"}}; one unknown code fails
            the whole call.
            Epoch fields may hold the KST wall clock (UTC + 9 h): seen on `timestamp`
            in 2026, on trade_timestamp only in 2025. A time hours ahead of its
            arrival is corrected by 9 h, see utc_epoch_ms.
            /v1/market/all for the market list (KRW and BTC quotes, no USDT).
            150 requests/s per IP per category.

Book        type `orderbook`, Upbit's, read by Upbit's code: every frame is the complete
            book of one code, so each frame replaces the book and a lost frame is
            repaired by the next (book_resync "frames"); no sequence, no checksum. The
            legacy pubwss socket's `orderbookdepth` deltas carry no sequence either and
            are undocumented: not used. At most 15 units (a `.N` code suffix can only
            lower that; `.30` still gets 15): book_depth 1-15, codes subscribed plain and
            the top book_depth kept. Bithumb's own quirks:
            - `timestamp` is in microseconds (16 digits, 1790133505546514), made ms;
            - sizes are printed with 4 decimals, so dust arrives as size 0, at the
              touch too: no level (shared.book drops zero sizes);
            - a thin side is padded with units of price 0, as Upbit's: no level;
            - over half the frames repeat the one before (216 of 398 probed on
              KRW-BTC): conflated, counted, not published.
            Books have sockets of their own (Upbit's reason: a request replaces the
            socket's whole subscription, ticker and book types alike, so a socket sends
            one request, with every code of its types, and never a second). The text
            PING and its {"status":"UP"} heartbeat keep them alive as the ticker's.
Book REST   /v1/orderbook?markets=KRW-BTC,...: the socket's objects under `market`,
            15 units a market when several are asked for (30 for one; `count` is Upbit's
            and not sent), `timestamp` in ms (the REST ticker's KST guard applied, see
            utc_epoch_ms). Errors come under HTTP 200, as the ticker's.
"""

import msgspec

from shared import cli
from shared.record import ExchangeError, Ticker
from shared.venue import BookMessage, Market, comma_joined_urls
from workers import upbit

KST_AS_EPOCH_MS = 9 * 3_600_000
# The most levels a side the `orderbook` socket sends (a `.30` code suffix still gets 15).
BOOK_LEVELS = 15
# The socket stamps its books in µs (16 digits, 1790133505546514); an epoch in ms stays
# below this until the year 5138, one in µs is above it since 1973.
MICROSECOND_EPOCHS_FROM = 10**14


class RestError(msgspec.Struct):
    """A /v1 error, which Bithumb sends with HTTP 200."""

    error: upbit.ErrorBody


def book_epoch_ms(timestamp: int | None) -> int | None:
    """The socket's book time (µs) in ms; a time already in ms passes unchanged."""
    if timestamp is None or timestamp < MICROSECOND_EPOCHS_FROM:
        return timestamp
    return timestamp // 1000


def utc_epoch_ms(epoch_ms: int | None, received_ns: int) -> int | None:
    """`epoch_ms` as true UTC, from a REST field that may hold KST written as an epoch.

    A true time cannot be hours after the response arrived, so one more than half
    the offset ahead of arrival is the KST form: take 9 h off. A time still far
    ahead after that is not trusted at all (None), rather than published wrong.
    """
    if epoch_ms is None:
        return None
    limit_ms = received_ns // 1_000_000 + KST_AS_EPOCH_MS // 2
    if epoch_ms > limit_ms:
        epoch_ms -= KST_AS_EPOCH_MS
        if epoch_ms > limit_ms:
            return None
    return epoch_ms


class Bithumb(upbit.Upbit):
    """Upbit's frames, symbols and market list; Bithumb's limits, keepalive and REST."""

    name = "bithumb"
    # Kept from Upbit: 300 markets a connection (Bithumb publishes no cap), RFC 6455
    # pings every 20 s (they count against the 60 s idle rule), REST calls of 100
    # markets (inside Bithumb's cap of 200), "Code not found" for an unknown code (with
    # HTTP 200 here). The text PING goes out at the default 20 s; its answer starts the
    # 10 s status heartbeat.
    # Half the 10 connects/s per IP, leaving room for reconnects of other connections.
    connect_gap_s = 0.2
    # Kept from Upbit: book_resync "frames", book_rest_path /v1/orderbook, book sockets
    # split like the ticker's.
    book_depths = range(1, BOOK_LEVELS + 1)

    _rest_error = msgspec.json.Decoder(RestError)

    def app_ping(self) -> str:
        return "PING"

    def parse_book_ws(self, frame: bytes, received_ns: int) -> list[BookMessage]:
        return [message._replace(exchange_ts=book_epoch_ms(message.exchange_ts))
                for message in super().parse_book_ws(frame, received_ns)]

    def book_rest_urls(self, markets: list[Market], depth: int) -> list[str]:
        # No `count`: 15 units a market when several are asked for, 30 for one; the
        # socket's 15 either way.
        return comma_joined_urls(f"{self.rest_base}{self.book_rest_path}?markets=", markets,
                                 upbit.REST_MARKETS_PER_CALL)

    def parse_rest_book(self, url: str, body: bytes, received_ns: int) -> list[BookMessage]:
        self._raise_rest_error(body)
        return [message._replace(exchange_ts=utc_epoch_ms(message.exchange_ts, received_ns))
                for message in super().parse_rest_book(url, body, received_ns)]

    def _raise_rest_error(self, body: bytes) -> None:
        """Raise the ExchangeError of an error body, which comes with HTTP 200."""
        if body.lstrip()[:1] == b"{":
            error = self._rest_error.decode(body).error
            raise ExchangeError(f"{error.name}: {error.message}")

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        self._raise_rest_error(body)
        tickers = super().parse_rest_ticker(body, received_ns)
        for ticker in tickers:
            ticker.exchange_ts = utc_epoch_ms(ticker.exchange_ts, received_ns)
        return tickers


if __name__ == "__main__":
    cli.main(Bithumb)
