# SPDX-License-Identifier: GPL-3.0-or-later
"""The one interface between the daemon and the web page.

The daemon pushes (from its loop and writer threads, never waiting): the newest complete
frame, state changes, saved snapshots and failed ones (``snapshot-failed``). The page pulls
through the callables the daemon handed over: ``status()`` and ``take_snapshot()``, the very
functions behind the control socket's ``status`` and ``snapshot``, so both ask the daemon the
same things the same way.
``take_snapshot()`` returns at once with a future of its reply: nobody waits on a thread.

Frames are immutable ``bytes`` (the reassembler makes one per frame), so keeping a reference
is enough: no copy. The server attaches one ``listener`` that moves each notification onto its
own asyncio loop; frame notifications are sent only while someone watches the stream.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bridge.capture.recordings import Recordings
from bridge.core.tokenbucket import TokenBucket

# Failure events per second (and at once): a flood of refused requests must not overflow
# every page's event queue (which drops the page); the page shows the newest failure anyway.
FAILED_EVENTS_PER_S = 2.0
FAILED_EVENTS_BURST = 8
SNAPSHOT_SOURCES = ("button", "page", "control")

Listener = Callable[[str, Any], None]


class Feed:
    """Daemon -> page; each method is safe to call from any thread and returns at once."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        take_snapshot: Callable[[float, str], Future[dict[str, Any]]],
        snapshot_dir: Callable[[], str],
        recordings: Recordings | None = None,
        instances: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.status = status
        self.take_snapshot = take_snapshot
        self.snapshot_dir = snapshot_dir
        self.recordings = recordings  # start/stop/status of .mkv recordings; None: not offered
        # The other running instances (one per borescope), for the page's links; it may block
        # for a moment (it asks their control sockets), so the server calls it on its executor.
        self.instances = instances
        # (sequence number, JPEG bytes, monotonic time the frame was complete); one tuple so
        # a reader on another thread always sees a consistent triple.
        self._newest: tuple[int, bytes | None, float] = (0, None, 0.0)
        self.resolution: tuple[int, int] | None = None
        self.state = "starting"
        self.streaming = False
        self.wanted = False  # set by the server while stream clients wait for frames
        self._listener: Listener | None = None
        self._failed_bucket = TokenBucket(FAILED_EVENTS_PER_S, FAILED_EVENTS_BURST)
        self._failed_lock = threading.Lock()
        self.failed_events_dropped = 0

    def attach(self, listener: Listener | None) -> None:
        self._listener = listener

    def newest(self) -> tuple[int, bytes | None, float]:
        return self._newest

    def _notify(self, kind: str, data: Any) -> None:
        listener = self._listener
        if listener is not None:
            listener(kind, data)

    # ---- called by the daemon ---------------------------------------------------------

    def frame(self, data: bytes, completed_at: float, resolution: tuple[int, int] | None) -> None:
        self._newest = (self._newest[0] + 1, data, completed_at)
        self.resolution = resolution or self.resolution
        if self.wanted:
            self._notify("frame", None)

    def set_state(self, state: str, streaming: bool) -> None:
        self.state = state
        self.streaming = streaming
        self._notify("state", {"state": state, "streaming": streaming})

    def snapshot_saved(self, path: str) -> None:
        self._notify("snapshot", {"name": os.path.basename(path)})

    def snapshot_failed(self, reason: str, source: str) -> None:
        """A snapshot that has no file, with the reason a person reads; `source` is one of
        SNAPSHOT_SOURCES. Called from whichever thread failed it."""
        with self._failed_lock:
            allowed = self._failed_bucket.take(time.monotonic())
            if not allowed:
                self.failed_events_dropped += 1
        if allowed:
            self._notify("snapshot-failed", {"reason": reason, "source": source})

    def recording(self, data: dict[str, Any]) -> None:
        """A recording started or stopped: {"state", "name"} (+ "reason" when it stopped by
        itself)."""
        self._notify("recording", data)

    def zoom(self, direction: str) -> None:
        """A zoom key on the scope ("in" or "out"): the page may zoom the live picture."""
        self._notify("zoom", {"direction": direction})
