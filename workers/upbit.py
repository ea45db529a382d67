"""Upbit (Korea): the public `ticker` type on the v1 quotation socket.

Endpoints   wss://api.upbit.com/websocket/v1, https://api.upbit.com/v1
Subscribe   one JSON array: [{"ticket": <uuid>}, {"type": "ticker", "codes": [...]},
            {"format": "DEFAULT"}]. Codes are upper case QUOTE-BASE (KRW-BTC). A new
            request replaces the whole subscription of the connection, so every
            connection sends its complete list once. No ack: the first SNAPSHOT frame
            is the confirmation; unknown codes are ignored silently.
Limits      5 connects/s per IP; 5 messages/s and 100/min per connection. No Origin
            header (it drops the limit to 1 request per 10 s).
Keepalive   the client pings (RFC 6455); idle sockets are dropped after ~60 s on the
            wire (docs say 120 s). The pongs (~165 ms) are what a socket on quiet
            markets is heard by. `{"status":"UP"}` frames answer a text PING, but on
            a subscribed socket it went unanswered on the wire: not used.
Frames      binary (opcode 2) UTF-8 JSON. Prices are JSON numbers printed with raw
            BigDecimal scale: 158219000.00000000, 0E-8, 1.16539E8, and fractions
            longer than a double holds, so they are kept as raw text, never floats.
            The format object chooses the form: DEFAULT (asked for: one object, full
            keys such as trade_price), SIMPLE (abbreviated keys: tp), JSON_LIST and
            SIMPLE_LIST (the frame is an array of those objects). Every form is read,
            for captures made by other tools.
Errors      {"error":{"name":"NO_TICKET","message":...}}, then the server closes (1000).
Ticker      open/high/low are the UTC day (reset 09:00 KST); *_24h are rolling.
            `timestamp` is the server's ms epoch; no best bid/ask in this type.
REST        /v1/ticker?markets=KRW-BTC,... (one unknown code fails the whole call
            with 404); /v1/market/all for the market list. 10 req/s per group per IP.
"""

import json
import uuid

import msgspec

from shared import cli
from shared.numbers import ABSENT, NumberError, raw_plain_all_or_none
from shared.record import ExchangeError, FrameError, Source, Ticker
from shared.venue import Market, Venue, comma_joined_urls

REST_MARKETS_PER_CALL = 100


class ErrorBody(msgspec.Struct):
    name: str | int
    message: str


class Prices(msgspec.Struct):
    """The ticker keys we use, named alike on the socket and in REST."""

    trade_price: msgspec.Raw = ABSENT
    opening_price: msgspec.Raw = ABSENT
    high_price: msgspec.Raw = ABSENT
    low_price: msgspec.Raw = ABSENT
    acc_trade_volume_24h: msgspec.Raw = ABSENT
    acc_trade_price_24h: msgspec.Raw = ABSENT
    timestamp: int | None = None


class Frame(Prices):
    """A DEFAULT-format ticker, a status frame or an error."""

    type: str | None = None
    code: str | None = None
    status: str | None = None
    error: ErrorBody | None = None


# The SIMPLE format: the same frame with these keys abbreviated (the docs' ticker table).
SIMPLE_KEYS = {"type": "ty", "code": "cd", "trade_price": "tp", "opening_price": "op", "high_price": "hp",
               "low_price": "lp", "acc_trade_volume_24h": "atv24h", "acc_trade_price_24h": "atp24h",
               "timestamp": "tms"}
SimpleFrame = msgspec.defstruct("SimpleFrame", [(field.name, field.type, field.default)
                                                for field in msgspec.structs.fields(Frame)], rename=SIMPLE_KEYS)


class RestTicker(Prices, kw_only=True):
    market: str


class MarketInfo(msgspec.Struct):
    market: str


class Upbit(Venue):
    name = "upbit"
    market_id_form = ("-", True)  # KRW-BTC
    # One connection can carry all ~855 markets; 300 keeps a dropped socket's blast
    # radius small while staying within 5 connects/s.
    markets_per_connection = 300
    rest_markets_per_call = REST_MARKETS_PER_CALL
    rest_unknown_market = "Code not found"  # HTTP 404 {"error":{"name":404,"message":"Code not found"}}
    protocol_ping_interval_s = 20.0

    _frames = msgspec.json.Decoder(Frame | list[Frame])  # a list in the *_LIST formats
    _simple_frames = msgspec.json.Decoder(SimpleFrame | list[SimpleFrame])  # type: ignore[valid-type]
    _rest_tickers = msgspec.json.Decoder(list[RestTicker])
    _market_list = msgspec.json.Decoder(list[MarketInfo])

    def market(self, base: str, quote: str) -> Market:
        return Market(raw=f"{quote}-{base}", base=base, quote=quote)

    def subscribe_messages(self, markets: list[Market]) -> list[str]:
        return [json.dumps([
            {"ticket": str(uuid.uuid4())},
            {"type": "ticker", "codes": [market.raw for market in markets]},
            {"format": "DEFAULT"},
        ])]

    def parse_ws(self, frame: bytes, received_ns: int) -> list[Ticker]:
        message = self._frames.decode(frame)
        items = message if type(message) is list else [message]
        if items and items[0].type is None:
            if items[0].status is not None:
                return []  # {"status":"UP"}: keepalive answer
            if items[0].error is not None:
                raise ExchangeError(f"{items[0].error.name}: {items[0].error.message}")
            # Perhaps the SIMPLE format: read again with its keys.
            simple = self._simple_frames.decode(frame)
            items = simple if type(simple) is list else [simple]
        return [self._from_frame(item, received_ns) for item in items]

    def _from_frame(self, message: Frame, received_ns: int) -> Ticker:
        if message.type == "ticker" and message.code is not None:
            return self._ticker(message.code, message, received_ns, "ws")
        raise FrameError("neither a ticker, a status nor an error frame")

    def market_list_url(self) -> str:
        return f"{self.rest_base}/v1/market/all"

    def parse_market_list(self, body: bytes, quotes: list[str]) -> list[Market]:
        wanted = set(quotes)
        markets = []
        for info in self._market_list.decode(body):
            quote, _, base = info.market.partition("-")
            if quote in wanted and base:
                markets.append(Market(raw=info.market, base=base, quote=quote))
        return markets

    def rest_ticker_urls(self, markets: list[Market]) -> list[str]:
        return comma_joined_urls(f"{self.rest_base}/v1/ticker?markets=", markets, REST_MARKETS_PER_CALL)

    def parse_rest_ticker(self, body: bytes, received_ns: int) -> list[Ticker]:
        return [self._ticker(item.market, item, received_ns, "rest") for item in self._rest_tickers.decode(body)]

    def _ticker(self, raw: str, prices: Prices, received_ns: int, source: Source) -> Ticker:
        last, open_24h, high_24h, low_24h, volume_24h, quote_volume_24h = raw_plain_all_or_none(
            prices.trade_price, prices.opening_price, prices.high_price, prices.low_price,
            prices.acc_trade_volume_24h, prices.acc_trade_price_24h)
        if last is None:
            raise NumberError("ticker without a trade_price")
        # The ticker type carries no best bid/ask.
        return Ticker(
            self.name, self.symbol_of(raw), raw, last, None, None, None, None,
            open_24h, high_24h, low_24h, volume_24h, quote_volume_24h,
            prices.timestamp, received_ns, source,
        )


if __name__ == "__main__":
    cli.main(Upbit)
