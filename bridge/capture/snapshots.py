# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots: the original JPEG bytes of one frame, written so that nothing is ever half there.

Each file is written to a hidden temporary file in the target directory, flushed and
fsynced, then linked to its final name (link fails instead of overwriting, so two
presses in the same millisecond get `-1`, `-2` suffixes), and the directory is fsynced.
A crash or a full disk therefore never leaves a partial ``.jpg``: at worst a hidden
``.borescope-*.tmp``, which the failure path removes and, after a crash, the next start sweeps.

Every request, from the press (or SIGUSR1, or `borescope-bridge snapshot`) to its file, is
owned by one object, `Snapshots`, with one rule for time and one for space:

- Time: a request has one deadline for its frame (the client's ``--timeout``; `FRAME_WAIT_S`
  for a press or SIGUSR1). If no complete frame arrives by then it fails and no file is ever
  written for it. Once a frame is taken the request is *accepted*: its file will be written,
  however long the disk takes (a USB stick's fsync, a hung NFS server), and is named after the
  moment the frame was taken. A client whose deadline passes while its accepted snapshot is
  still being written is told exactly that, with the file's name, never "failed".
- Space: at most `MAX_IN_FLIGHT` requests exist at once, waiting for a frame and being written
  together (each being written holds one frame). Beyond that a request is refused at once with
  the true cause: a slow disk ("N snapshots still being written to DIR") or no frames.
- Rate and disk: at most `MAX_PER_SECOND` requests per second from every origin together
  (`BURST` at once), so nobody who may press or ask can fill the disk one frame at a time;
  more are refused at once. And no file is written that would leave the disk below its
  free-space floor (`bridge.capture.space`).

Writing happens on a worker thread so the receive path never waits for the disk.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import functools
import logging
import os
import queue
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from bridge.capture.names import snapshot_name, with_suffix
from bridge.capture.space import low_space
from bridge.core.ratelimit import RateLimiter
from bridge.core.tokenbucket import TokenBucket
from bridge.errors import write_error_advice

log = logging.getLogger(__name__)

# Requests waiting for a frame plus snapshots being written; more are refused, not queued.
MAX_IN_FLIGHT = 32
# Snapshots per second from the button, SIGUSR1, the control socket and the page together.
MAX_PER_SECOND = 4.0
BURST = 4
# A press or SIGUSR1 whose next frame never comes (device gone) fails after this.
FRAME_WAIT_S = 10.0
# Our own temporary files; only these are ever swept, and only when nobody writes them.
TEMP_PREFIX, TEMP_SUFFIX = ".borescope-", ".tmp"
# A temporary file younger than this may still be about to be locked by its writer.
STALE_TEMP_MIN_AGE_S = 60.0
# How long stopping waits for accepted snapshots to reach the disk.
STOP_WAIT_S = 5.0

WriteFn = Callable[[str, bytes, float, int], str]
# (the request, why it has no file): told of every final failure, on the thread that fails it
FailedFn = Callable[["SnapshotRequest", str], None]
# (directory, bytes about to be written) -> why that is refused, or None
SpaceFn = Callable[[str, int], str | None]


@dataclass
class SnapshotResult:
    """Outcome of one request: a path, or an error sentence.

    `pending` means accepted but not on disk yet when the answer was due: the file will
    appear in the snapshot directory as `name`. `limited`: refused by the rate limit.
    """

    path: str | None = None
    error: str | None = None
    pending: bool = False
    name: str | None = None
    limited: bool = False


@dataclass(eq=False)
class SnapshotRequest:
    """One press / SIGUSR1 / control request, from waiting for its frame to its file.

    Two outcomes: `result`, final (the file, or why there is none), and `answer`, a future
    that completes with that result or, when the deadline passes while the file is still being
    written, with "pending" and the file's name, whichever comes first. Whoever wants the
    answer adds a callback to it; nobody has to hold a thread to wait. `on_failed` hears of a
    final failure (refused, no frame, not written), never of a "pending" answer.
    """

    origin: str
    requested_at: float = field(default_factory=time.monotonic)
    wait_s: float = FRAME_WAIT_S
    done: threading.Event = field(default_factory=threading.Event)
    result: SnapshotResult | None = None
    # Set when a frame is taken (the request is accepted): when, and where it goes.
    captured_wall: float | None = None
    directory: str | None = None
    answer: Future[SnapshotResult] = field(default_factory=Future)
    on_failed: FailedFn | None = None
    instance: str | None = None  # the interface of `run --interface`: in the file's name

    def __post_init__(self) -> None:
        # Running, so it cannot be cancelled: its answer is due at its deadline anyway.
        self.answer.set_running_or_notify_cancel()

    @property
    def deadline(self) -> float:
        return self.requested_at + self.wait_s

    @property
    def accepted(self) -> bool:
        return self.captured_wall is not None

    @property
    def name(self) -> str | None:
        """The file name it gets (a -N suffix is added if another file has it)."""
        if self.captured_wall is None:
            return None
        return snapshot_name(self.captured_wall, self.instance)

    def finish(self, result: SnapshotResult) -> None:
        self.result = result
        self.done.set()
        self.reply(result)
        if result.path is None and self.on_failed is not None:
            # Final: a press nobody waits for must still be reported somewhere (the page).
            try:
                self.on_failed(self, result.error or "snapshot failed")
            except Exception:  # a listener's bug must not stop whoever finished the request
                log.exception("on_failed(%s) failed", self.origin)

    def reply(self, result: SnapshotResult) -> None:
        """Complete `answer` unless it is complete already (the file and the deadline race)."""
        with contextlib.suppress(InvalidStateError):
            self.answer.set_result(result)

    def add_done_callback(self, fn: Callable[[SnapshotResult], object]) -> None:
        """`fn(answer)` once it is known, on the thread that completes it (or this one, if it
        is known already); it must not block."""
        self.answer.add_done_callback(lambda future: fn(future.result()))

    def wait(self, timeout: float) -> SnapshotResult | None:
        """The final result, blocking up to `timeout`; None if there is none by then."""
        return self.result if self.done.wait(timeout) else None


def current_umask() -> int:
    """Read the umask without a race-free API: set and restore once at start-up."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_os_error(exc: OSError, directory: str) -> str:
    """A sentence that says what went wrong and what to do about it."""
    return write_error_advice(
        exc, f"cannot save snapshot in {directory}", directory, "--snapshot-dir"
    )


def write_atomically(
    directory: str, data: bytes, wall_time: float, mode: int, instance: str | None = None
) -> str:
    """Write `data` as a new snapshot file in `directory`; return its path. Raises OSError.

    Only the folder itself is made, never its parents: a mistyped path fails with advice
    instead of becoming a tree of folders nobody looks in (bridge.app.paths.check_snapshot_dir
    makes the default folder's parents at start)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        try:
            # Held until the file has its name: the start-up sweep skips locked files.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            final = _link_unique(tmp, directory, snapshot_name(wall_time, instance))
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return final


def _link_unique(tmp: str, directory: str, name: str) -> str:
    for n in range(10000):
        final = os.path.join(directory, name if n == 0 else with_suffix(name, n))
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


def sweep_stale_temp(directory: str, min_age_s: float = STALE_TEMP_MIN_AGE_S) -> int:
    """Remove our own leftover temporary files (a crash mid-write); return how many.

    Only regular files named ``.borescope-*.tmp``, never through a symlink, older than
    `min_age_s`, and only when no writer holds their lock (another daemon sharing the
    directory may be writing one right now).
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for name in names:
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # a symlink (ELOOP), a FIFO that blocks, gone meanwhile
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < min_age_s:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # being written
            # Still the same file under that name? Then it is ours to remove.
            if os.lstat(path).st_ino == st.st_ino:
                os.unlink(path)
                removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d stale temporary snapshot file(s) from %s", removed, directory)
    return removed


class SnapshotWriter:
    """Worker thread that saves (frame bytes, request) pairs and keeps the counters for status.

    `write` and `free_space` are the edges a test may replace (a slow, failing or nearly full
    disk); they default to `write_atomically` and `low_space`.
    """

    def __init__(
        self,
        directory: str,
        on_saved: Callable[[str], None] | None = None,
        umask: int | None = None,
        write: WriteFn = write_atomically,
        free_space: SpaceFn = low_space,
        instance: str | None = None,
    ) -> None:
        self.directory = directory
        self.instance = instance  # see bridge.capture.names
        self.mode = 0o666 & ~(current_umask() if umask is None else umask)
        self.on_saved = on_saved
        self.taken = 0
        self.failed = 0
        self.last_path: str | None = None
        self.last_error: str | None = None
        self._write: WriteFn = write
        if instance and write is write_atomically:
            self._write = functools.partial(write_atomically, instance=instance)
        self._free_space = free_space
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Snapshots handed over and not on disk yet (queued or being written)."""
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()
        directory = self.directory
        self._queue.put(lambda: self._sweep(directory))

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive() and self._pending:
            log.error(
                "%d accepted snapshot(s) not written: %s did not take them within %g s",
                self._pending,
                self.directory,
                timeout,
            )
        self._thread = None

    def set_directory(self, directory: str) -> None:
        """Live change on reload; the next snapshot goes to the new place."""
        self.directory = directory
        self._queue.put(lambda: self._sweep(directory))

    def save(self, data: bytes, request: SnapshotRequest) -> None:
        """Queue one frame for one request; returns at once."""
        with self._lock:
            self._pending += 1
        wall = request.captured_wall if request.captured_wall is not None else time.time()
        directory = request.directory or self.directory
        self._queue.put(lambda: self._save(data, wall, directory, request))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job()

    def _sweep(self, directory: str) -> None:
        try:
            sweep_stale_temp(directory)
        except Exception:  # housekeeping must never stop the writer
            log.exception("sweeping %s failed", directory)

    def _save(self, data: bytes, wall: float, directory: str, request: SnapshotRequest) -> None:
        try:
            low = self._free_space(directory, len(data))
            if low is not None:
                error = (
                    f"disk nearly full: snapshot not saved in {directory}: {low}; free some "
                    "space or choose another --snapshot-dir"
                )
                self._finish(request, error=error)
                log.error("snapshot (%s) refused: %s", request.origin, error)
                return
            path = self._write(directory, data, wall, self.mode)
        except OSError as exc:
            error = describe_os_error(exc, directory)
            self._finish(request, error=error)
            log.error("snapshot (%s) failed: %s", request.origin, error)
            return
        except Exception as exc:  # a bug: answer the waiting client, keep the thread
            self._finish(request, error=f"internal error while saving: {exc}")
            log.exception("snapshot (%s) failed", request.origin)
            return
        self._finish(request, path=path)
        log.info("snapshot (%s) saved: %s (%d bytes)", request.origin, path, len(data))
        if self.on_saved is not None:
            try:
                self.on_saved(path)
            except Exception:  # a listener's bug must not stop the writer
                log.exception("on_saved(%s) failed", path)

    def _finish(
        self, request: SnapshotRequest, path: str | None = None, error: str | None = None
    ) -> None:
        with self._lock:
            self._pending -= 1
            if path is not None:
                self.taken += 1
                self.last_path = path
                self.last_error = None
            else:
                self.failed += 1
                self.last_error = error
        request.finish(SnapshotResult(path=path, error=error))


class Snapshots:
    """Every snapshot request from press to file: admission, its frame, its file, its answer.

    `request` may be called from any thread; `offer` and `expire` from the receive loop, whose
    tick therefore answers every request by its deadline (through `SnapshotRequest.answer`).
    """

    def __init__(
        self,
        writer: SnapshotWriter,
        state: Callable[[], str] = lambda: "unknown",
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
        per_second: float | None = MAX_PER_SECOND,
        burst: int = BURST,
        on_failed: FailedFn | None = None,
    ) -> None:
        self.writer = writer
        self.on_failed = on_failed
        self.state = state
        self.max_in_flight = max_in_flight
        self.clock = clock
        self._bucket = TokenBucket(per_second, burst) if per_second is not None else None
        self.refused = 0
        self._waiting: collections.deque[SnapshotRequest] = collections.deque()
        # Accepted (a frame taken) and not answered yet: answered "pending" at their deadline.
        self._accepted: list[SnapshotRequest] = []
        self._lock = threading.Lock()
        self._warn = RateLimiter(30.0)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def request(self, origin: str, wait_s: float = FRAME_WAIT_S) -> SnapshotRequest:
        """A request for the next complete frame, or one already refused with the reason."""
        now = self.clock()
        req = SnapshotRequest(
            origin,
            requested_at=now,
            wait_s=wait_s,
            on_failed=self.on_failed,
            instance=self.writer.instance,
        )
        limited = False
        with self._lock:
            waiting, writing = len(self._waiting), self.writer.pending
            if waiting + writing >= self.max_in_flight:
                pass
            elif self._bucket is None or self._bucket.take(now):
                self._waiting.append(req)
                return req
            else:
                limited = True
            self.refused += 1
            if limited:
                assert self._bucket is not None
                why = (
                    f"too many snapshots: at most {self._bucket.rate:g} per second (button, "
                    "web page, control socket and SIGUSR1 together); try again in a moment"
                )
            elif writing >= waiting:
                why = (
                    f"the disk is slow: {writing} snapshots still being written to "
                    f"{self.writer.directory}; no more are taken until they are "
                    f"(at most {self.max_in_flight} at a time)"
                )
            else:
                why = (
                    f"too many snapshots ({waiting}) are already waiting for a frame "
                    f"(daemon state: {self.state()}); no more are taken until they are answered"
                )
        ok, suppressed = self._warn.allow("refused", time.monotonic())
        if ok:
            more = f" ({suppressed} more refused since the last message)" if suppressed else ""
            log.warning("snapshot (%s) refused: %s%s", origin, why, more)
        req.finish(SnapshotResult(error=why, limited=limited))
        return req

    def offer(self, data: bytes) -> None:
        """A complete frame arrived: it becomes the file of the oldest waiting request."""
        if not self._waiting:
            return
        with self._lock:
            while self._waiting:
                req = self._waiting.popleft()
                if req.done.is_set():
                    continue
                req.captured_wall = time.time()
                req.directory = self.writer.directory
                self._accepted.append(req)
                self.writer.save(data, req)  # under the lock: `pending` is counted at once
                return

    def expire(self) -> None:
        """At their deadline: no frame means failed; a file still being written, "pending"."""
        if not self._waiting and not self._accepted:
            return
        now = self.clock()
        with self._lock:
            late = [r for r in self._waiting if now >= r.deadline]
            for req in late:
                self._waiting.remove(req)
            self._accepted = [r for r in self._accepted if not r.answer.done()]
            writing = [r for r in self._accepted if now >= r.deadline]
            for req in writing:
                self._accepted.remove(req)
            still = [(req, self._still_writing(req)) for req in writing]
        # Answered outside the lock: the answers' callbacks may ask for another snapshot.
        for req in late:
            self._no_frame(req)
        for req, result in still:
            req.reply(result)

    def fail_waiting(self, why: str) -> None:
        """Stopping: requests still waiting for a frame get `why`; accepted ones are written."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for req in waiting:
            if not req.done.is_set():
                req.finish(SnapshotResult(error=why))

    def _still_writing(self, req: SnapshotRequest) -> SnapshotResult:
        """Accepted, not on disk yet: where it will appear (call with the lock held)."""
        writing = self.writer.pending
        where = req.directory or self.writer.directory
        return SnapshotResult(
            error=(
                f"the disk is slow: {writing} snapshot{'s' if writing != 1 else ''} still being "
                f"written to {where}, this one among them; it will appear there as {req.name}"
            ),
            pending=True,
            name=req.name,
        )

    def _no_frame(self, req: SnapshotRequest) -> None:
        why = (
            f"no complete frame arrived within {req.wait_s:g} s (daemon state: {self.state()}); "
            "is the borescope streaming? see `borescope-bridge status`"
        )
        if req.origin != "control":
            log.warning("snapshot (%s) dropped: %s", req.origin, why)
        req.finish(SnapshotResult(error=why))
