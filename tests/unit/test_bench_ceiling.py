"""bench.ceiling's pipelines read the simulator's frames as the worker does: the same
markets, the same digits. Otherwise the ceiling it measures is of some other work."""

import msgspec
import pytest

from bench.ceiling import PIPELINES
from bench.tiers import fresh_venue, sample_frames
from shared.numbers import raw_plain


@pytest.mark.parametrize("exchange", sorted(PIPELINES))
def test_ceiling_pipeline_keeps_each_ticker_s_market_and_last_price(exchange: str) -> None:
    struct, records = PIPELINES[exchange]
    decoder = msgspec.json.Decoder(struct)
    venue = fresh_venue(exchange)
    frames = sample_frames(exchange, 200)
    for frame in frames:
        [record] = records(decoder, frame, 1)
        [ticker] = venue.parse_ws(frame, 1)
        last = record.numbers[0]
        assert record.symbol == ticker.raw_symbol
        assert (raw_plain(last) if isinstance(last, msgspec.Raw) else last) == ticker.last


@pytest.mark.parametrize("exchange", sorted(PIPELINES))
def test_ceiling_pipeline_skips_the_subscribe_answer(exchange: str) -> None:
    struct, records = PIPELINES[exchange]
    answers = {"binance": b'{"result":null,"id":1}',
               "okx": b'{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
               "upbit": b'{"status":"UP"}'}
    assert records(msgspec.json.Decoder(struct), answers[exchange], 1) == []
