"""shared.worker.read_pause: how long a socket rests after a read (runtime.read_pause_s
and runtime.frames_per_read)."""

import pytest

from shared.config import Runtime
from shared.worker import read_pause

SHIPPED = Runtime()
WINDOW_S = 0.1


def test_expectations_below_assume_the_shipped_twenty_frames_and_20_ms() -> None:
    assert (SHIPPED.frames_per_read, SHIPPED.read_pause_s) == (20, 0.02)


def frames_in_window(rate_per_s: float) -> int:
    return round(rate_per_s * WINDOW_S)


@pytest.mark.parametrize(("rate_per_s", "expected_s"), [
    (100, 0.02),  # twenty frames would take 200 ms: read at the cap
    (1_000, 0.02),  # twenty frames take 20 ms
    (5_000, 0.004),
    (10_000, 0.002),
    (20_000, 0.001),
    (40_000, 0.0),  # twenty frames in 0.5 ms: under a timer's millisecond, read at once
    (130_000, 0.0),  # flat out: never paused, so never capped
])
def test_pause_is_the_time_twenty_frames_take_at_the_rate_seen(rate_per_s: float, expected_s: float) -> None:
    pause = read_pause(WINDOW_S, frames_in_window(rate_per_s), SHIPPED.read_pause_s, SHIPPED.frames_per_read)
    assert pause == pytest.approx(expected_s)


@pytest.mark.parametrize(("rate_per_s", "expected_s"), [
    (100, 0.05),  # fifty frames would take 500 ms: read at the cap
    (1_000, 0.05),  # fifty frames take 50 ms
    (10_000, 0.005),
    (50_000, 0.001),
    (100_000, 0.0),  # fifty frames in 0.5 ms: read at once
])
def test_more_frames_a_read_pause_longer_up_to_the_cap(rate_per_s: float, expected_s: float) -> None:
    assert read_pause(WINDOW_S, frames_in_window(rate_per_s), 0.05, 50) == pytest.approx(expected_s)


def test_a_fast_feed_held_back_by_full_pauses_is_then_read_at_once() -> None:
    # 50,000 frames/s after a quiet spell: the first window paused every read by 20 ms,
    # yet its five reads brought 5,000 frames, so the next window pauses none.
    assert read_pause(0.1, 5_000, SHIPPED.read_pause_s, SHIPPED.frames_per_read) == 0.0


def test_a_window_without_data_frames_counts_as_one() -> None:
    # Pings only, or the start of a socket: no division by zero, a full pause.
    assert read_pause(1.0, 0, SHIPPED.read_pause_s, SHIPPED.frames_per_read) == SHIPPED.read_pause_s
