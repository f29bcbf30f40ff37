# SPDX-License-Identifier: GPL-3.0-or-later
"""A token bucket: at most `rate` events per second on average, `burst` at once (no I/O, no clock).

The caller passes `now` (its own monotonic clock), so the rule is tested with stepped time.
"""

from __future__ import annotations


class TokenBucket:
    """`burst` tokens to start with, refilled at `rate` per second up to `burst`; each event
    takes one, and an event that finds none is refused."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Take one token at time `now`; False (and nothing taken) when there is none."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
