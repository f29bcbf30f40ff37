# SPDX-License-Identifier: GPL-3.0-or-later
"""`--record FILE`: every complete frame appended byte-exact, in order, as a raw MJPEG stream.

A concatenation of JPEGs is what `ffplay -f mjpeg FILE` and VLC play (the reference
script's `--save` wrote the same). Writes happen on a worker thread; a full disk or an
unwritable file stops the recording with a logged, reported reason, and streaming goes on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import threading

from bridge.errors import read_only_advice

log = logging.getLogger(__name__)

# Frames waiting for the disk; beyond this the disk is hopelessly slow and frames are dropped
# (counted), because the receive path must never wait.
MAX_QUEUED_FRAMES = 512


def _describe(exc: OSError, path: str) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: recording to {path} stopped (free some space, then reload or restart)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: cannot record to {path} (choose another --record path)"
    if exc.errno == errno.EROFS:
        where = os.path.dirname(os.path.abspath(path))
        return f"read-only file system: cannot record to {path}: {read_only_advice(where)}"
    return f"recording to {path} stopped: {exc.strerror or exc}"


class Recorder:
    """Appends frames to one file from a worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.frames = 0
        self.bytes = 0
        self.dropped = 0
        self.error: str | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUED_FRAMES)
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._base = 0  # size of the file before we appended (recordings append, never truncate)

    @property
    def active(self) -> bool:
        return self._thread is not None and self.error is None

    def start(self) -> None:
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o666)
            self._base = os.fstat(self._fd).st_size
        except OSError as exc:
            self.error = _describe(exc, self.path)
            log.error("%s", self.error)
            return
        log.info("recording every frame to %s", self.path)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def append(self, data: bytes) -> None:
        """Queue one frame; never blocks."""
        if not self.active:
            return
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 0.5) -> None:
        thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            thread.join(timeout)
            if thread.is_alive():
                return  # still writing to a slow disk: leave the fd to it, the process ends
        self._thread = None
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def stats(self) -> dict[str, object]:
        return {
            "path": self.path,
            "active": self.active,
            "frames": self.frames,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "error": self.error,
        }

    def _run(self) -> None:
        fd = self._fd
        assert fd is not None
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self.error is not None:
                continue
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except OSError as exc:
                self.error = _describe(exc, self.path)
                log.error("%s", self.error)
                self._truncate_partial(fd)
                continue
            self.frames += 1
            self.bytes += len(data)

    def _truncate_partial(self, fd: int) -> None:
        """Cut a half-written frame off the end so the file stays a clean MJPEG stream."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._base + self.bytes)
