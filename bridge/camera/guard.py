# SPDX-License-Identifier: GPL-3.0-or-later
"""The largest picture the camera side takes: a frame declaring more is refused unread.

A JPEG's SOF states the picture's size in four bytes, whatever the rest of the frame holds, so
a frame of a few hundred bytes can declare 30000x30000 and make a decoder allocate gigabytes
(the service's MemoryMax ends that in an OOM kill) or the camera switch to that size. No
supported borescope sends pictures near the default cap, so the pipeline asks this guard with
the size read from the header before it opens, resizes or decodes anything.
"""

from __future__ import annotations

import logging

from bridge.core.ratelimit import RateLimiter

log = logging.getLogger(__name__)

DEFAULT_MAX_PICTURE_SIZE = (4096, 4096)
WARN_INTERVAL_S = 60.0


class PictureGuard:
    """Counts and logs (rate-limited) the frames whose declared size is beyond ``max_size``."""

    def __init__(
        self,
        max_size: tuple[int, int] = DEFAULT_MAX_PICTURE_SIZE,
        interval_s: float = WARN_INTERVAL_S,
    ) -> None:
        self.max_size = max_size
        self.refused = 0
        self._limiter = RateLimiter(interval_s)

    def allows(self, size: tuple[int, int], now: float) -> bool:
        """Whether a frame declaring ``size`` (width, height) may be shown; ``now`` is the
        caller's monotonic time, for the warning's rate limit."""
        if size[0] <= self.max_size[0] and size[1] <= self.max_size[1]:
            return True
        self.refused += 1
        allowed, held_back = self._limiter.allow("too large", now)
        if allowed:
            log.warning(
                "dropped a frame that declares a %dx%d picture, beyond max_picture_size %dx%d: "
                "nothing of that size was decoded or allocated. Such a frame is damaged or "
                "hostile; if the borescope really sends pictures this large, raise "
                "max_picture_size (--max-picture-size WxH)%s",
                *size,
                *self.max_size,
                f" ({held_back} more since the last warning)" if held_back else "",
            )
        return False
