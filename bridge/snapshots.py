# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots: the original JPEG bytes of one frame, written so that nothing is ever half there.

Each file is written to a hidden temporary file in the target directory, flushed and
fsynced, then linked to its final name (link fails instead of overwriting, so two
presses in the same millisecond get `-1`, `-2` suffixes), and the directory is fsynced.
A crash or a full disk therefore never leaves a partial ``.jpg``: at worst a hidden
``.borescope-*.tmp`` that we remove on the failure path.

Writing happens on a worker thread so the receive path never waits for the disk.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Presses, SIGUSR1 and control requests beyond this many unsaved ones are refused, not queued.
MAX_QUEUED = 64


@dataclass
class SnapshotResult:
    """Outcome of one request: a path, or an error sentence."""

    path: str | None = None
    error: str | None = None


@dataclass
class SnapshotRequest:
    """One press / SIGUSR1 / control request, waiting for the next complete frame."""

    origin: str
    requested_at: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: SnapshotResult | None = None

    def finish(self, result: SnapshotResult) -> None:
        self.result = result
        self.done.set()

    def wait(self, timeout: float) -> SnapshotResult | None:
        return self.result if self.done.wait(timeout) else None


def current_umask() -> int:
    """Read the umask without a race-free API: set and restore once at start-up."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def snapshot_name(wall_time: float) -> str:
    """borescope-YYYYMMDD-HHMMSS-mmm.jpg in local time."""
    millis = round(wall_time * 1000)
    lt = time.localtime(millis // 1000)
    ms = millis % 1000
    return time.strftime("borescope-%Y%m%d-%H%M%S", lt) + f"-{ms:03d}.jpg"


def describe_os_error(exc: OSError, directory: str) -> str:
    """A sentence that says what went wrong and what to do about it."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return f"disk full: cannot save snapshot in {directory} (free some space)"
    if exc.errno == errno.EACCES or exc.errno == errno.EPERM:
        return (
            f"permission denied: cannot write snapshots to {directory} "
            "(choose another --snapshot-dir or fix its owner/permissions)"
        )
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot save snapshots in {directory} (--snapshot-dir)"
    return f"cannot save snapshot in {directory}: {exc.strerror or exc}"


def write_atomically(directory: str, data: bytes, wall_time: float, mode: int) -> str:
    """Write `data` as a new snapshot file in `directory`; return its path. Raises OSError."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".borescope-", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = _link_unique(tmp, directory, snapshot_name(wall_time))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return final


def _link_unique(tmp: str, directory: str, name: str) -> str:
    stem = name[: -len(".jpg")]
    for n in range(10000):
        final = os.path.join(directory, name if n == 0 else f"{stem}-{n}.jpg")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError as exc:
            # File systems without hard links (vfat on a USB stick): check, then rename.
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(final):
                continue
            os.rename(tmp, final)
            return final
        os.unlink(tmp)
        return final
    raise FileExistsError(errno.EEXIST, "too many snapshots with the same name", name)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


class SnapshotWriter:
    """Worker thread that saves (frame bytes, request) pairs and keeps the counters for status."""

    def __init__(
        self,
        directory: str,
        on_saved: Callable[[str], None] | None = None,
        umask: int | None = None,
    ) -> None:
        self.directory = directory
        self.mode = 0o666 & ~(current_umask() if umask is None else umask)
        self.on_saved = on_saved
        self.taken = 0
        self.failed = 0
        self.last_path: str | None = None
        self.last_error: str | None = None
        self._queue: queue.Queue[tuple[bytes, float, SnapshotRequest] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def set_directory(self, directory: str) -> None:
        """Live change on reload; the next snapshot goes to the new place."""
        self.directory = directory

    def save(self, data: bytes, request: SnapshotRequest) -> None:
        """Queue one frame for one request; returns at once."""
        self._queue.put((data, time.time(), request))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, wall, request = item
            directory = self.directory
            try:
                path = write_atomically(directory, data, wall, self.mode)
            except OSError as exc:
                self.failed += 1
                self.last_error = describe_os_error(exc, directory)
                log.error("snapshot (%s) failed: %s", request.origin, self.last_error)
                request.finish(SnapshotResult(error=self.last_error))
                continue
            except Exception as exc:  # a bug: answer the waiting client, keep the thread
                self.failed += 1
                self.last_error = f"internal error while saving: {exc}"
                log.exception("snapshot (%s) failed", request.origin)
                request.finish(SnapshotResult(error=self.last_error))
                continue
            self.taken += 1
            self.last_path = path
            self.last_error = None
            log.info("snapshot (%s) saved: %s (%d bytes)", request.origin, path, len(data))
            request.finish(SnapshotResult(path=path))
            if self.on_saved is not None:
                self.on_saved(path)
