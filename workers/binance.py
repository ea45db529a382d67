"""Binance Spot: the `<symbol>@ticker` stream on the combined-stream endpoint.

Endpoints   wss://stream.binance.com:9443/stream (combined: {"stream", "data"} frames;
            the raw endpoint /ws sends the bare event, and frames of either form are
            read, so a ws_url on /ws works and captures of other tools replay)
            https://data-api.binance.vision (public market data REST)
Subscribe   {"method":"SUBSCRIBE","params":["btcusdt@ticker",...],"id":1}
            ack {"result":null,"id":1}; stream names are lower case, and an unknown
            name is accepted silently and never sends data. (Streams may also be
            named in the URL, /stream?streams=a@ticker/b@ticker or /ws/a@ticker:
            not used, the subscription is one message per connection either way.)
Limits      5 incoming messages/s per connection (pings count), 1024 streams per
            connection, 300 connects per 5 min per IP, 24 h connection lifetime.
Keepalive   the server pings every 20 s and drops a client that doesn't pong within
            a minute; websockets answers pings by itself.
Ticker      every number is a JSON string; E is the event time in ms. A
            {"e":"serverShutdown"} event announces a restart: reconnect at once.
Errors      {"error":{"code","msg"},"id"} as client libraries parse it, or the bare
            {"code","msg"} the docs print: both are read.
REST        /api/v3/ticker/24hr?symbols=[...] (weight 2 up to 20 symbols, 40 up to 100)
            /api/v3/exchangeInfo for the market list (base/quote are not derivable
            from the symbol string: BTCUSDT vs BTCUSDC, 1000SATSUSDT)
"""

import json
from urllib.parse import quote

import msgspec

from shared import cli
from shared.numbers import Number, plain_all
from shared.record import ExchangeError, FrameError, ServerRestart, Ticker
from shared.venue import Market, Venue

REST_SYMBOLS_PER_CALL = 100


class TickerEvent(msgspec.Struct, tag_field="e", tag="24hrTicker"):
    E: int
    s: str
    c: Number
    b: Number
    B: Number
    a: Number
    A: Number
    o: Number
    h: Number
    l: Number  # noqa: E741 - Binance's own key
    v: Number
    q: Number


class ServerShutdown(msgspec.Struct, tag_field="e", tag="serverShutdown"):
    E: int


class ErrorBody(msgspec.Struct):
    code: int
    msg: str


class Frame(msgspec.Struct):
    """Every frame either endpoint sends: a stream event in the combined envelope or
    bare (`e` set: decoded again as an Event), an ack, or an error."""

    stream: str | None = None
    data: TickerEvent | ServerShutdown | None = None
    e: str | None = None
    id: int | str | None = None
    result: None = None
    code: int | None = None
    msg: str | None = None
    error: ErrorBody | None = None


class RestTicker(msgspec.Struct):
    symbol: str
    lastPrice: Number
    bidPrice: Number
    bidQty: Number
    askPrice: Number
    askQty: Number
    openPrice: Number
    highPrice: Number
    lowPrice: Number
    volume: Number
    quoteVolume: Number
    closeTime: int


class SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str


class ExchangeInfo(msgspec.Struct):
    symbols: list[SymbolInfo]


class Binance(Venue):
    name = "binance"
    markets_per_connection = 200  # well under the 1024-stream cap; one subscribe message each
    rest_markets_per_call = REST_SYMBOLS_PER_CALL
    rest_unknown_market = "Invalid symbol."  # HTTP 400 {"code":-1121,"msg":"Invalid symbol."}
    protocol_ping_interval_s = 20.0  # counts toward 5 msg/s: one every 20 s is harmless

    _frames = msgspec.json.Decoder(Frame)
    _bare_events = msgspec.json.Decoder(TickerEvent | ServerShutdown)
    _rest_tickers = msgspec.json.Decoder(list[RestTicker])
    _exchange_info = msgspec.json.Decoder(ExchangeInfo)

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=base + quote, base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        streams = [market.raw.lower() + "@ticker" for market in markets]
        return [json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        event = message.data if message.e is None else self._bare_events.decode(frame)
        if type(event) is TickerEvent:
            raw = event.s
            return [Ticker(
                self.name, self.symbol_of(raw), raw,
                *plain_all(event.c, event.b, event.a, event.B, event.A,
                           event.o, event.h, event.l, event.v, event.q),
                event.E, received_ns, "ws",
            )]
        if type(event) is ServerShutdown:
            raise ServerRestart("serverShutdown event")
        if message.error is not None:
            raise ExchangeError(f"error {message.error.code}: {message.error.msg}")
        if message.code is not None:
            raise ExchangeError(f"error {message.code}: {message.msg}")
        if message.id is not None and message.stream is None:
            return []  # subscribe ack: {"result":null,"id":1}
        raise FrameError("neither a ticker event, an ack nor an error")

    def market_list_url(self) -> str:
        return f"{self.rest_base}/api/v3/exchangeInfo?permissions=SPOT"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        return [
            Market(raw=info.symbol, base=info.baseAsset, quote=info.quoteAsset)
            for info in self._exchange_info.decode(body).symbols
            if info.status == "TRADING" and info.quoteAsset in wanted
        ]

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        urls = []
        for start in range(0, len(markets), REST_SYMBOLS_PER_CALL):
            chunk = [market.raw for market in markets[start:start + REST_SYMBOLS_PER_CALL]]
            symbols = quote(json.dumps(chunk, separators=(",", ":")))
            urls.append(f"{self.rest_base}/api/v3/ticker/24hr?symbols={symbols}")
        return urls

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        return [
            Ticker(
                self.name, self.symbol_of(item.symbol), item.symbol,
                *plain_all(item.lastPrice, item.bidPrice, item.askPrice, item.bidQty, item.askQty,
                           item.openPrice, item.highPrice, item.lowPrice, item.volume, item.quoteVolume),
                item.closeTime, received_ns, "rest",
            )
            for item in self._rest_tickers.decode(body)
        ]


if __name__ == "__main__":
    cli.main(Binance)
