"""bench.book measures what it says: its frames are shaped like the exchanges' and its passes handle them."""

import pytest

from bench.book import MEASURES


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
