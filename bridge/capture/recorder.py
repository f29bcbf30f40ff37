# SPDX-License-Identifier: GPL-3.0-or-later
"""`--record FILE`: every complete frame appended byte-exact, in order, as a raw MJPEG stream.

A concatenation of JPEGs is what `ffplay -f mjpeg FILE` and VLC play (the reference
script's `--save` wrote the same). Writes happen on a worker thread; a full disk or an
unwritable file stops the recording with a logged, reported reason, and streaming goes on.
So does a disk below its free-space floor (`bridge.capture.space`), checked before the file is
opened and then at most every `SPACE_CHECK_S` while frames are written.

The worker owns the file: it writes what was queued, then closes the file itself when told to
stop, so :meth:`Recorder.stop` never waits on a slow disk (the daemon's loop thread calls it on
a reload, and heartbeats must not pause), and no worker is ever left blocked holding its fd.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from bridge.capture.space import low_space
from bridge.errors import ConfigError, write_error_advice

log = logging.getLogger(__name__)

# Frames waiting for the disk; beyond this the disk is hopelessly slow and frames are dropped
# (counted), because the receive path must never wait.
MAX_QUEUED_FRAMES = 512
# How often the free-space floor is asked while recording.
SPACE_CHECK_S = 1.0


def _describe(exc: OSError, path: str) -> str:
    where = os.path.dirname(os.path.abspath(path))
    return write_error_advice(
        exc, f"recording to {path} stopped", where, "--record path", ", then reload or restart"
    )


def _low_space_error(path: str, low: str) -> str:
    return (
        f"disk nearly full: recording to {path} stopped: {low}; free some space, then reload "
        "or restart (or choose another --record path)"
    )


RECORD_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def check_record_path(path: str) -> None:
    """At start: a recording that cannot be opened is a ConfigError (exit 2), not a daemon
    that runs without recording. Nothing is created here (not even an empty file: a disk
    below the free-space floor must get no byte); the recorder opens the file itself."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(
            f"--record {path}: the folder {directory} does not exist (a typo?); create it "
            f"with mkdir -p {directory}, or fix --record (record in the config file)"
        )
    if os.path.isdir(path):
        code = errno.EISDIR
    elif not os.access(path if os.path.exists(path) else directory, os.W_OK):
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
    else:
        return
    exc = OSError(code, os.strerror(code))
    raise ConfigError(
        write_error_advice(exc, f"cannot record to {path}", directory, "--record path")
    )


class Recorder:
    """Appends frames to one file from a worker thread.

    `free_space` and `clock` are the edges a test may replace (a nearly full disk, time).
    """

    def __init__(
        self,
        path: str,
        free_space: Callable[[str, int], str | None] = low_space,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._free_space = free_space
        self._clock = clock
        self._space_checked: float | None = None
        self.frames = 0
        self.bytes = 0
        self.dropped = 0
        self.error: str | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUED_FRAMES)
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._closing = False  # set once by stop(): no more frames; the worker finishes
        self._base = 0  # size of the file before we appended (recordings append, never truncate)

    @property
    def active(self) -> bool:
        return self._thread is not None and self.error is None and not self._closing

    def start(self) -> None:
        """Start the worker; it opens the file itself, so the caller (the loop thread, on a
        reload) never waits on the disk, not even for an open() on a hung network share."""
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def _space_ok(self, need: int) -> bool:
        """Below the floor: stop with the reason (checked at most every SPACE_CHECK_S)."""
        now = self._clock()
        if self._space_checked is not None and now - self._space_checked < SPACE_CHECK_S:
            return True
        self._space_checked = now
        low = self._free_space(os.path.dirname(os.path.abspath(self.path)), need)
        if low is None:
            return True
        self.error = _low_space_error(self.path, low)
        log.error("%s", self.error)
        return False

    def _open(self) -> int | None:
        if not self._space_ok(0):
            return None
        try:
            # No folders are made: a mistyped directory is reported, not created.
            fd = os.open(self.path, RECORD_FLAGS, 0o666)
            self._base = os.fstat(fd).st_size
        except OSError as exc:
            self.error = _describe(exc, self.path)
            log.error("%s", self.error)
            return None
        self._fd = fd
        log.info("recording every frame to %s", self.path)
        return fd

    def append(self, data: bytes) -> None:
        """Queue one frame; never blocks."""
        if not self.active:
            return
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 0.0) -> None:
        """Take no more frames; the worker writes the queued ones, then closes the file.

        Waits at most ``timeout`` seconds for that (0: not at all, for the loop thread; the
        daemon's shutdown gives the disk a moment). The worker is a daemon thread, so a disk
        that never answers cannot keep the process from exiting.
        """
        self._closing = True
        thread = self._thread
        if thread is None:
            self._close()
            return
        # Wakes a worker waiting on an empty queue. A full queue means the worker is busy
        # writing; it sees _closing once it has written what is queued.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if timeout > 0:
            thread.join(timeout)

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

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
        fd = self._open()
        if fd is None:
            return
        try:
            while not (self._closing and self._queue.empty()):
                data = self._queue.get()
                if data is None or self.error is not None or not self._space_ok(len(data)):
                    continue
                try:
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                except OSError as exc:
                    self._truncate_partial(fd)  # before the error shows: a restart appends
                    self.error = _describe(exc, self.path)
                    log.error("%s", self.error)
                    continue
                self.frames += 1
                self.bytes += len(data)
        finally:
            self._close()

    def _truncate_partial(self, fd: int) -> None:
        """Cut a half-written frame off the end so the file stays a clean MJPEG stream."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._base + self.bytes)
