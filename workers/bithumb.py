"""Bithumb (Korea): the public `ticker` type on the Upbit-style v1 socket.

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
"""

import msgspec

from shared import cli
from shared.record import ExchangeError, Ticker
from workers import upbit

KST_AS_EPOCH_MS = 9 * 3_600_000


class RestError(msgspec.Struct):
    """A /v1 error, which Bithumb sends with HTTP 200."""

    error: upbit.ErrorBody


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

    _rest_error = msgspec.json.Decoder(RestError)

    def app_ping(self) -> str:
        return "PING"

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        if body.lstrip()[:1] == b"{":
            error = self._rest_error.decode(body).error
            raise ExchangeError(f"{error.name}: {error.message}")
        tickers = super().parse_rest_ticker(body, received_ns)
        for ticker in tickers:
            ticker.exchange_ts = utc_epoch_ms(ticker.exchange_ts, received_ns)
        return tickers


if __name__ == "__main__":
    cli.main(Bithumb)
