"""OKX parsing on verbatim payloads (tests/fixtures/okx, see SOURCES.md there)."""

import asyncio
import json

import msgspec
import pytest

from shared.book import OKX, BookLost, OrderBook
from shared.record import ExchangeError, FrameError, ServerRestart
from shared.venue import BookMessage
from shared.worker import Connection
from tests.conftest import book_worker, fixture_bytes
from workers.okx import Okx

REST = "https://www.okx.com"


@pytest.fixture
def venue() -> Okx:
    okx = Okx("wss://ws.okx.com:8443/ws/v5/public", REST)
    okx.learn([okx.market("BTC", "USDT"), okx.market("ETH", "USDT")])
    return okx


def test_real_ticker_every_field(venue: Okx) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("okx", "ws_ticker_1.json"), 7)
    assert (ticker.exchange, ticker.symbol, ticker.raw_symbol) == ("okx", "BTC-USDT", "BTC-USDT")
    assert (ticker.last, ticker.bid, ticker.ask) == ("30236", "30228.6", "30228.7")
    assert (ticker.bid_size, ticker.ask_size) == ("0.23393", "1.55896972")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("29700.4", "31073", "28020.3")
    # SPOT: vol24h is in the base currency, volCcy24h in the quote currency.
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("17602.13085371", "525802090.62716611")
    assert (ticker.exchange_ts, ticker.received_ns, ticker.source) == (1652459224956, 7, "ws")


def test_next_ticker_of_the_recording(venue: Okx) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("okx", "ws_ticker_1b_next.json"), 8)
    assert (ticker.last, ticker.volume_24h, ticker.quote_volume_24h) == (
        "30243.5", "17602.13889433", "525802333.80365708")
    assert ticker.exchange_ts == 1652459226124


def test_data_with_several_tickers(venue: Okx) -> None:
    """`data` is an array, normally of one ticker (no verbatim push of two was found):
    the recording's two real tickers in one push are two records, in order."""
    first, second = (json.loads(fixture_bytes("okx", name)) for name in ("ws_ticker_1.json", "ws_ticker_1b_next.json"))
    both = json.dumps({"arg": first["arg"], "data": first["data"] + second["data"]}).encode()
    assert [(ticker.last, ticker.exchange_ts) for ticker in venue.parse_ws(both, 1)] == [
        ("30236", 1652459224956), ("30243.5", 1652459226124)]


def test_pretty_printed_doc_ticker(venue: Okx) -> None:
    [ticker] = venue.parse_ws(fixture_bytes("okx", "ws_ticker_doc.json"), 1)
    assert (ticker.last, ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (
        "9999.99", "8888.88", "9999.99", "5", "11")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("9000", "10000", "8888.88")
    assert (ticker.volume_24h, ticker.quote_volume_24h, ticker.exchange_ts) == ("2222", "2222", 1597026383085)


def test_ts_as_a_json_number_and_exponent_prices(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json")
    frame = frame.replace(b'"ts":"1652459224956"', b'"ts":1652459224956')
    frame = frame.replace(b'"last":"30236"', b'"last":"3.0236E4"').replace(b'"bidSz":"0.23393"', b'"bidSz":"0E-8"')
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.last, ticker.bid_size, ticker.exchange_ts) == ("30236", "0.00000000", 1652459224956)


def test_empty_book_fields_become_null(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json")
    for key in (b"bidPx", b"bidSz", b"askPx", b"askSz"):
        frame = frame.replace(b'"' + key + b'":"', b'"' + key + b'":"",' + b'"_' + key + b'":"')
    [ticker] = venue.parse_ws(frame, 1)
    assert (ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (None, None, None, None)
    assert ticker.last == "30236"


def test_a_price_as_a_json_number_is_rejected(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json").replace(b'"last":"30236"', b'"last":30236')
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("ts", [b'"ts":"1652459224956.5"', b'"ts":"soon"', b'"ts":""'])
def test_a_bad_ts_is_rejected(venue: Okx, ts: bytes) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json").replace(b'"ts":"1652459224956"', ts)
    with pytest.raises(msgspec.ValidationError):
        venue.parse_ws(frame, 1)


def test_a_ticker_without_last_price_is_a_frame_error(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json").replace(b'"last":"30236"', b'"last":""')
    with pytest.raises(FrameError, match="without a last price"):
        venue.parse_ws(frame, 1)


def test_data_of_another_channel_is_not_read_as_a_ticker(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json").replace(b'"channel":"tickers"', b'"channel":"index-tickers"')
    with pytest.raises(FrameError, match="other than tickers"):
        venue.parse_ws(frame, 1)


def test_unknown_symbol_is_a_frame_error(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_ticker_1.json").replace(b"BTC-USDT", b"NOPE-USDT")
    with pytest.raises(FrameError, match="unknown symbol 'NOPE-USDT'"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("name", ["ws_subscribe_ack_doc.json", "ws_subscribe_ack_real_2022.json",
                                  "ws_subscribe_ack_real_2026_trades.json"])
def test_acks_with_and_without_id_and_conn_id(venue: Okx, name: str) -> None:
    assert venue.parse_ws(fixture_bytes("okx", name), 1) == []


def test_unsubscribe_ack(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_subscribe_ack_real_2022.json").replace(b'"subscribe"', b'"unsubscribe"')
    assert venue.parse_ws(frame, 1) == []


def test_text_pong_is_keepalive(venue: Okx) -> None:
    assert venue.parse_ws(fixture_bytes("okx", "ws_pong.txt"), 1) == []


def test_app_ping_is_the_text_ping(venue: Okx) -> None:
    assert venue.app_ping() == fixture_bytes("okx", "ws_ping.txt").decode()
    assert venue.protocol_ping_interval_s is None
    assert venue.app_ping_interval_s < 30


@pytest.mark.parametrize(("name", "code"), [("ws_error_60012_doc.json", "60012"), ("ws_error_60018.json", "60018")])
def test_error_frames(venue: Okx, name: str, code: str) -> None:
    with pytest.raises(ExchangeError, match=f"error {code}: "):
        venue.parse_ws(fixture_bytes("okx", name), 1)


def test_service_upgrade_notice_asks_for_a_reconnect(venue: Okx) -> None:
    with pytest.raises(ServerRestart, match="64008"):
        venue.parse_ws(fixture_bytes("okx", "ws_notice_64008_doc.json"), 1)


def test_other_notices_are_exchange_errors(venue: Okx) -> None:
    frame = fixture_bytes("okx", "ws_notice_64008_doc.json").replace(b'"64008"', b'"64009"')
    with pytest.raises(ExchangeError, match="notice 64009"):
        venue.parse_ws(frame, 1)


@pytest.mark.parametrize("frame", [b"ping", b'{"event":"login","code":"0"}', b'{"unexpected":[1,2,3]}',
                                   fixture_bytes("okx", "ws_subscribe_request_doc.json")])
def test_anything_else_is_not_misread(venue: Okx, frame: bytes) -> None:
    with pytest.raises(Exception) as caught:
        venue.parse_ws(frame, 1)
    assert not isinstance(caught.value, (ExchangeError, ServerRestart))


def test_subscribe_is_one_request_with_one_arg_per_instrument(venue: Okx) -> None:
    [message] = venue.subscribe_messages([venue.market("BTC", "USDT"), venue.market("ETH", "USDT")])
    assert message == ('{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},'
                       '{"channel":"tickers","instId":"ETH-USDT"}]}')
    # The documented request, without the optional id, has the same shape.
    documented = json.loads(fixture_bytes("okx", "ws_subscribe_request_doc.json"))
    documented.pop("id")
    [single] = venue.subscribe_messages([venue.market("BTC", "USDT")])
    assert json.loads(single) == documented


def test_a_full_connection_subscribes_within_the_request_size_cap(venue: Okx) -> None:
    markets = [venue.market(f"SIM{index:04d}", "USDT") for index in range(venue.markets_per_connection)]
    [message] = venue.subscribe_messages(markets)
    assert len(message.encode()) < 64 * 1024


def test_rest_ticker(venue: Okx) -> None:
    [url] = venue.rest_ticker_urls([venue.market("BTC", "USDT")])
    assert url == f"{REST}/api/v5/market/tickers?instType=SPOT"
    [ticker] = venue.parse_rest(url, fixture_bytes("okx", "rest_ticker.json"), 3, [])
    assert (ticker.symbol, ticker.raw_symbol, ticker.source, ticker.received_ns) == (
        "BTC-USDT", "BTC-USDT", "rest", 3)
    assert (ticker.last, ticker.bid, ticker.ask, ticker.bid_size, ticker.ask_size) == (
        "16839.1", "16839", "16839.1", "0.16038", "5.93754444")
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == ("16659.1", "16988", "16651.7")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("5150.98223027", "86702682.03645192")
    assert ticker.exchange_ts == 1672863560203


def test_rest_skips_markets_not_collected_and_untraded_ones(venue: Okx) -> None:
    item = json.loads(fixture_bytes("okx", "rest_ticker.json"))["data"][0]
    others = [item | {"instId": "BTC-USDT-SWAP", "instType": "SWAP"}, item | {"instId": "ETH-USDT", "last": ""}]
    body = json.dumps({"code": "0", "msg": "", "data": [*others, item]}).encode()
    tickers = venue.parse_rest(f"{REST}/api/v5/market/tickers?instType=SPOT", body, 1, [])
    assert [ticker.symbol for ticker in tickers] == ["BTC-USDT"]


def test_rest_error_envelope(venue: Okx) -> None:
    body = b'{"code":"51000","msg":"Parameter instType error","data":[]}'
    with pytest.raises(ExchangeError, match="code 51000: Parameter instType error"):
        venue.parse_rest(f"{REST}/api/v5/market/tickers?instType=SPOT", body, 1, [])


def test_market_list_teaches_live_markets_by_quote(venue: Okx) -> None:
    url = venue.market_list_url()
    assert url == f"{REST}/api/v5/public/instruments?instType=SPOT"
    document = json.loads(fixture_bytes("okx", "rest_instruments_spot_doc.json"))
    [btc] = document["data"]
    document["data"] += [btc | {"instId": "ETH-BTC", "baseCcy": "ETH", "quoteCcy": "BTC"},
                         btc | {"instId": "LUNA-USDT", "baseCcy": "LUNA", "state": "suspend"},
                         btc | {"instId": "1INCH-USDT", "baseCcy": "1INCH"}]
    markets = venue.parse_market_list(json.dumps(document).encode(), ["USDT"])
    assert [(market.raw, market.symbol) for market in markets] == [("BTC-USDT", "BTC-USDT"),
                                                                   ("1INCH-USDT", "1INCH-USDT")]
    okx = Okx("wss://ws.okx.com:8443/ws/v5/public", REST)
    assert okx.parse_rest(url, fixture_bytes("okx", "rest_instruments_spot_doc.json"), 1, ["USDT"]) == []
    assert okx.symbol_of("BTC-USDT") == "BTC-USDT"
    with pytest.raises(FrameError):
        okx.symbol_of("ETH-BTC")


def test_market_list_error_envelope(venue: Okx) -> None:
    with pytest.raises(ExchangeError, match="code 50011"):
        venue.parse_market_list(b'{"code":"50011","msg":"Too Many Requests","data":[]}', ["USDT"])


# --- order book (the `books` channel) -----------------------------------------------------


def test_book_snapshot_and_update_carry_the_sequence_and_checksum(venue: Okx) -> None:
    [snapshot] = venue.parse_book_ws(fixture_bytes("okx", "ws_books_snapshot_doc.json"), 5)
    assert (snapshot.raw, snapshot.snapshot, snapshot.update_id, snapshot.first_id) == ("BTC-USDT", True, 123456, None)
    assert (snapshot.checksum, snapshot.exchange_ts) == (-855196043, 1597026383085)
    assert snapshot.bids[0] == ("8476.97", "256") and snapshot.asks[1] == ("8477", "7")
    [update] = venue.parse_book_ws(fixture_bytes("okx", "book_ws_books_update_doc.json"), 5)
    # prevSeqId 123456 -> first_id 123457: it follows the snapshot's seqId.
    assert (update.snapshot, update.first_id, update.update_id) == (False, 123457, 123457)
    assert update.asks[0] == ["8476.98", "415", "0", "13"]


def test_book_update_applies_and_the_docs_checksum_is_refused(venue: Okx) -> None:
    """The docs' example checksum does not match its own levels (docs/books.md): the book
    built from them is lost as a checksum failure, which is what a wrong checksum must do."""
    [snapshot] = venue.parse_book_ws(fixture_bytes("okx", "ws_books_snapshot_doc.json"), 5)
    book = OrderBook("BTC-USDT", 5, checksum=OKX)
    book.replace(list(snapshot.bids), list(snapshot.asks))  # type: ignore[arg-type]
    with pytest.raises(BookLost) as lost:
        book.check(snapshot.checksum)
    assert lost.value.reason == "checksum"


def test_book_acks_errors_and_notices(venue: Okx) -> None:
    assert venue.parse_book_ws(fixture_bytes("okx", "book_ws_books_subscribe_ack_real_2022.json"), 5) == []
    assert venue.parse_book_ws(fixture_bytes("okx", "ws_pong.txt").strip(), 5) == []
    with pytest.raises(ExchangeError, match="60012"):
        venue.parse_book_ws(fixture_bytes("okx", "book_ws_subscribe_error_doc.json"), 5)
    with pytest.raises(ServerRestart):
        venue.parse_book_ws(fixture_bytes("okx", "ws_notice_64008_doc.json"), 5)
    with pytest.raises(msgspec.ValidationError):  # a ticker on a book socket: dead-lettered
        venue.parse_book_ws(fixture_bytes("okx", "ws_ticker_1.json"), 5)


def test_book_resubscribe_is_unsubscribe_then_subscribe(venue: Okx) -> None:
    [market] = [venue.market("BTC", "USDT")]
    assert [json.loads(message) for message in venue.book_resubscribe_messages([market], 10)] == [
        {"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
        {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}]


def test_book_rest_names_its_instrument_in_the_url(venue: Okx) -> None:
    [url] = venue.book_rest_urls([venue.market("BTC", "USDT")], 10)
    assert url == f"{REST}/api/v5/market/books?instId=BTC-USDT&sz=400"
    [message] = venue.parse_rest_book(url, fixture_bytes("okx", "book_rest_books_doc.json"), 5)
    assert (message.raw, message.snapshot, message.update_id) == ("BTC-USDT", True, None)
    assert (message.bids, message.asks) == ([("41006.3", "0.30178218")], [("41006.8", "0.60038921")])
    assert message.exchange_ts == 1629966436396


def test_books_lost_again_and_again_are_resubscribed_within_okxs_request_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that repeats an old sequence id loses a book again at each snapshot: each
    loss resubscribed at once (242 requests in 3 s in the simulator, past OKX's 480 an hour
    a connection, answered 60014 from then on). Now a socket's requests go
    book_resubscribe_gap_s apart, the markets lost meanwhile in one."""
    assert 3600 / Okx.book_resubscribe_gap_s * 2 <= 480  # a resubscribe is two requests
    venue = Okx("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com")
    worker, books, markets = book_worker(venue, ["BTC-USDT", "ETH-USDT"])
    stats = worker.stats
    connection = Connection(worker, markets, 0, books)
    requests: list[list[str]] = []
    monkeypatch.setattr(connection, "send_soon", requests.append)
    monkeypatch.setattr(venue, "book_resubscribe_gap_s", 0.2)
    try:  # the loop runs only for the paced request below
        for update_id in range(10, 60):
            for market in markets:
                books._take(BookMessage(market.raw, True, [("100", "1")], [("101", "1")], update_id), 1, "ws", "", b"")
                books._take(BookMessage(market.raw, False, [("100", "2")], [], 5, 5), 1, "ws", "", b"")  # an old id
        assert len(requests) == 1 and stats.book_resyncs == {"gap": 100}
        worker.loop.run_until_complete(asyncio.sleep(0.3))
        assert len(requests) == 2
        for message in requests[1]:  # the unsubscribe, then the subscribe
            assert sorted(arg["instId"] for arg in json.loads(message)["args"]) == ["BTC-USDT", "ETH-USDT"]
    finally:
        worker.loop.close()
        worker.sink.close(1)
