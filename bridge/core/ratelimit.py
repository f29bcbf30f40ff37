# SPDX-License-Identifier: GPL-3.0-or-later
"""One warning per interval per key, with a count of the ones held back (no I/O, no clock).

Every part of the daemon rate-limits its repeated warnings; the caller passes `now` (its own
monotonic clock), so the rule is tested with stepped time.
"""

from __future__ import annotations


class RateLimiter:
    """Lets a repeated warning through once per `interval_s` per key, counting the rest."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        """(should log, how many were suppressed since the last one)."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)
