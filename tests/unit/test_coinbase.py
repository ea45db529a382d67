"""Coinbase Exchange parsing on verbatim payloads (tests/fixtures/coinbase, see SOURCES.md there)."""

import json

import msgspec
import pytest

from shared.record import ExchangeError, FrameError
from tests.conftest import fixture_bytes
from workers.coinbase import Coinbase, epoch_ms

TICKER_URL = "https://api.exchange.coinbase.com/products/{}/ticker"


@pytest.fixture
def venue() -> Coinbase:
    coinbase = Coinbase("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com")
    coinbase.learn([coinbase.market("BTC", "USD"), coinbase.market("BAND", "GBP")])
    return coinbase


# The feed added best_bid_size/best_ask_size in 2022. The reference samples' ticker with them is
# kept aside for acceptance checks, so this one is the 2022 sample with the two fields inserted in
# their documented places (coinbase.md, the ticker channel), sizes of our own.
SIZED_TICKER = fixture_bytes("coinbase", "ws_exchange_ticker_2022.json").replace(
    b'"best_bid":"29940.90",', b'"best_bid":"29940.90","best_bid_size":"0.05000000",').replace(
    b'"best_ask":"29940.91",', b'"best_ask":"29940.91","best_ask_size":"1.16539E8",')


def test_ticker_with_top_of_book_sizes(venue: Coinbase) -> None:
    [ticker] = venue.parse_ws(SIZED_TICKER, 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("coinbase", "BTC-USD", "BTC-USD")
    # Not fixed width: the high "31888" and the bid "29940.90" keep their own digits.
    assert (ticker.last, ticker.bid, ticker.ask) == ("29940.91", "29940.90", "29940.91")
    assert (ticker.bid_size, ticker.ask_size) == ("0.05000000", "116539000")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("31677.61", "31888", "29308.01")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("27783.70216674", None)
    # 2022-06-02T09:20:54.127011Z, cut to the millisecond.
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1654161654127, 7, "ws")


def test_tickers_from_before_the_size_fields(venue: Coinbase) -> None:
    [band] = venue.parse_ws(fixture_bytes("coinbase", "ws_exchange_ticker_2021.json"), 1)
    assert (band.symbol, band.last, band.bid, band.ask) == ("BAND-GBP", "14.7775", "14.7550", "14.8060")
    assert (band.bid_size, band.ask_size) == (None, None)
    assert (band.open_24h, band.high_24h, band.low_24h, band.volume_24h) == (
        "14.6647", "16.55", "14.3691", "94381.28000000")
    assert band.exchange_ts == 1618677810244  # 2021-04-17T16:43:30.244075Z
    [btc] = venue.parse_ws(fixture_bytes("coinbase", "ws_exchange_ticker_2022.json"), 1)
    assert (btc.last, btc.high_24h, btc.bid, btc.exchange_ts) == ("29940.91", "31888", "29940.90", 1654161654127)


@pytest.mark.parametrize("name", ["ws_exchange_subscriptions_ack_2021.json",
                                  "ws_exchange_subscriptions_ack_2025_unattributed.json",
                                  "ws_exchange_heartbeat_doc.json"])
def test_acks_and_heartbeats_are_not_tickers(venue: Coinbase, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("coinbase", name), 1) == []


def test_message_types_added_later_are_ignored(venue: Coinbase) -> None:
    assert venue.parse_ws(b'{"type":"status","products":[],"currencies":[]}', 1) == []


@pytest.mark.parametrize("frame, text", [
    (b'{"type":"error","message":"Failed to subscribe","reason":"GIBBERISH-USD is not a valid product"}',
     "Failed to subscribe: GIBBERISH-USD is not a valid product"),
    (b'{"type":"error","message":"Malformed JSON"}', "Malformed JSON"),
])
def test_error_frames(venue: Coinbase, frame: bytes, text: str) -> None:
    with pytest.raises(ExchangeError) as caught:
        venue.parse_ws(frame, 1)
    assert str(caught.value) == text


# The Advanced Trade feed's frames, which other tools (ccxt) record: read as well.

def test_advanced_trade_ticker(venue: Coinbase) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("coinbase", "ws_advanced_ticker_unattributed.json"), 6)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol, ticker.last) == (
        "coinbase", "BTC-USD", "BTC-USD", "64281.7")
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (
        "64281.7", "64281.71", "0.21558849", "0.02287045")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == (None, "64727.27", "63454")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("3974.98800786", None)
    # No trade time in this feed: the envelope's send time, 2026-06-14T05:35:45.435813533Z.
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1781415345435, 6, "ws")


def test_advanced_trade_empty_placeholder_and_heartbeats_carry_nothing(venue: Coinbase) -> None:
    assert venue.parse_ws(fixture_bytes("coinbase", "ws_advanced_ticker_batch_empty_quirk.json"), 1) == []
    assert venue.parse_ws(fixture_bytes("coinbase", "ws_advanced_heartbeats_doc.json"), 1) == []


def test_advanced_trade_channel_never_asked_for_is_dead_lettered(venue: Coinbase) -> None:
    frame = fixture_bytes("coinbase", "ws_advanced_ticker_unattributed.json").replace(
        b'"channel":"ticker"', b'"channel":"l2_data"')
    with pytest.raises(FrameError, match="l2_data"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("old, new", [
    (b'"price":"29940.91"', b'"price":""'),  # the empty placeholders of Coinbase's other feed
    (b'"price":"29940.91"', b'"price":29940.91'),  # a float where a decimal string belongs
    (b'"product_id":"BTC-USD",', b""),
])
def test_known_type_of_the_wrong_shape_is_rejected(venue: Coinbase, old: bytes, new: bytes) -> None:
    frame = SIZED_TICKER.replace(old, new)
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(frame, 1)


def test_unknown_symbol_is_a_frame_error(venue: Coinbase) -> None:
    frame = fixture_bytes("coinbase", "ws_exchange_ticker_2022.json").replace(b'"BTC-USD"', b'"NOPE-USD"')
    with pytest.raises(FrameError, match="unknown symbol 'NOPE-USD'"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("text, ms", [
    ("2026-06-19T16:43:33.016274911Z", 1781887413016),  # 9 digits: cut, never rounded up
    ("2026-06-19T16:43:33.999999999Z", 1781887413999),
    ("2020-01-28T02:13:33.012523Z", 1580177613012),
    ("2020-01-28T02:13:33.5Z", 1580177613500),
    ("2020-01-28T02:13:33Z", 1580177613000),
])
def test_times_become_utc_milliseconds(text: str, ms: int) -> None:
    assert epoch_ms(text) == ms


@pytest.mark.parametrize("text", ["2020-01-28T02:13:33.012523", "2020-01-28T02:13:33.012523+01:00",
                                  "2020-01-28T02:13:33,5Z", "2020-01-28T02:13:33.Z"])
def test_times_that_are_not_utc_rfc3339_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        epoch_ms(text)


def test_time_in_a_ticker_is_checked(venue: Coinbase) -> None:
    frame = fixture_bytes("coinbase", "ws_exchange_ticker_2022.json").replace(b'.127011Z"', b'.127011+00:00"')
    with pytest.raises(FrameError, match="not a UTC time"):
        venue.parse_ws(frame, 1)


def test_rest_ticker_takes_the_product_from_the_url(venue: Coinbase) -> None:
    # Today's body (coinbase.md, REST ticker): `time` with 9 fraction digits and fields the contract
    # does not carry, such as `rfq_volume`. The reference capture of it is kept aside for acceptance
    # checks, so this is the 2020 sample with its time and an extra field changed that way.
    body = fixture_bytes("coinbase", "rest_exchange_ticker_2020.json").replace(
        b'"time":"2020-01-28T02:13:33.012523Z"', b'"time":"2020-01-28T02:13:33.012523911Z","rfq_volume":"3.5"')
    [ticker] = venue.parse_rest(TICKER_URL.format("BTC-USD"), body, 5, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.source) == ("BTC-USD", "BTC-USD", "rest")
    assert (ticker.last, ticker.bid, ticker.ask, ticker.volume_24h) == ("0.997999", "0.997094", "0.998",
                                                                        "1903188.03750000")
    assert (ticker.bid_size, ticker.ask_size, ticker.open_24h, ticker.high_24h, ticker.low_24h,
            ticker.quote_volume_24h) == (None, None, None, None, None, None)
    assert (ticker.exchange_ts, ticker.received_ns) == (1580177613012, 5)


def test_rest_ticker_of_2020(venue: Coinbase) -> None:
    body = fixture_bytes("coinbase", "rest_exchange_ticker_2020.json")
    [ticker] = venue.parse_rest(TICKER_URL.format("BAND-GBP"), body, 5, [])
    assert (ticker.symbol, ticker.last, ticker.bid, ticker.ask) == ("BAND-GBP", "0.997999", "0.997094", "0.998")
    assert (ticker.volume_24h, ticker.exchange_ts) == ("1903188.03750000", 1580177613012)


def test_rest_ticker_of_an_unknown_product(venue: Coinbase) -> None:
    body = fixture_bytes("coinbase", "rest_exchange_ticker_2020.json")
    with pytest.raises(FrameError, match="unknown symbol 'ETH-USD'"):
        venue.parse_rest(TICKER_URL.format("ETH-USD"), body, 5, [])


def test_deprecated_host_answer_is_not_a_ticker(venue: Coinbase) -> None:
    with pytest.raises(msgspec.ValidationError):
        venue.parse_rest(TICKER_URL.format("BTC-USD"), fixture_bytes("coinbase", "rest_exchange_deprecated_pro.json"),
                         1, [])


def test_rest_body_from_an_unknown_url_is_refused(venue: Coinbase) -> None:
    with pytest.raises(FrameError):
        venue.parse_rest("https://api.exchange.coinbase.com/products/stats", b"{}", 1, [])


def test_one_ticker_url_per_product(venue: Coinbase) -> None:
    urls = venue.rest_ticker_urls([venue.market("BTC", "USD"), venue.market("ETH", "EUR")])
    assert urls == [TICKER_URL.format("BTC-USD"), TICKER_URL.format("ETH-EUR")]


def test_subscribe_message_asks_for_tickers_and_heartbeats(venue: Coinbase) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "USD"), venue.market("ETH", "USD")])
    assert json.loads(message) == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                                   "channels": ["ticker", "heartbeat"]}
    # The same keys and channel form as the real 2021 request.
    sample = json.loads(fixture_bytes("coinbase", "ws_exchange_subscribe_2021.json"))
    assert sample.keys() == json.loads(message).keys() and isinstance(sample["channels"][0], str)


def test_market_list_keeps_online_products_in_the_wanted_quotes(venue: Coinbase) -> None:
    body = json.dumps([
        {"id": "SOL-USD", "base_currency": "SOL", "quote_currency": "USD", "status": "online",
         "trading_disabled": False, "cancel_only": False},
        {"id": "SOL-EUR", "base_currency": "SOL", "quote_currency": "EUR", "status": "online",
         "trading_disabled": False},
        {"id": "OLD-USD", "base_currency": "OLD", "quote_currency": "USD", "status": "delisted",
         "trading_disabled": True},
        {"id": "HALT-USD", "base_currency": "HALT", "quote_currency": "USD", "status": "online",
         "trading_disabled": True},
    ]).encode()
    assert venue.parse_rest("https://api.exchange.coinbase.com/products", body, 1, ["USD"]) == []
    assert venue.symbol_of("SOL-USD") == "SOL-USD"
    for refused in ("SOL-EUR", "OLD-USD", "HALT-USD"):
        with pytest.raises(FrameError):
            venue.symbol_of(refused)
