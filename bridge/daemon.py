# SPDX-License-Identifier: GPL-3.0-or-later
"""Composition root of `borescope-bridge run`: wires session, cores, outputs and systemd.

Data flow (one loop thread, every hand-off non-blocking):

    Session --fragments--> Reassembler --frames--> Daemon.on_frame
        -> Pipeline.submit (newest frame wins; decode and camera on the pipeline's thread)
        -> Recorder.append (its own thread)
        -> a waiting snapshot request -> SnapshotWriter (its own thread)
    Session --RETCMD--> ButtonTracker --presses--> one snapshot request per press

The control socket and the signal handlers only queue requests; the loop serves them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from bridge import __version__
from bridge.config import Config
from bridge.control import DEFAULT_SNAPSHOT_TIMEOUT_S, ControlServer
from bridge.errors import BridgeError, ConfigError
from bridge.recorder import Recorder
from bridge.service import Notifier, RateLimiter
from bridge.session import STALLED, STREAMING, WAITING_DEVICE, WAITING_NETWORK, Session
from bridge.snapshots import MAX_QUEUED, SnapshotRequest, SnapshotResult, SnapshotWriter

log = logging.getLogger(__name__)

# A press whose next frame never comes (device gone) is answered with an error after this.
SNAPSHOT_MAX_WAIT_S = 10.0
FPS_WINDOW_S = 2.0
# Settings a reload applies live; the rest need a restart (sockets, camera device).
LIVE_KEYS = ("snapshot_dir", "record", "wait", "linger", "rotate", "flip")


class NullOutput:
    """`--camera none`: nothing is decoded; snapshots, recording and status still work."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def submit(self, frame: Any) -> None: ...
    def signal_lost(self) -> None: ...
    def signal_back(self) -> None: ...

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "shown": 0,
            "skipped": 0,
            "camera": None,
            "camera_error": None,
            "resolution": None,
            "fps": None,
            "latency_p50_ms": None,
            "latency_p99_ms": None,
        }


def _output_stats(output: Any) -> dict[str, Any]:
    stats = output.stats
    if callable(stats):
        stats = stats()
    return dict(stats) if stats else {}


def make_output(config: Config) -> Any:
    """The Pipeline (video side), or NullOutput for --camera none."""
    if config.camera == "none":
        return NullOutput()
    from bridge.pipeline import Pipeline

    return Pipeline(
        camera=config.camera,
        fmt=config.format,
        rotate=config.rotate,
        flip=config.flip,
        fps_hint=config.fps_hint,
    )


class Daemon:
    """One borescope, one process. `run()` returns the exit code."""

    def __init__(
        self,
        config: Config,
        reload_config: Callable[[], Config] | None = None,
        log_fields: dict[str, Any] | None = None,
        output_factory: Callable[[Config], Any] = make_output,
    ) -> None:
        from bridge.buttons import ButtonTracker
        from bridge.decode import jpeg_dimensions
        from bridge.reassembly import Reassembler

        self.config = config
        self._reload_config = reload_config
        self.log_fields = log_fields if log_fields is not None else {}
        self._dimensions = jpeg_dimensions
        self.notifier = Notifier()
        self.reassembler = Reassembler(max_frame_bytes=config.max_frame_bytes)
        self.tracker = ButtonTracker()
        self.output = output_factory(config)
        self.snapshots = SnapshotWriter(config.snapshot_dir)
        self.recorder: Recorder | None = Recorder(config.record) if config.record else None
        self.control = ControlServer(config.control_socket, self._handle_control)
        self.session = Session(
            device_ip=config.device_ip,
            stream_port=config.stream_port,
            event_port=config.event_port,
            interface=config.interface,
            reassembler=self.reassembler,
            tracker=self.tracker,
            listener=self,
            wait_s=config.wait,
            linger_s=config.linger,
            rcvbuf_bytes=config.receive_buffer_bytes,
        )
        self.started_at = time.monotonic()
        self.frames_received = 0
        self.presses = 0
        self.snapshot_refused = 0
        self.resolution: tuple[int, int] | None = None
        self._last_size = -1
        self._frame_times: collections.deque[float] = collections.deque()
        self._requests: collections.deque[SnapshotRequest] = collections.deque()
        self._lost_signalled = False
        self._warn = RateLimiter(30.0)
        self._set_field("BORESCOPE_DEVICE", config.device_ip)
        self._set_field("BORESCOPE_STATE", self.session.state)
        if config.interface:
            self._set_field("BORESCOPE_INTERFACE", config.interface)

    def _set_field(self, key: str, value: Any) -> None:
        self.log_fields[key] = value

    # ---- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        log.info(
            "borescope-bridge %s: device %s (stream %d, events %d)%s, camera %s, snapshots in %s",
            __version__,
            self.config.device_ip,
            self.config.stream_port,
            self.config.event_port,
            f" on {self.config.interface}" if self.config.interface else "",
            self.config.camera,
            self.config.snapshot_dir,
        )
        self.snapshots.start()
        self._check_snapshot_dir(self.config.snapshot_dir)
        # Stopped in reverse order; the disk writers finish last so queued frames land.
        started: list[Callable[[], None]] = [self.snapshots.stop, self._stop_recorder]
        session_open = False
        try:
            if self.recorder is not None:
                self.recorder.start()
            self.session.open()
            session_open = True
            self.control.start()
            started.append(self.control.stop)
            self.output.start()
            started.append(self.output.stop)
            self._install_signals()
            self.notifier.ready(self.status_line())
            reason = self.session.run()
        finally:
            self.notifier.stopping()
            if session_open:
                # First of all, so the device stops streaming even if something below hangs.
                self.session.close(send_stop=True)
            for stop in reversed(started):
                try:
                    stop()
                except Exception:
                    log.exception("error while stopping")
            self._fail_pending("the daemon is stopping")
        log.info("stopped (%s)", reason)
        return 0

    def _stop_recorder(self) -> None:
        if self.recorder is not None:  # the current one: a reload may have replaced it
            self.recorder.stop()

    def _install_signals(self) -> None:
        self.session.install_wakeup_fd()
        signal.signal(signal.SIGTERM, lambda *_: self.session.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.session.request_stop())
        signal.signal(signal.SIGUSR1, lambda *_: self.session.call_soon(self._sigusr1))
        signal.signal(signal.SIGHUP, lambda *_: self.session.call_soon(self.reload))

    def _sigusr1(self) -> None:
        log.info("SIGUSR1: snapshot of the next frame")
        self.request_snapshot("SIGUSR1")

    def _check_snapshot_dir(self, directory: str) -> None:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            log.warning(
                "snapshot directory %s cannot be created (%s): snapshots will fail "
                "until this is fixed (--snapshot-dir)",
                directory,
                exc.strerror,
            )
            return
        if not os.access(directory, os.W_OK | os.X_OK):
            log.warning(
                "snapshot directory %s is not writable by this user: snapshots will "
                "fail (--snapshot-dir)",
                directory,
            )

    # ---- Session listener (loop thread; all quick) --------------------------------------

    def on_frame(self, frame: Any, now: float) -> None:
        self.frames_received += 1
        data = frame.data
        times = self._frame_times
        times.append(now)
        while times and now - times[0] > FPS_WINDOW_S:
            times.popleft()
        if len(data) != self._last_size:
            self._last_size = len(data)
            self.resolution = self._dimensions(data) or self.resolution
        try:
            self.output.submit(frame)
        except Exception:  # a camera-side bug must not stop snapshots, recording, status
            ok, _ = self._warn.allow("submit")
            if ok:
                log.exception("handing a frame to the camera pipeline failed")
        if self.recorder is not None:
            self.recorder.append(data)
        while self._requests:
            req = self._requests.popleft()
            if req.done.is_set():
                continue  # cancelled by a client that gave up
            self.snapshots.save(data, req)
            break

    def on_presses(self, count: int, now: float) -> None:
        self.presses += count
        log.info("snapshot button pressed%s", f" {count} times" if count > 1 else "")
        for _ in range(count):
            self.request_snapshot("button")

    def on_state(self, old: str, new: str, now: float) -> None:
        self._set_field("BORESCOPE_STATE", new)
        if new == STREAMING:
            if self._lost_signalled:
                self._lost_signalled = False
                self.output.signal_back()
        elif not self._lost_signalled:
            self._lost_signalled = True
            self.output.signal_lost()
        self.notifier.status(self.status_line(), force=True)

    def on_tick(self, now: float) -> None:
        self.notifier.watchdog(now)
        self.notifier.status(self.status_line())
        while self._requests and now - self._requests[0].requested_at > SNAPSHOT_MAX_WAIT_S:
            req = self._requests.popleft()
            if not req.done.is_set():
                req.finish(
                    SnapshotResult(
                        error=(
                            f"no frame arrived within {SNAPSHOT_MAX_WAIT_S:g} s "
                            f"(state: {self.session.state})"
                        )
                    )
                )
                log.warning(
                    "snapshot (%s) dropped: no frame within %g s", req.origin, SNAPSHOT_MAX_WAIT_S
                )

    # ---- requests ------------------------------------------------------------------------

    def request_snapshot(self, origin: str) -> SnapshotRequest:
        """Queue a request for the next complete frame (any thread)."""
        req = SnapshotRequest(origin)
        if len(self._requests) >= MAX_QUEUED:
            self.snapshot_refused += 1
            ok, _ = self._warn.allow("snapshot-queue")
            if ok:
                log.warning("too many snapshots waiting for a frame; refusing more")
            req.finish(SnapshotResult(error="too many snapshots are already waiting for a frame"))
            return req
        self._requests.append(req)
        return req

    def _fail_pending(self, why: str) -> None:
        while self._requests:
            req = self._requests.popleft()
            if not req.done.is_set():
                req.finish(SnapshotResult(error=why))

    def _handle_control(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg.get("cmd")
        if cmd == "status":
            return {"ok": True, "status": self.status()}
        if cmd == "snapshot":
            timeout = msg.get("timeout", DEFAULT_SNAPSHOT_TIMEOUT_S)
            if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
                timeout = DEFAULT_SNAPSHOT_TIMEOUT_S
            req = self.request_snapshot("control")
            self.session.wake()
            result = req.wait(timeout)
            if result is None:
                # Give up; the loop skips a finished request, so no file appears later.
                req.finish(SnapshotResult(error="timeout"))
                # The writer may have taken it just now: report what it produced.
                return {
                    "ok": False,
                    "error": (
                        f"no complete frame arrived within {timeout:g} s "
                        f"(daemon state: {self.session.state}); is the borescope streaming? "
                        "see `borescope-bridge status`"
                    ),
                }
            if result.path is None:
                return {"ok": False, "error": result.error or "snapshot failed"}
            return {"ok": True, "path": result.path}
        return {"ok": False, "error": f"unknown command {cmd!r} (known: status, snapshot)"}

    # ---- reload ---------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: re-read the config file; apply what can change live, name the rest."""
        self.notifier.reloading()
        try:
            if self._reload_config is None:
                log.info("reload: nothing to re-read")
                return
            try:
                new = self._reload_config()
            except ConfigError as exc:
                log.error("reload failed, keeping the current settings: %s", exc)
                return
            old = self.config
            changed = [
                f.name
                for f in dataclasses.fields(Config)
                if getattr(old, f.name) != getattr(new, f.name)
            ]
            applied: dict[str, Any] = {}
            for key in changed:
                if self._apply_live(key, getattr(new, key)):
                    applied[key] = getattr(new, key)
                elif key != "config_path":
                    log.warning(
                        "reload: %s changed (%r -> %r) but needs a restart to apply",
                        key,
                        getattr(old, key),
                        getattr(new, key),
                    )
            self.config = dataclasses.replace(old, **applied)
            if applied:
                log.info(
                    "reload: applied %s", ", ".join(f"{k} = {v!r}" for k, v in applied.items())
                )
            elif not changed:
                log.info("reload: no changes")
        finally:
            self.notifier.send("READY=1")
            self.notifier.status(self.status_line(), force=True)

    def _apply_live(self, key: str, value: Any) -> bool:
        if key == "snapshot_dir":
            self.snapshots.set_directory(value)
            self._check_snapshot_dir(value)
        elif key == "record":
            if self.recorder is not None:
                self.recorder.stop()
            self.recorder = Recorder(value) if value else None
            if self.recorder is not None:
                self.recorder.start()
        elif key == "wait":
            self.session.wait_s = value
        elif key == "linger":
            self.session.linger_s = value
        elif key in ("rotate", "flip"):
            rotate = value if key == "rotate" else self.config.rotate
            flip = value if key == "flip" else self.config.flip
            try:
                if not self._set_transform(rotate, flip):
                    return False
            except (BridgeError, ValueError) as exc:
                log.error("reload: cannot apply %s = %r: %s", key, value, exc)
                return False
            self.config = dataclasses.replace(self.config, rotate=rotate, flip=flip)
        else:
            return False
        return True

    def _set_transform(self, rotate: int, flip: str) -> bool:
        """Change what the camera shows without reopening anything; False if not possible."""
        setter = getattr(self.output, "set_transform", None)
        if setter is not None:
            setter(rotate=rotate, flip=flip)
            return True
        if isinstance(self.output, NullOutput):
            return True  # nothing is shown: the new value simply holds
        if hasattr(self.output, "transform"):
            # Pipeline reads its `transform` for every frame; swapping the (immutable-style)
            # object is atomic under the GIL, so the next frame uses the new one.
            from bridge.transform import Transform

            self.output.transform = Transform(rotate, flip)
            return True
        return False

    # ---- status ----------------------------------------------------------------------------

    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        if span <= 0 or time.monotonic() - times[-1] > FPS_WINDOW_S:
            return 0.0
        return (len(times) - 1) / span

    def status(self) -> dict[str, Any]:
        """Everything `borescope-bridge status` shows (called from the control thread)."""
        s: dict[str, Any] = {"version": __version__, "pid": os.getpid()}
        s.update(self.session.stats())
        rs = self.reassembler.stats.as_dict()
        out = _output_stats(self.output)
        res = out.get("resolution") or self.resolution
        s.update(
            {
                "resolution": f"{res[0]}x{res[1]}" if res else None,
                "fps": round(self.fps(), 1),
                "frames_received": self.frames_received,
                "frames_shown": out.get("shown", 0),
                "frames_skipped": out.get("skipped", 0),
                "frames_incomplete": rs.get("incomplete", 0),
                "frames_corrupt": rs.get("corrupt", 0),
                "duplicate_fragments": rs.get("duplicates", 0),
                "packets": rs.get("packets", 0),
                "rejected": rs.get("rejected", {}),
                "latency_p50_ms": out.get("latency_p50_ms"),
                "latency_p99_ms": out.get("latency_p99_ms"),
                "camera": out.get("camera"),
                "camera_error": out.get("camera_error"),
                "format": self.config.format,
                "rotate": self.config.rotate,
                "flip": self.config.flip,
                "button_presses": self.presses,
                "buttons": self.tracker.stats.as_dict(),
                "snapshots_taken": self.snapshots.taken,
                "snapshots_failed": self.snapshots.failed,
                "snapshots_pending": len(self._requests),
                "snapshots_refused": self.snapshot_refused,
                "last_snapshot": self.snapshots.last_path,
                "snapshot_error": self.snapshots.last_error,
                "snapshot_dir": self.snapshots.directory,
                "recording": self.recorder.stats() if self.recorder is not None else None,
                "control_socket": self.config.control_socket,
                "uptime_s": round(time.monotonic() - self.started_at, 1),
            }
        )
        return s

    def status_line(self) -> str:
        """One line for STATUS= and the demo: what a person wants to know first."""
        state = self.session.state
        ip = self.config.device_ip
        snaps = self.snapshots.taken
        tail = f", {snaps} snapshot{'s' if snaps != 1 else ''}" if snaps else ""
        if self.snapshots.last_error:
            tail += f" (snapshot error: {self.snapshots.last_error})"
        if state == STREAMING:
            out = _output_stats(self.output)
            res = out.get("resolution") or self.resolution
            size = f"{res[0]}x{res[1]}" if res else "?"
            camera = out.get("camera")
            target = f"to {camera}" if camera else "(no camera)"
            return f"streaming {size} at {self.fps():.1f} fps {target}{tail}"
        if state == STALLED:
            return f"stalled: no frames from {ip}{tail}"
        if state == WAITING_NETWORK:
            return f"waiting for network: no route to {ip} yet{tail}"
        if state == WAITING_DEVICE:
            return f"waiting for device at {ip}{tail}"
        return f"{state}{tail}"
