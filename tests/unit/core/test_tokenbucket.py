# SPDX-License-Identifier: GPL-3.0-or-later
"""TokenBucket: a burst at once, then the rate, never more than the burst saved up."""

import pytest

from bridge.core.tokenbucket import TokenBucket


def test_burst_then_rate_with_stepped_time() -> None:
    b = TokenBucket(4.0, 4)
    assert [b.take(0.0) for _ in range(6)] == [True] * 4 + [False] * 2
    assert b.take(0.1) is False  # 0.4 of a token
    assert b.take(0.25) is True  # one token after 1/4 s
    assert b.take(0.25) is False
    # An idle hour saves up the burst, no more.
    assert [b.take(3600.0) for _ in range(5)] == [True] * 4 + [False]


def test_a_steady_flood_gets_the_rate() -> None:
    b = TokenBucket(4.0, 4)
    taken = sum(b.take(i / 30) for i in range(30 * 10))  # one request per frame for 10 s
    assert 40 <= taken <= 44  # 4 per second plus the first burst


def test_time_going_backwards_gives_nothing() -> None:
    b = TokenBucket(4.0, 1)
    assert b.take(10.0) is True
    assert b.take(5.0) is False


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 4)
    with pytest.raises(ValueError):
        TokenBucket(4.0, 0)
