# SPDX-License-Identifier: GPL-3.0-or-later
"""Composition root of `borescope-bridge run`: wires session, cores, outputs and systemd.

Data flow (one loop thread, every hand-off non-blocking):

    Session --fragments--> Reassembler --frames--> Daemon.on_frame
        -> Pipeline.submit (newest frame wins; decode and camera on the pipeline's thread)
        -> Recorder.append (its own thread): the --record raw MJPEG file
        -> Recordings.offer: the running .mkv recording's queue -> its writer (its own thread)
        -> Snapshots.offer: the oldest waiting request takes it -> SnapshotWriter (its own thread)
    Session --RETCMD--> ButtonTracker --presses--> one snapshot request per press
                                      --keys (SDK 2.x scopes)--> on_video_key; zoom -> Feed
        -> the newest frame, state changes, saved and failed snapshots -> bridge.web Feed
        -> web page

The control socket, the web page and the signal handlers only queue requests; the loop
serves them. `bridge.capture.snapshots.Snapshots` owns every snapshot request from press to file
(its docstring tells the one rule for time and the one for space).

Threads: each owns its sockets, files and devices alone; others reach it only through its
mailbox, and nothing waits on another thread's work while holding a thread (a snapshot request
is a future, answered by whichever thread completes it).

    main: Session (bridge.device) and this Daemon
        owns: the UDP sockets, Reassembler, ButtonTracker, the link state, the waiting
              snapshot requests, the recorder slot, reload
        in:   datagrams; Session.call_soon (signals, reload); Session.wake
        out:  Pipeline.submit, Recorder.append, Snapshots.offer, Feed, sd_notify; its tick
              answers the snapshot futures whose deadline has come
    pipeline: Pipeline (bridge.camera)
        owns: the decoder, the transform, the V4L2 device and its reader events
        in:   the newest-frame slot (submit)  out: the camera; stats() values it publishes
    snapshots: SnapshotWriter (bridge.capture)
        owns: the files in the snapshot directory
        in:   its write queue  out: the file, the request's future, Feed.snapshot_saved
              (or Feed.snapshot_failed, from whichever thread fails a request)
    recorder: Recorder (bridge.capture)
        owns: the --record file  in: its bounded frame queue  out: the file
    recording: Recording (bridge.capture.recordings), one thread per .mkv file
        owns: that file  in: its bounded frame queue (full: frames dropped, counted)
        out: the file, the start/stop futures, Feed.recording (the page's SSE event);
        Recordings (the control object: start/stop/toggle/status) is called from any thread
    control: ControlServer (bridge.control)
        owns: the control socket and its connections
        in:   requests  out: replies, at once (status, url) or when a future completes:
              a snapshot's, or the web thread's for a one-time code or a new token (the
              completing thread wakes this one)
    web: WebServer (bridge.web, an asyncio loop)
        owns: the HTTP socket and its clients, the token and the credentials made from it
        in:   Feed (newest frame, state, saved files)  out: pages, streams, events; it awaits
              snapshot futures, and its executor only reads snapshot files (a hung disk
              must not stall the loop)

The builders in `bridge.app.build` construct the parts from a Config; the demo runs a whole
Daemon, the benchmark (bench/worker.py) takes the builders alone.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bridge import __version__
from bridge.app import status as status_mod
from bridge.app.build import Output, build_receive_path, make_output, start_web
from bridge.app.commands import ControlCommands
from bridge.app.config import Config
from bridge.app.lock import lock_instance
from bridge.app.paths import check_snapshot_dir, default_recordings_dir
from bridge.app.reload import plan_reload
from bridge.app.rlimit import raise_nofile_limit
from bridge.app.status import FPS_WINDOW_S
from bridge.app.systemd import Notifier
from bridge.capture.recorder import Recorder, check_record_path
from bridge.capture.recordings import Recordings
from bridge.capture.snapshots import (
    FRAME_WAIT_S,
    SnapshotRequest,
    SnapshotResult,
    Snapshots,
    SnapshotWriter,
)
from bridge.control.server import ControlServer
from bridge.core.control import KEY_VIDEO, KEY_ZOOM_IN, KEY_ZOOM_OUT
from bridge.core.jpeg import jpeg_dimensions
from bridge.core.linkstate import LinkState
from bridge.core.ratelimit import RateLimiter
from bridge.errors import BridgeError, ConfigError
from bridge.web.feed import Feed

log = logging.getLogger(__name__)

RECORDER_DRAIN_S = 2.0  # at shutdown, queued frames get this long to reach the disk


class Daemon:
    """One borescope, one process. `run()` returns the exit code."""

    def __init__(
        self,
        config: Config,
        reload_config: Callable[[], Config] | None = None,
        log_fields: dict[str, Any] | None = None,
        output_factory: Callable[[Config], Output] = make_output,
        state_dir: str | None = None,
        http_fallback: str | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self.log_fields = log_fields if log_fields is not None else {}
        self._dimensions = jpeg_dimensions
        self.notifier = Notifier()
        self.output: Output = output_factory(config)
        self.snapshot_writer = SnapshotWriter(
            config.snapshot_dir, on_saved=self._snapshot_saved, instance=config.interface
        )
        self.recordings = Recordings(
            config.recordings_dir or default_recordings_dir(),
            app=f"borescope-bridge {__version__}",
            max_bytes=config.record_max_bytes,
            max_seconds=config.record_max_seconds,
            on_event=lambda data: self.feed.recording(data),
            instance=config.interface,
        )
        self.feed = Feed(
            self.status,
            self.take_snapshot,
            lambda: self.snapshot_writer.directory,
            recordings=self.recordings,
            instances=self.other_instances,
        )
        self.web: Any = None  # bridge.web.server.WebServer while the page is served
        self.web_error: str | None = None
        self._state_dir = state_dir
        self._http_fallback = http_fallback  # the demo: a free port if 8031 is taken
        self.recorder: Recorder | None = Recorder(config.record) if config.record else None
        self.commands = ControlCommands(self)
        self.control = ControlServer(config.control_socket, self.commands.handle)
        self.session = build_receive_path(config, self)
        self.snapshots = Snapshots(
            self.snapshot_writer,
            state=lambda: self.session.state,
            on_failed=self._snapshot_failed,
        )
        self.started_at = time.monotonic()
        self.frames_received = 0
        self.presses = 0
        self.resolution: tuple[int, int] | None = None
        self._last_size = -1
        self._frame_times: collections.deque[float] = collections.deque()
        self._lost_signalled = False
        self._warn = RateLimiter(30.0)
        self._set_field("BORESCOPE_DEVICE", config.device_ip)
        self._set_field("BORESCOPE_STATE", self.session.state)
        if config.interface:
            self._set_field("BORESCOPE_INTERFACE", config.interface)

    @property
    def reassembler(self) -> Any:
        """The session's: `auto` replaces it with the found framing's."""
        return self.session.reassembler

    @property
    def tracker(self) -> Any:
        """The session's: a found model may bring its own button behaviour."""
        return self.session.tracker

    def _set_field(self, key: str, value: Any) -> None:
        self.log_fields[key] = value

    # ---- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        log.info(
            "borescope-bridge %s: model %s, device %s (stream %d, events %d)%s, camera %s, "
            "snapshots in %s",
            __version__,
            self.config.model,
            self.config.device_ip,
            self.config.stream_port,
            self.config.event_port,
            f" on {self.config.interface}" if self.config.interface else "",
            self.config.camera,
            self.config.snapshot_dir,
        )
        raise_nofile_limit()  # the caps bound a flood; this is the margin for the rest
        lock_fd = lock_instance(self.config.control_socket)
        try:
            return self._run_locked()
        finally:
            os.close(lock_fd)

    def _run_locked(self) -> int:
        # Settings that name files are checked before anything starts: a mistyped path is a
        # configuration error (exit 2), not a run that silently saves or records nothing.
        check_snapshot_dir(self.config.snapshot_dir, strict=True)
        if self.config.record:
            check_record_path(self.config.record)
        self.snapshot_writer.start()
        # Stopped in reverse order; the disk writers finish last so queued frames land.
        started: list[Callable[[], None]] = [
            self.snapshot_writer.stop,
            self._stop_recorder,
            self.recordings.shutdown,
        ]
        session_open = False
        try:
            if self.recorder is not None:
                self.recorder.start()
            self.session.open()
            session_open = True
            self.control.start()
            started.append(self.control.stop)
            if self._start_web():
                started.append(self.web.stop)
            self.output.start()
            started.append(self.output.stop)
            self._install_signals()
            self.notifier.ready(self.status_line())
            reason = self.session.run()
        finally:
            self.notifier.stopping()
            self._fail_pending("the daemon is stopping")
            if session_open:
                # First of all, so the device stops streaming even if something below hangs.
                self.session.close(send_stop=True)
            for stop in reversed(started):
                try:
                    stop()
                except Exception:
                    log.exception("error while stopping")
        log.info("stopped (%s)", reason)
        return 0

    def _start_web(self) -> bool:
        """Serve the web page; a failure is logged and reported, the camera goes on."""
        self.web, self.web_error = start_web(
            self.feed, self.config.http, self._state_dir, self._http_fallback
        )
        return self.web is not None

    def _snapshot_saved(self, path: str) -> None:
        self.feed.snapshot_saved(path)

    def _snapshot_failed(self, req: SnapshotRequest, reason: str) -> None:
        """Every failure reaches the page, a press's too (nobody else waits for its answer).
        SIGUSR1 counts as "control": a local command, like the control socket's."""
        source = {"button": "button", "web page": "page"}.get(req.origin, "control")
        self.feed.snapshot_failed(reason, source)

    def _stop_recorder(self) -> None:
        if self.recorder is not None:  # the current one: a reload may have replaced it
            self.recorder.stop(timeout=RECORDER_DRAIN_S)

    def _replace_recorder(self, path: str | None) -> None:
        """A new recording (or none). The old one is told to stop without waiting for it: it
        writes its queued frames and closes its file on its own thread."""
        if self.recorder is not None:
            self.recorder.stop()
        self.recorder = Recorder(path) if path else None
        if self.recorder is not None:
            self.recorder.start()

    def _install_signals(self) -> None:
        self.session.install_wakeup_fd()
        signal.signal(signal.SIGTERM, lambda *_: self.session.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.session.request_stop())
        signal.signal(signal.SIGUSR1, lambda *_: self.session.call_soon(self._sigusr1))
        signal.signal(signal.SIGHUP, lambda *_: self.session.call_soon(self.reload))

    def _sigusr1(self) -> None:
        log.info("SIGUSR1: snapshot of the next frame")
        self.request_snapshot("SIGUSR1")

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
        self.feed.frame(data, frame.completed_at, self.resolution)
        try:
            self.output.submit(frame)
        except Exception:  # a camera-side bug must not stop snapshots, recording, status
            ok, _ = self._warn.allow("submit", time.monotonic())
            if ok:
                log.exception("handing a frame to the camera pipeline failed")
        if self.recorder is not None:
            self.recorder.append(data)
        self.recordings.offer(data, now)
        self.snapshots.offer(data)

    def on_presses(self, count: int, now: float) -> None:
        self.presses += count
        log.info("snapshot button pressed%s", f" {count} times" if count > 1 else "")
        for _ in range(count):
            self.request_snapshot("button")

    def on_key(self, code: int, now: float) -> None:
        """A key of an SDK 2.x scope other than photo (which arrives as a press)."""
        if code == KEY_VIDEO:
            self.on_video_key(now)
        elif code in (KEY_ZOOM_IN, KEY_ZOOM_OUT):
            direction = "in" if code == KEY_ZOOM_IN else "out"
            log.info("zoom %s key pressed", direction)
            self.feed.zoom(direction)
        else:
            log.info("unknown key code %d from the scope: ignored", code)

    def on_video_key(self, now: float) -> None:
        """The scope's video key (SDK 2.x models): start or stop a recording, as the page's
        Record button does; the answer comes on another thread, so the loop never waits."""
        log.info(
            "video key pressed: %s the recording",
            "stopping" if self.recordings.current else "starting",
        )
        self.recordings.toggle("video key").add_done_callback(_log_refusal)

    def on_state(self, old: str, new: str, now: float) -> None:
        self._set_field("BORESCOPE_STATE", new)
        self.feed.set_state(new, new == LinkState.STREAMING)
        if new == LinkState.STREAMING:
            if self._lost_signalled:
                self._lost_signalled = False
                self.output.signal_back()
        elif not self._lost_signalled:
            self._lost_signalled = True
            self.output.signal_lost()
        self.notifier.status(self.status_line(), force=True)

    def on_tick(self, now: float) -> None:
        # The loop thread is alive (it runs this); the camera thread must be progressing too,
        # or the watchdog goes unfed and systemd restarts a service that shows a frozen camera.
        stuck = self.output.stuck(now)
        if stuck is None:
            self.notifier.watchdog(now)
        else:
            ok, _ = self._warn.allow("stuck", time.monotonic())
            if ok:
                log.error("%s: no longer telling systemd's watchdog that all is well", stuck)
        self.notifier.status(self.status_line())
        self.snapshots.expire()
        self.recordings.expire()

    # ---- requests ------------------------------------------------------------------------

    def request_snapshot(self, origin: str, wait_s: float = FRAME_WAIT_S) -> SnapshotRequest:
        """A request for the next complete frame (any thread); its `answer` comes by `wait_s`."""
        return self.snapshots.request(origin, wait_s)

    def _fail_pending(self, why: str) -> None:
        self.snapshots.fail_waiting(why)

    def take_snapshot(self, timeout: float, origin: str) -> Future[dict[str, Any]]:
        """Save the next complete frame; the future reply comes within `timeout` (any thread).

        The reply is what the control socket sends. ``busy`` marks a failure that a retry may
        cure (no frame yet, too many waiting, the disk still writing this one) as opposed to a
        frame that was taken and could not be written; ``limited``, a refusal by the rate
        limit. The loop thread's tick answers by the deadline (`Snapshots.expire`); the future
        is running, so it cannot be cancelled.
        """
        reply: Future[dict[str, Any]] = Future()
        reply.set_running_or_notify_cancel()
        req = self.request_snapshot(origin, wait_s=timeout)

        def answered(result: SnapshotResult) -> None:
            if result.path is not None:
                reply.set_result({"ok": True, "path": result.path})
                return
            failed: dict[str, Any] = {
                "ok": False,
                "busy": result.pending or req.directory is None,
                "error": result.error or "snapshot failed",
            }
            if result.limited:
                failed["limited"] = True
            if result.pending:
                failed.update(pending=True, name=result.name)
            reply.set_result(failed)

        req.add_done_callback(answered)
        self.session.wake()
        return reply

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
            plan = plan_reload(old, new)
            changed = plan.changed
            applied: dict[str, Any] = {}
            for key in changed:
                if key in plan.live and self._apply_live(key, getattr(new, key)):
                    applied[key] = getattr(new, key)
                elif key != "config_path":
                    log.warning(
                        "reload: %s changed (%r -> %r) but needs a restart to apply",
                        key,
                        getattr(old, key),
                        getattr(new, key),
                    )
            stopped = self.recorder
            if "record" not in changed and stopped is not None and stopped.error is not None:
                # What "free some space, then reload" promises: start the same recording again.
                log.info(
                    "reload: recording to %s had stopped (%s); starting it again",
                    stopped.path,
                    stopped.error,
                )
                self._replace_recorder(stopped.path)
            self.config = dataclasses.replace(old, **applied)
            if applied:
                log.info(
                    "reload: applied %s", ", ".join(f"{k} = {v!r}" for k, v in applied.items())
                )
            elif not changed and self.recorder is stopped:
                log.info("reload: no changes")
        finally:
            self.notifier.send("READY=1")
            self.notifier.status(self.status_line(), force=True)

    def _apply_live(self, key: str, value: Any) -> bool:
        if key == "snapshot_dir":
            self.snapshot_writer.set_directory(value)
            check_snapshot_dir(value)
        elif key == "record":
            self._replace_recorder(value)
        elif key == "recordings_dir":
            self.recordings.set_directory(value)
        elif key == "record_max_bytes":
            self.recordings.max_bytes = value  # from the next recording on
        elif key == "record_max_seconds":
            self.recordings.max_seconds = value
        elif key == "wait":
            self.session.wait_s = value
        elif key == "linger":
            self.session.linger_s = value
        elif key in ("rotate", "flip"):
            rotate = value if key == "rotate" else self.config.rotate
            flip = value if key == "flip" else self.config.flip
            try:
                self.output.set_transform(rotate, flip)
            except (BridgeError, ValueError) as exc:
                log.error("reload: cannot apply %s = %r: %s", key, value, exc)
                return False
            self.config = dataclasses.replace(self.config, rotate=rotate, flip=flip)
        else:
            return False
        return True

    # ---- status ----------------------------------------------------------------------------

    def fps(self) -> float:
        return status_mod.fps(self._frame_times, time.monotonic())

    def status(self) -> dict[str, Any]:
        """Everything `borescope-bridge status` shows (called from the control thread)."""
        return status_mod.status_fields(
            head={"version": __version__, "pid": os.getpid()},
            session=self.session.stats(),
            reassembly=self.reassembler.stats.as_dict(),
            output=self.output.stats(),
            resolution=self.resolution,
            fps=self.fps(),
            frames_received=self.frames_received,
            settings={
                "format": self.config.format,
                "rotate": self.config.rotate,
                "flip": self.config.flip,
            },
            presses=self.presses,
            buttons=self.tracker.stats.as_dict(),
            snapshots=status_mod.snapshot_fields(self.snapshot_writer, self.snapshots),
            tail={
                "record": self.recorder.stats() if self.recorder is not None else None,
                "recording": self.recordings.status(),
                "control_socket": self.config.control_socket,
                **status_mod.web_fields(self.web, self.config.http, self.web_error),
                "uptime_s": round(time.monotonic() - self.started_at, 1),
            },
        )

    def other_instances(self) -> list[dict[str, Any]]:
        """The other running instances' pages (GET /api/instances); asks their control sockets."""
        from bridge.app.paths import control_socket_candidates
        from bridge.control.instances import find_instances

        ours = os.path.abspath(self.config.control_socket)
        others = [p for p in control_socket_candidates() if os.path.abspath(p) != ours]
        found = find_instances(others, timeout=1.0)
        return status_mod.instance_links([(i.interface, i.status) for i in found if not i.error])

    def status_line(self) -> str:
        """One line for STATUS= and the demo: what a person wants to know first."""
        state = self.session.state
        return status_mod.status_line(
            state=state,
            device_ip=self.session.device_ip,  # auto may have moved to another address
            fps=self.fps(),
            output=self.output.stats() if state == LinkState.STREAMING else {},
            resolution=self.resolution,
            snapshots_taken=self.snapshot_writer.taken,
            snapshot_error=self.snapshot_writer.last_error,
            recording=running.name if (running := self.recordings.current) else None,
        )


def _log_refusal(done: Future[dict[str, Any]]) -> None:
    reply = done.result()
    if not reply.get("ok"):
        log.warning("video key: %s", reply.get("error", "the recording did not change"))
