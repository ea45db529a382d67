"""bench.book measures what it says: its frames are shaped like the exchanges' and its passes handle them."""

import msgspec
import pytest

from bench.book import MEASURES, depth20_frames
from workers.binance import Binance


@pytest.mark.parametrize("name", list(MEASURES))
def test_each_measure_handles_its_frames(name: str) -> None:
    frames_of, new_pass = MEASURES[name]
    handle = new_pass()
    # An OKX update whose checksum or seqId did not follow would raise BookLost here.
    published = [handle(frame) for frame in frames_of(300)]
    if name.startswith("okx") and name.endswith("-runtime"):
        # Its first record came from the snapshot, before the measured updates.
        assert not any(published)
    elif name.startswith("okx"):
        # The market's first record, then nothing: the updates stay below the top 10.
        assert published[0] is not None and not any(published[1:])
    else:
        assert 0.5 < sum(map(bool, published)) / len(published) <= 1


class CountingDecoder:
    """A decoder that counts its calls and decodes as the one it stands for."""

    def __init__(self, decoder: msgspec.json.Decoder) -> None:
        self.decoder = decoder
        self.calls = 0

    def decode(self, frame: bytes) -> object:
        self.calls += 1
        return self.decoder.decode(frame)


def test_a_partial_depth_push_is_decoded_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # depth20-runtime's frames: the envelope decoder, which leaves `data` to a second
    # decode (msgspec then skips the levels twice, ~17k instructions a frame), is kept
    # for the other frames, here an ack.
    envelopes = CountingDecoder(Binance._book_frames)
    monkeypatch.setattr(Binance, "_book_frames", envelopes)
    venue = Binance("wss://stream.binance.com:9443/stream", "https://data-api.binance.vision")
    for frame in depth20_frames(3):
        [message] = venue.parse_book_ws(frame, 1)
        assert (message.raw, message.snapshot, len(message.bids), len(message.asks)) == ("BTCUSDT", True, 20, 20)
    assert envelopes.calls == 0
    assert venue.parse_book_ws(b'{"result":null,"id":1}', 1) == []
    assert envelopes.calls == 1
