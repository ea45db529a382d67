"""shared.worker.read_pause: how long a socket rests after a read (runtime.read_pause_s)."""

import pytest

from shared.worker import FRAMES_PER_READ, read_pause

MAX_PAUSE_S = 0.01


def test_expectations_below_assume_ten_frames_a_read() -> None:
    assert FRAMES_PER_READ == 10


@pytest.mark.parametrize(("rate_per_s", "expected_s"), [
    (100, MAX_PAUSE_S),  # ten frames would take 100 ms: read at the cap
    (1_000, MAX_PAUSE_S),  # ten frames take 10 ms
    (5_000, 0.002),
    (10_000, 0.001),
    (20_000, 0.0),  # ten frames in 0.5 ms: under a timer's millisecond, read at once
    (130_000, 0.0),  # flat out: never paused, so never capped
])
def test_pause_is_the_time_ten_frames_take_at_the_rate_seen(rate_per_s: float, expected_s: float) -> None:
    window_s = 0.1
    assert read_pause(window_s, round(rate_per_s * window_s), MAX_PAUSE_S) == pytest.approx(expected_s)


def test_a_fast_feed_held_back_by_full_pauses_is_then_read_at_once() -> None:
    # 50,000 frames/s after a quiet spell: the first window paused every read by 10 ms,
    # yet ten reads brought 20,000 frames in it, so the next window pauses none.
    assert read_pause(0.1, 20_000, MAX_PAUSE_S) == 0.0


def test_a_window_without_data_frames_counts_as_one() -> None:
    # Pings only, or the start of a socket: no division by zero, a full pause.
    assert read_pause(1.0, 0, MAX_PAUSE_S) == MAX_PAUSE_S
