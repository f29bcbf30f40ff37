# SPDX-License-Identifier: GPL-3.0-or-later
"""Recordings: start/stop (the page, the control socket, the scope's video key) -> a .mkv file.

One `Recording` per file, with its own writer thread that owns the file (bridge.capture.mkv);
`Recordings` is the small control object the composition root builds: `start`, `stop`,
`toggle`, `status`, and `offer` for every frame from the loop thread.

- The camera never waits: `offer` puts the frame in a bounded queue; when a slow disk lets it
  fill up, frames are dropped and counted (`dropped` in status), never the pipeline blocked.
- Every answer is a future, completed by the writer once the file is open (start) or finished
  (stop), or by `expire` at its deadline if the disk is that slow, with the truth: started /
  still being finished in the background. Nobody holds a thread waiting for a disk.
- A recording stops by itself at its size or time limit, below the free-space floor
  (bridge.capture.space) and on a write error, with the reason in `status()["last_error"]`,
  the log and the `on_event` listener (the page). The file is finished and playable then too.
- A brief unplug leaves a gap: frames carry their arrival time, so the player holds the last
  picture until the next one. The file only ever holds what the scope sent (no made-up frames).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from bridge.capture.mkv import MkvFile
from bridge.capture.names import recording_name
from bridge.capture.space import low_space
from bridge.errors import write_error_advice

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024**3  # a forgotten recording stops at 2 GiB ...
DEFAULT_MAX_SECONDS = 3600.0  # ... or after an hour, whichever comes first
# Frames waiting for the disk (about 17 s at 30 fps), and at most this many bytes of them
# (the service's MemoryMax holds this beside the --record queue); beyond, dropped and counted.
MAX_QUEUED_FRAMES = 512
MAX_QUEUED_BYTES = 64 * 1024 * 1024
SPACE_CHECK_S = 1.0  # how often the free-space floor is asked while recording
LIMIT_CHECK_S = 0.25  # an idle writer still notices the time limit this often
ANSWER_S = 4.0  # start/stop answer by then at the latest (a client waits 5 s by default)
STOP_WAIT_S = 5.0  # at daemon shutdown, the finishing gets this long

Reply = dict[str, Any]
EventFn = Callable[[dict[str, Any]], None]
SpaceFn = Callable[[str, int], str | None]


def _new_future() -> Future[Reply]:
    f: Future[Reply] = Future()
    f.set_running_or_notify_cancel()
    return f


def _answer(future: Future[Reply], reply: Reply) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_result(reply)


def _done(reply: Reply) -> Future[Reply]:
    f = _new_future()
    f.set_result(reply)
    return f


class Recording:
    """One file from start to finish; its thread alone touches the file."""

    def __init__(
        self,
        directory: str,
        name: str,
        *,
        app: str,
        max_bytes: int,
        max_seconds: float,
        on_open: Callable[[Recording], None],
        on_end: Callable[[Recording], None],
        free_space: SpaceFn,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.name = name
        self.path = os.path.join(directory, name)
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._on_open = on_open
        self._on_end = on_end
        self._free_space = free_space
        self._clock = clock
        self.started_at = clock()
        self.wall_time = time.time()
        self.opened = _new_future()
        self.finished = _new_future()
        self.frames = 0
        self.bytes = 0
        self.offered = 0
        self.dropped = 0
        self.duration_s = 0.0
        self.reason: str | None = None  # why it stopped by itself (limit, disk), if it did
        self.stopping = False
        self.open = False
        self._queue: queue.Queue[tuple[bytes, float] | None] = queue.Queue(MAX_QUEUED_FRAMES)
        # Bytes queued = in - out; each counter has one writer thread, so no lock is needed.
        self._bytes_in = 0
        self._bytes_out = 0
        self._space_checked: float | None = None
        self._first: float | None = None
        self._last: float | None = None
        self._interval = 0.0
        self._thread = threading.Thread(target=self._run, name="recording", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, data: bytes, now: float) -> None:
        """From the loop thread: queue the frame, or drop and count it; never blocks."""
        if self.stopping:
            return
        self.offered += 1
        if self._bytes_in - self._bytes_out + len(data) > MAX_QUEUED_BYTES:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((data, now))
        except queue.Full:
            self.dropped += 1
            return
        self._bytes_in += len(data)

    def stop(self) -> None:
        """Take no more frames; the writer writes the queued ones, then finishes the file."""
        self.stopping = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def elapsed_s(self) -> float:
        return round(self._clock() - self.started_at, 1)

    def summary(self) -> Reply:
        return {
            "name": self.name,
            "path": self.path,
            "frames": self.frames,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "duration_s": round(self.duration_s, 3),
        }

    # ---- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            mkv = self._create()
        except Exception as exc:  # a bug must still answer the caller
            log.exception("recording %s could not start", self.path)
            mkv, self.reason = None, f"internal error: {exc}"
        if mkv is None:
            _answer(self.opened, {"ok": False, "error": self.reason})
            self.stopping = True
            _answer(self.finished, {"ok": False, "error": self.reason})
            self._on_end(self)
            return
        self.open = True
        log.info("recording to %s", self.path)
        _answer(self.opened, {"ok": True, **self.summary()})
        self._on_open(self)
        try:
            self._write_frames(mkv)
        except Exception as exc:
            log.exception("recording %s failed", self.path)
            self.reason = self.reason or f"internal error: {exc}"
        self.stopping = True
        self._finish(mkv)

    def _create(self) -> MkvFile | None:
        low = self._free_space(self.directory, 0)
        if low is not None:
            self.reason = f"disk nearly full: no recording started in {self.directory}: {low}"
            log.error("%s", self.reason)
            return None
        try:
            mkv = MkvFile.create(self.directory, self.name, self.app, self.wall_time)
        except OSError as exc:
            self.reason = write_error_advice(
                exc, f"cannot record in {self.directory}", self.directory, "--recordings-dir"
            )
            if "--recordings-dir" not in self.reason:
                self.reason += " (choose another --recordings-dir)"
            log.error("%s", self.reason)
            return None
        self.path, self.name = mkv.path, os.path.basename(mkv.path)
        return mkv

    def _write_frames(self, mkv: MkvFile) -> None:
        while True:
            if self._clock() - self.started_at >= self.max_seconds:
                self._stop_by_itself(
                    f"the recording reached its time limit ({self.max_seconds:g} s; "
                    "record_max_seconds / --record-max-seconds)",
                    limit=True,
                )
                return
            try:
                item = self._queue.get(timeout=LIMIT_CHECK_S)
            except queue.Empty:
                if self.stopping:
                    return  # stop() found the queue full: everything queued is written
                continue
            if item is None:
                return  # stop(): the frames queued before it are written
            data, now = item
            self._bytes_out += len(data)
            if mkv.length + len(data) + mkv.finish_bytes > self.max_bytes:
                self._stop_by_itself(
                    f"the recording reached its size limit ({self.max_bytes} bytes; "
                    "record_max_bytes / --record-max-bytes)",
                    limit=True,
                )
                return
            if not self._space_ok(len(data)):
                return
            ms = 0 if self._first is None else round((now - self._first) * 1000)
            try:
                added = mkv.add(data, ms)
            except OSError as exc:
                self._stop_by_itself(
                    write_error_advice(
                        exc, f"recording to {self.path} stopped", self.directory, "--recordings-dir"
                    )
                )
                return
            if added:
                if self._first is None:
                    self._first = now
                elif self._last is not None:
                    self._interval = now - self._last
                self._last = now
                self.frames, self.bytes = mkv.frames, mkv.length
                self.duration_s = (now - self._first) + self._interval

    def _space_ok(self, need: int) -> bool:
        now = self._clock()
        if self._space_checked is not None and now - self._space_checked < SPACE_CHECK_S:
            return True
        self._space_checked = now
        low = self._free_space(self.directory, need)
        if low is None:
            return True
        self._stop_by_itself(f"disk nearly full: recording to {self.path} stopped: {low}")
        return False

    def _stop_by_itself(self, reason: str, limit: bool = False) -> None:
        """A limit is the plan working (a warning); the disk is a problem (an error)."""
        self.reason = reason
        self.stopping = True
        log.log(logging.WARNING if limit else logging.ERROR, "%s", reason)

    def _finish(self, mkv: MkvFile) -> None:
        if mkv.frames == 0:
            mkv.remove()
            why = "no frame arrived while recording (is the borescope streaming?): no file kept"
            self.reason = self.reason or why
            log.warning("recording %s: %s", self.path, why)
            _answer(self.finished, {"ok": False, "error": self.reason, **self.summary()})
            self._on_end(self)
            return
        try:
            mkv.finish(self.duration_s * 1000)
        except OSError as exc:
            # Everything up to the last frame is on disk; only the index is missing.
            log.error("recording %s: finishing the file failed (%s)", self.path, exc)
        finally:
            mkv.close()
        log.info(
            "recording %s finished: %d frames, %.1f s, %d bytes%s",
            self.path,
            self.frames,
            self.duration_s,
            self.bytes,
            f" ({self.reason})" if self.reason else "",
        )
        reply: Reply = {"ok": True, **self.summary()}
        if self.reason:
            reply["reason"] = self.reason
        _answer(self.finished, reply)
        self._on_end(self)


class Recordings:
    """The recording control object of the composition root (module docstring)."""

    def __init__(
        self,
        directory: str,
        *,
        app: str = "borescope-bridge",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        on_event: EventFn | None = None,
        free_space: SpaceFn = low_space,
        clock: Callable[[], float] = time.monotonic,
        instance: str | None = None,
    ) -> None:
        self.directory = directory
        self.instance = instance  # `run --interface IF`: the interface goes into the names
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.on_event = on_event
        self._free_space = free_space
        self._clock = clock
        self._lock = threading.Lock()
        self.current: Recording | None = None
        self.last: Recording | None = None
        self.last_error: str | None = None
        self._finishing: list[Recording] = []
        self._deadlines: list[tuple[float, Future[Reply], Reply]] = []

    # ---- requests (any thread) -----------------------------------------------------------------

    def start(self, origin: str = "request") -> Future[Reply]:
        """A new recording; the future says its file's name once it is open, or why not."""
        with self._lock:
            rec = self.current
            if rec is not None:
                return _done(
                    {
                        "ok": False,
                        "running": True,
                        "name": rec.name,
                        "error": f"already recording to {rec.name}; stop it first "
                        "(`borescope-bridge record stop`)",
                    }
                )
            rec = Recording(
                self.directory,
                recording_name(time.time(), self.instance),
                app=self.app,
                max_bytes=self.max_bytes,
                max_seconds=self.max_seconds,
                on_open=self._opened,
                on_end=self._ended,
                free_space=self._free_space,
                clock=self._clock,
            )
            self.current = rec
            self.last_error = None
            self._answer_late(
                rec,
                rec.opened,
                f"the disk is slow: {rec.name} is not open yet; it will record "
                "once the disk answers (see `borescope-bridge record status`)",
            )
        log.info("recording requested (%s)", origin)
        rec.start()
        return rec.opened

    def stop(self, origin: str = "request") -> Future[Reply]:
        """Stop the running recording; the future says the finished file, or why not."""
        with self._lock:
            rec = self.current
            if rec is None:
                return _done({"ok": False, "error": "no recording is running"})
            self.current = None
            self._finishing.append(rec)
            self._answer_late(
                rec,
                rec.finished,
                f"the disk is slow: {rec.name} is still being finished; "
                "it will be complete once the disk catches up",
            )
        log.info("recording %s: stop requested (%s)", rec.name, origin)
        rec.stop()
        return rec.finished

    def _answer_late(self, rec: Recording, answer: Future[Reply], why: str) -> None:
        """Under the lock: if `answer` is not done within ANSWER_S, it says "pending", and why."""
        late = {"ok": True, "pending": True, **rec.summary(), "error": why}
        self._deadlines.append((self._clock() + ANSWER_S, answer, late))

    def toggle(self, origin: str = "video key") -> Future[Reply]:
        """Start when idle, stop when recording (the scope's video key; the page's button)."""
        return self.stop(origin) if self.current is not None else self.start(origin)

    def set_directory(self, directory: str) -> None:
        """Live change on reload: the next recording goes there."""
        self.directory = directory

    # ---- the loop thread ----------------------------------------------------------------------

    def offer(self, data: bytes, now: float) -> None:
        rec = self.current
        if rec is not None:
            rec.offer(data, now)

    def expire(self) -> None:
        """Answer, at their deadline, the futures a slow disk has not completed (loop tick)."""
        if not self._deadlines:
            return
        now = self._clock()
        with self._lock:
            due = [d for d in self._deadlines if now >= d[0] or d[1].done()]
            self._deadlines = [d for d in self._deadlines if d not in due]
        for _, future, late in due:
            _answer(future, late)

    def shutdown(self, timeout: float = STOP_WAIT_S) -> None:
        """The daemon stops: finish the running recording (its file stays playable anyway)."""
        rec = self.current
        if rec is not None:
            self.stop("the daemon is stopping")
        for rec in list(self._finishing):
            rec.join(timeout)

    # ---- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `recording` object of `status --json`."""
        rec = self.current
        shown = rec or self.last
        out: dict[str, Any] = {
            "running": rec is not None,
            "name": shown.name if shown else None,
            "path": shown.path if shown else None,
            "duration_s": (rec.elapsed_s() if rec else round(shown.duration_s, 3))
            if shown
            else None,
            "frames": shown.frames if shown else 0,
            "bytes": shown.bytes if shown else 0,
            "dropped": shown.dropped if shown else 0,
            "last_error": self.last_error,
            "dir": self.directory,
            "max_bytes": self.max_bytes,
            "max_seconds": self.max_seconds,
        }
        return out

    # ---- from the writer threads -------------------------------------------------------------

    def _opened(self, rec: Recording) -> None:
        self._event({"state": "started", "name": rec.name})

    def _ended(self, rec: Recording) -> None:
        with self._lock:
            if self.current is rec:
                self.current = None
            with contextlib.suppress(ValueError):
                self._finishing.remove(rec)
            self.last = rec
            if rec.reason is not None:
                self.last_error = rec.reason
        if rec.open:
            event: dict[str, Any] = {"state": "stopped", "name": rec.name}
            if rec.reason:
                event["reason"] = rec.reason
            self._event(event)

    def _event(self, data: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(data)
        except Exception:  # a listener's bug must not stop the writer
            log.exception("recording event listener failed")
