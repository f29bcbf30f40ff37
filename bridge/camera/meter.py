# SPDX-License-Identifier: GPL-3.0-or-later
"""What the camera side measures: latency of the pictures shown and the rate they go out at.

The pipeline's worker records each shown picture; ``stats()`` reads from other threads. Both
windows are deques whose whole-copy under the GIL never sees a half-done append.
"""

from __future__ import annotations

from collections import deque

LATENCY_WINDOW = 300  # pictures: several seconds at camera frame rates
FPS_WINDOW_S = 2.0


def _percentile(sorted_values: list[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


class ShownMeter:
    """Latency percentiles over the last LATENCY_WINDOW pictures, fps over FPS_WINDOW_S."""

    def __init__(self) -> None:
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._times: deque[float] = deque()

    def record(self, done: float, completed_at: float) -> None:
        """Worker: a picture was written at ``done`` for a frame complete at ``completed_at``."""
        self._latencies.append(done - completed_at)
        times = self._times
        times.append(done)
        while times and done - times[0] > FPS_WINDOW_S:
            times.popleft()

    def reset_latency(self) -> None:
        """Start a new latency window (the benchmark measures each run on its own)."""
        self._latencies.clear()

    def fps(self, now: float) -> float:
        """Pictures per second over the window; 0 once none went out for a whole window."""
        times = list(self._times)
        if len(times) >= 2 and now - times[-1] < FPS_WINDOW_S:
            return round((len(times) - 1) / max(times[-1] - times[0], 1e-6), 2)
        return 0.0

    def latency_ms(self, q: float) -> float | None:
        """The ``q`` quantile of the window's latencies in milliseconds (None: nothing shown)."""
        lat = sorted(self._latencies)
        return round(_percentile(lat, q) * 1000, 3) if lat else None
