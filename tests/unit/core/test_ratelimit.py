# SPDX-License-Identifier: GPL-3.0-or-later
"""RateLimiter: the first warning at once, then one per interval with the count held back."""

from bridge.core.ratelimit import RateLimiter


def test_once_per_interval_per_key_with_the_count() -> None:
    r = RateLimiter(60.0)
    assert r.allow("a", 0.0) == (True, 0)
    assert r.allow("a", 1.0) == (False, 0)
    assert r.allow("a", 59.9) == (False, 0)
    assert r.allow("b", 2.0) == (True, 0)  # keys are independent
    assert r.allow("a", 60.0) == (True, 2)
    assert r.allow("a", 120.0) == (True, 0)
