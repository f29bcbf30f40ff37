# SPDX-License-Identifier: GPL-3.0-or-later
"""The output side of the daemon: complete frames in, pictures on the virtual camera out.

Theory of operation. The receive loop calls :meth:`Pipeline.submit` for every complete frame and
must never wait for decoding or for the camera, so frames go through a single slot: the newest
frame replaces an unprocessed one (counted as ``skipped``). A worker thread takes the slot,
decodes (``fmt="raw"``: JPEG -> limited-range I420, then rotate/flip) or passes the JPEG through
untouched (``fmt="mjpeg"``), and writes one picture to the sink. Decoders and write() release the
GIL, so the receive thread keeps running meanwhile.

The camera is opened lazily at the first frame's size (so it is never locked to a wrong size).
When the stream's size changes (another resolution, `rotate 90` by reload, or one corrupt frame
whose SOF claims another size) the camera follows only after ``SWITCH_AFTER_FRAMES`` consecutive
frames at the new size, and never by closing the working writer first: the sink's ``resize``
tries the new format and, while an app holds the device at its size (v4l2loopback keeps it), the
writer stays at the old size. Until the camera has the stream's size, every picture is fitted
into it (scaled, black bars: :mod:`bridge.pixels.fit`), so apps keep receiving pictures. When it
cannot be opened (module not loaded, no permission, format locked by a reader) the error text,
which says what to run, is kept in ``stats()["camera_error"]`` and the open is retried every few
seconds; frames keep being accepted and are not decoded meanwhile. While the daemon reports the
signal lost, a "no signal" picture is written every NO_SIGNAL_PERIOD_S, so apps stay connected
and never freeze on a stale picture.

Nobody watching (bridge.camera.usage): where the module counts every reader (v4l2loopback 0.14
and later), frames are neither decoded nor written while the count is zero; the device keeps
its format and stays listed (after one written frame, which makes it a capture device). The
count is read before each frame. While idle the worker is parked: it publishes the stream's size,
and the receive thread drops frames of that size without waking it (a frame nobody will see
costs no thread hand-over; see bench: "nobody watching"). Only the worker touches the device and
its reader count: while parked it asks the count every PARKED_CHECK_S, and when a reader starts
it unparks and shows the newest dropped frame at once.

A frame whose SOF declares more than ``max_picture_size`` is dropped before the camera or a
decoder is asked for its size (bridge.camera.guard): four header bytes must not cost gigabytes.

Thread ownership: the worker alone uses the sink, the decoders and the reader count. What other
threads read (``stats()``, ``stuck()``) is published as plain values replaced whole.

Latency is measured from ``frame.completed_at`` (the clock's time when the last fragment
arrived) to the end of the sink's write(). Every time the pipeline reads comes from ``clock``
(``time.monotonic`` unless a test steps its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.camera.guard import DEFAULT_MAX_PICTURE_SIZE, PictureGuard
from bridge.camera.loopback import find_camera
from bridge.camera.meter import ShownMeter
from bridge.camera.sink import CameraState, FrameLike, Sink, SinkFactory
from bridge.camera.usage import Usage, usage_for
from bridge.camera.v4l2 import V4L2Writer
from bridge.core.jpeg import jpeg_dimensions
from bridge.errors import CameraError, ConfigError
from bridge.pixels.decode import DecodeError, Decoder, PictureTooLarge
from bridge.pixels.encode import encode_jpeg_yuv_planes
from bridge.pixels.fit import Fitter, full_range_planes
from bridge.pixels.nosignal import no_signal_i420, no_signal_jpeg
from bridge.pixels.transform import Transform

log = logging.getLogger(__name__)

CAMERA_RETRY_S = 3.0
NO_SIGNAL_PERIOD_S = 0.5  # "no signal" picture at 2 fps: enough for apps to stay connected
FORMATS = ("raw", "mjpeg")
SWITCH_AFTER_FRAMES = 5  # consecutive frames at a new size before the camera follows
RESIZE_RETRY_S = 5.0  # while an app keeps the camera at its size, ask again this often
REENCODE_QUALITY = 85  # MJPEG pictures fitted into a camera of another size
STOP_JOIN_S = 2.0
# One frame (decode, transform, write) takes milliseconds; a worker on one frame this long is
# wedged, and the daemon stops feeding systemd's watchdog so the service gets restarted.
STUCK_S = 10.0
# While parked, the worker asks the reader count this often: a reader that starts waits at most
# this long (plus one frame) for its first picture. Each check wakes the worker, so more often
# costs CPU on every idle second (bench: "nobody watching", side by side with "receive alone").
PARKED_CHECK_S = 0.1


def _default_sink(path: str, width: int, height: int, fmt: str, fps: float) -> Sink:
    return V4L2Writer(path, width, height, fmt, fps, adopt_locked=True)


def _passthrough_finder(spec: str) -> str | None:
    """With a substituted sink there is no device to discover: hand the spec to the sink."""
    return spec


@dataclass(frozen=True)
class _Job:
    """What the worker does next: a frame, a look at the reader count, a "no signal" picture."""

    frame: FrameLike | None = None
    check_readers: bool = False
    no_signal: bool = False


class Pipeline:
    """Frames in (any thread, never blocking), camera pictures out (own worker thread)."""

    def __init__(
        self,
        camera: str = "auto",
        fmt: str = "raw",
        rotate: int = 0,
        flip: str = "none",
        fps_hint: float = 30.0,
        sink_factory: SinkFactory | None = None,
        camera_finder: Callable[[str], str | None] | None = None,
        retry_s: float = CAMERA_RETRY_S,
        decoder_backend: str = "auto",
        usage_factory: Callable[[Sink], Usage | None] = usage_for,
        clock: Callable[[], float] = time.monotonic,
        max_picture_size: tuple[int, int] = DEFAULT_MAX_PICTURE_SIZE,
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"format: {fmt!r} is not one of raw, mjpeg")
        if camera == "none":
            raise ValueError("--camera none has no pipeline: the daemon uses NullOutput")
        self.fmt = fmt
        self.transform = self._checked_transform(rotate, flip)
        self.camera_spec = camera
        self.fps_hint = fps_hint
        self.retry_s = retry_s
        self._clock = clock
        self._sink_factory: SinkFactory = sink_factory or _default_sink
        if camera_finder is None:
            camera_finder = find_camera if sink_factory is None else _passthrough_finder
        self._finder = camera_finder
        self._guard = PictureGuard(max_picture_size)
        self._decoder = (
            Decoder(decoder_backend, max_size=max_picture_size) if fmt == "raw" else None
        )
        self._usage_factory = usage_factory
        self._usage: Usage | None = None
        self._primed = False  # a frame was written since the sink opened
        # Published by the worker while idle: the stream's size whose frames submit() drops.
        self._parked: tuple[int, int] | None = None
        self._next_readers_check = 0.0
        # Written by submit() while parked: the newest dropped frame, shown when a reader starts.
        self._parked_frame: FrameLike | None = None
        self._cond = threading.Condition()
        self._slot: FrameLike | None = None
        self._lost = False
        self._running = False
        self._thread: threading.Thread | None = None
        # Worker-owned state.
        self._sink: Sink | None = None
        self._sink_path = ""
        self._camera: CameraState | None = None  # published for stats(): replaced whole
        self._next_open_at = 0.0
        self._pending_size: tuple[int, int] | None = None  # a size the camera may switch to
        self._pending_frames = 0
        self._next_resize_at = 0.0
        self._fitter = Fitter()
        self._fit_decoder: Decoder | None = None  # MJPEG pictures fitted into another size
        self._fitting_logged: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._busy_since: float | None = None  # when the worker took its current job
        self._last_no_signal = 0.0
        self._no_signal_cache: tuple[tuple[int, int], Any] | None = None
        self._meter = ShownMeter()
        # Counters (read by stats from other threads: plain ints/objects, replaced atomically).
        self.submitted = 0
        self.shown = 0
        self.skipped = 0
        self.not_shown = 0  # taken by the worker but no camera to show them on
        self.decode_errors = 0
        self.no_signal_shown = 0
        self.idle_frames = 0  # not decoded: nobody was watching (counted by the worker)
        self.parked_frames = 0  # dropped by submit() while the worker is parked
        self.readers: int | None = None
        self.idle = False
        self.camera_error: str | None = None
        self.resolution: tuple[int, int] | None = None
        self.fitted = 0  # pictures shown fitted into a camera of another size

    # -- control -----------------------------------------------------------------------------
    def _checked_transform(self, rotate: int, flip: str) -> Transform:
        transform = Transform(rotate, flip)
        if self.fmt == "mjpeg" and not transform.identity:
            raise ConfigError(
                f"rotate={rotate} flip={flip} needs decoding, but format=mjpeg passes the "
                "device's JPEGs through untouched: use --format raw to rotate or flip"
            )
        return transform

    def set_transform(self, rotate: int, flip: str) -> None:
        """Rotate/flip from the next frame on (a reload): the worker reads it once per frame,
        and replacing the object is atomic under the GIL."""
        self.transform = self._checked_transform(rotate, flip)

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker. The decoder and the camera are freed by whoever is last to use them:
        here when the worker has ended (or never ran), else by the worker itself when it
        returns from a decode or write that outlived the join (ctypes drops the GIL there)."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=STOP_JOIN_S)
            if thread.is_alive():
                log.warning(
                    "the camera thread is still busy after %g s; it frees the camera and the "
                    "decoder when it returns",
                    STOP_JOIN_S,
                )
                return
        self._release()

    def submit(self, frame: FrameLike) -> None:
        """Hand over a complete frame; returns at once. An unprocessed older frame is dropped."""
        parked = self._parked
        # After a stall the frame goes to the worker once more: it ends the "no signal" state.
        if parked is not None and not self._lost and jpeg_dimensions(frame.data) == parked:
            self._parked_frame = frame
            self.submitted += 1
            self.parked_frames += 1
            return
        with self._cond:
            self.submitted += 1
            if self._slot is not None:
                self.skipped += 1
            self._slot = frame
            self._lost = False
            self._cond.notify()

    def stuck(self, now: float) -> str | None:
        """Why the camera side is not making progress, or None while it is (or is idle)."""
        thread = self._thread
        if thread is None or not self._running:
            return None
        if not thread.is_alive():
            return "the camera thread has ended"
        since = self._busy_since
        if since is not None and now - since > STUCK_S:
            return f"the camera thread has been stuck on one frame for {now - since:.0f} s"
        return None

    def signal_lost(self) -> None:
        """The stream stalled: show the "no signal" picture until frames return."""
        with self._cond:
            self._lost = True
            self._cond.notify()

    def signal_back(self) -> None:
        with self._cond:
            self._lost = False

    def reset_latency(self) -> None:
        """Start a new latency window (the benchmark measures each run on its own)."""
        self._meter.reset_latency()

    def stats(self) -> dict[str, Any]:
        """Counters and state for status and the web page (any thread: plain values only)."""
        camera = self._camera
        return {
            "shown": self.shown,
            "skipped": self.skipped,
            "camera": camera.path if camera is not None else None,
            "camera_size": camera.size if camera is not None else None,
            "fitted": self.fitted,
            "camera_error": self.camera_error,
            "resolution": self.resolution,
            "fps": self._meter.fps(self._clock()),
            "latency_p50_ms": self._meter.latency_ms(0.50),
            "latency_p99_ms": self._meter.latency_ms(0.99),
            "format": self.fmt,
            "decoder": self._decoder.backend if self._decoder is not None else None,
            "decode_errors": self.decode_errors,
            "frames_too_large": self._guard.refused,
            "not_shown": self.not_shown,
            "no_signal": self._lost,
            "no_signal_shown": self.no_signal_shown,
            "readers": self.readers if self.readers is not None else "unknown",
            "idle": self.idle,
            "idle_frames": self.idle_frames + self.parked_frames,
        }

    # -- worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._release()

    def _release(self) -> None:
        """Close the camera and free the decoders: only once no thread can still use them."""
        self._close_sink()
        for decoder in (self._decoder, self._fit_decoder):
            if decoder is not None:
                decoder.close()

    def _loop(self) -> None:
        while self._running:
            self.work_once(block=True)

    def work_once(self, block: bool = False) -> bool:
        """The worker's loop body: do the next job that is due on the clock; whether there was
        one. ``block`` waits for one (until stop()); tests call it unblocked, stepping the clock,
        on a pipeline that was never started."""
        with self._cond:
            while True:
                if block and not self._running:
                    return False
                job, wait = self._next_job(self._clock())
                if job is not None or not block:
                    break
                self._cond.wait(wait)
        if job is None:
            return False
        self._busy_since = self._clock()
        try:
            if job.frame is not None:
                self._show(job.frame)
            else:
                if job.check_readers:
                    self._check_readers()
                if job.no_signal:
                    self._show_no_signal()
        except Exception:  # never let the worker die: the daemon must keep streaming
            log.exception("pipeline: unexpected error; frame dropped")
        finally:
            self._busy_since = None
        return True

    def _next_job(self, now: float) -> tuple[_Job | None, float | None]:
        """Under the lock: the job due at ``now``, else how long to wait for one (None: until
        notified). A frame comes first; it takes the frame out of the slot."""
        if self._slot is not None:
            frame, self._slot = self._slot, None
            return _Job(frame=frame), None
        waits: list[float] = []
        check = False
        if self._parked is not None:
            wait = self._next_readers_check - now
            check = wait <= 0
            waits.append(wait)
        no_signal = False
        if self._lost:
            wait = self._last_no_signal + NO_SIGNAL_PERIOD_S - now
            no_signal = wait <= 0
            waits.append(wait)
        if check or no_signal:
            return _Job(check_readers=check, no_signal=no_signal), None
        return None, (min(waits) if waits else None)

    def _show(self, frame: FrameLike) -> None:
        # Frames reach the worker while parked only when something changed (their size, a
        # stall): it decides afresh below whether to park again.
        self._parked = None
        transform = self.transform  # once per frame: a reload may replace it meanwhile
        data = frame.data
        dims = jpeg_dimensions(data)
        if dims is None:
            self.decode_errors += 1
            return
        if not self._guard.allows(dims, self._clock()):  # before any size is asked or allocated
            return
        w, h = dims
        if self.fmt == "raw":
            w, h = w & ~1, h & ~1
        self.resolution = (w, h)
        out_size = transform.output_size(w, h)
        sink = self._ensure_sink(out_size)
        if sink is None:
            self.not_shown += 1
            return
        # While a size switch is pending every frame counts towards it (SWITCH_AFTER_FRAMES),
        # so the device follows the stream even while nobody watches.
        if self._pending_size is None and self._nobody_watches(dims):
            self.idle_frames += 1
            return
        camera = sink.size
        try:
            picture = self._render(data, (w, h), transform, out_size, camera)
        except PictureTooLarge as exc:  # the decoder read another SOF than the one above
            self._guard.allows(exc.size, self._clock())
            return
        except DecodeError as exc:
            self.decode_errors += 1
            log.debug("frame not decodable: %s", exc)
            return
        if self._write(picture):
            done = self._clock()
            self._meter.record(done, frame.completed_at)
            self.shown += 1
            if out_size != camera:
                self.fitted += 1

    def _render(
        self,
        data: bytes,
        size: tuple[int, int],
        transform: Transform,
        out_size: tuple[int, int],
        camera: tuple[int, int],
    ) -> Any:
        """The picture to write: decoded and transformed (raw) or the JPEG itself (mjpeg),
        fitted into the camera's size when that differs. DecodeError: skip the frame."""
        if out_size != camera and self._fitting_logged != (out_size, camera):
            self._fitting_logged = (out_size, camera)
            log.info("showing the %dx%d stream fitted into the camera's %dx%d", *out_size, *camera)
        if self._decoder is None:  # mjpeg: untouched, unless the camera has another size
            if out_size == camera:
                return data
            if self._fit_decoder is None:
                self._fit_decoder = Decoder(max_size=self._guard.max_size)
            i420 = self._fit_decoder.decode(data)
            fitted = self._fitter.fit(i420, self._fit_decoder.size, camera)
            return encode_jpeg_yuv_planes(
                *full_range_planes(fitted, *camera), quality=REENCODE_QUALITY
            )
        i420 = self._decoder.decode(data)
        if self._decoder.size != size:  # header disagrees with the SOF we parsed
            raise DecodeError(f"decoded {self._decoder.size}, SOF said {size}")
        return self._fitter.fit(transform.apply(i420, *size), out_size, camera)

    def _show_no_signal(self) -> None:
        self._last_no_signal = self._clock()
        sink = self._sink
        if sink is None:
            if self.resolution is None:
                return  # no frame seen yet: do not lock the device to a guessed size
            sink = self._open(self.transform.output_size(*self.resolution))
            if sink is None:
                return
        if self._nobody_watches():
            return
        size = sink.size
        if self._no_signal_cache is None or self._no_signal_cache[0] != size:
            picture: Any = no_signal_i420(*size) if self.fmt == "raw" else no_signal_jpeg(*size)
            if isinstance(picture, np.ndarray):
                picture = np.ascontiguousarray(picture)
            self._no_signal_cache = (size, picture)
        if self._write(self._no_signal_cache[1]):
            self.no_signal_shown += 1

    def _ensure_sink(self, size: tuple[int, int]) -> Sink | None:
        """The open sink (maybe at another size than ``size``); None when there is no camera.

        A sink at another size follows ``size`` only after SWITCH_AFTER_FRAMES consecutive
        frames at it, and it is asked again every RESIZE_RETRY_S while an app keeps it.
        """
        sink = self._sink
        if sink is None:
            return self._open(size)
        if sink.size == size:
            self._pending_size, self._pending_frames = None, 0
            return sink
        if self._pending_size != size:
            self._pending_size, self._pending_frames = size, 0
            self._next_resize_at = 0.0
        self._pending_frames += 1
        now = self._clock()
        if self._pending_frames < SWITCH_AFTER_FRAMES or now < self._next_resize_at:
            return sink
        log.log(
            logging.DEBUG if self._next_resize_at else logging.INFO,
            "stream size changed to %dx%d: switching the camera from %dx%d",
            *size,
            *sink.size,
        )
        try:
            switched = sink.resize(*size)
        except CameraError as exc:
            log.warning("virtual camera lost while switching its size: %s", exc)
            self.camera_error = str(exc)
            self._close_sink()
            self._next_open_at = 0.0  # reopen at once, at whatever size the device allows
            return None
        # resize() may have closed and reopened the device: subscribe on the descriptor it has now.
        self._watch_readers(sink)
        self._camera = CameraState(self._sink_path, sink.size)
        if switched:
            self._pending_size, self._pending_frames = None, 0
        else:
            self._next_resize_at = now + RESIZE_RETRY_S
        return sink

    def _open(self, size: tuple[int, int]) -> Sink | None:
        """Open the camera at ``size`` (or the size the device keeps); None: retry later."""
        now = self._clock()
        if now < self._next_open_at:
            return None
        try:
            path = self._finder(self.camera_spec)
            if path is None:
                return None
            sink = self._sink_factory(path, size[0], size[1], self.fmt, self.fps_hint)
        except CameraError as exc:
            self._next_open_at = now + self.retry_s
            if str(exc) != self.camera_error:
                log.warning(
                    "virtual camera unavailable (retrying every %.0f s): %s", self.retry_s, exc
                )
            self.camera_error = str(exc)
            return None
        self._sink = sink
        self._sink_path = path
        self._camera = CameraState(path, sink.size)
        self._pending_size, self._pending_frames = None, 0
        self._watch_readers(sink)
        if self._usage is not None and self._usage.may_idle:
            log.info("%s reports its readers: decoding only while someone watches", path)
        if self.camera_error is not None:
            log.info("virtual camera %s is available again", path)
        self.camera_error = None
        return sink

    def _write(self, picture: Any) -> bool:
        sink = self._sink
        if sink is None:
            return False
        try:
            sink.write(picture)
            self._primed = True
        except CameraError as exc:
            log.warning("virtual camera lost: %s", exc)
            self.camera_error = str(exc)
            self._close_sink()
            self._next_open_at = self._clock() + self.retry_s
            return False
        return True

    def _watch_readers(self, sink: Sink) -> None:
        """Ask the device who is watching, on the descriptor the sink has now (None: unknown)."""
        self._parked = None
        self._primed = False
        try:
            self._usage = self._usage_factory(sink)
        except OSError as exc:
            log.warning("cannot ask %s who is watching: %s", self._sink_path, exc)
            self._usage = None

    def _check_readers(self) -> None:
        """Parked: unpark when a reader started, and show it the newest dropped frame at once
        (unless the stream stalled meanwhile: the "no signal" picture is due then)."""
        self._next_readers_check = self._clock() + PARKED_CHECK_S
        if self._nobody_watches():
            return
        self._parked = None
        frame, self._parked_frame = self._parked_frame, None
        if frame is not None:
            with self._cond:
                if self._slot is None and not self._lost:
                    self._slot = frame
                    self.idle_frames -= 1  # submit() counted it idle: it is shown after all

    def _nobody_watches(self, dims: tuple[int, int] | None = None) -> bool:
        """True while the module says no reader streams (never before the first write)."""
        usage = self._usage
        self.readers = usage.readers() if usage is not None else None
        idle = usage is not None and usage.may_idle and self._primed and self.readers == 0
        if idle and dims is not None and self._parked != dims:
            self._parked_frame = None  # only a frame dropped from now on is new enough to show
            self._next_readers_check = self._clock() + PARKED_CHECK_S
            self._parked = dims
        if idle != self.idle:
            log.info(
                "%s",
                "nobody watches the camera: decoding paused"
                if idle
                else "a reader started: decoding",
            )
            self.idle = idle
        return idle

    def _close_sink(self) -> None:
        self._parked = None
        self._parked_frame = None
        self._camera = None
        sink, self._sink = self._sink, None
        self._usage = None
        self.readers = None
        self.idle = False
        if sink is not None:
            try:
                sink.close()
            except Exception:
                log.exception("closing the camera failed")
