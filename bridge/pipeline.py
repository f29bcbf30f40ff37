# SPDX-License-Identifier: GPL-3.0-or-later
"""The output side of the daemon: complete frames in, pictures on the virtual camera out.

Theory of operation. The receive loop calls :meth:`Pipeline.submit` for every complete frame and
must never wait for decoding or for the camera, so frames go through a single slot: the newest
frame replaces an unprocessed one (counted as ``skipped``). A worker thread takes the slot,
decodes (``fmt="raw"``: JPEG -> limited-range I420, then rotate/flip) or passes the JPEG through
untouched (``fmt="mjpeg"``), and writes one picture to the sink. Decoders and write() release the
GIL, so the receive thread keeps running meanwhile.

The camera is opened lazily at the first frame's size (so it is never locked to a wrong size) and
reopened when the stream's size changes. When it cannot be opened (module not loaded, no
permission, format locked by a reader) the error text, which says what to run, is kept in
``stats["camera_error"]`` and the open is retried every few seconds; frames keep being accepted
and are not decoded meanwhile. While the daemon reports the signal lost, a "no signal" picture is
written at about 2 fps, so apps stay connected and never freeze on a stale picture.

Latency is measured from ``frame.completed_at`` (``time.monotonic()`` when the last fragment
arrived) to the end of the sink's write().
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .decode import DecodeError, Decoder, jpeg_dimensions
from .errors import CameraError, ConfigError
from .loopback import find_camera
from .nosignal import no_signal_i420, no_signal_jpeg
from .transform import Transform
from .v4l2 import V4L2Writer

log = logging.getLogger(__name__)

CAMERA_RETRY_S = 3.0
NO_SIGNAL_PERIOD_S = 0.5  # "no signal" picture at 2 fps: enough for apps to stay connected
LATENCY_WINDOW = 300  # frames (10 s at 30 fps)
FPS_WINDOW_S = 2.0
FORMATS = ("raw", "mjpeg")


class FrameLike(Protocol):
    """What the pipeline needs of bridge.reassembly.Frame."""

    @property
    def data(self) -> bytes: ...
    @property
    def completed_at(self) -> float: ...


class Sink(Protocol):
    """Where pictures go: the V4L2 writer, or a stand-in in tests and the benchmark."""

    def write(self, data: Any) -> None: ...
    def close(self) -> None: ...


SinkFactory = Callable[[str, int, int, str, float], Sink]  # (path, width, height, fmt, fps)


def _default_sink(path: str, width: int, height: int, fmt: str, fps: float) -> Sink:
    return V4L2Writer(path, width, height, fmt, fps)


def _passthrough_finder(spec: str) -> str | None:
    """With a substituted sink there is no device to discover: hand the spec to the sink."""
    return None if spec == "none" else spec


def _percentile(sorted_values: list[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


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
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"format: {fmt!r} is not one of raw, mjpeg")
        self.transform = Transform(rotate, flip)
        if fmt == "mjpeg" and not self.transform.identity:
            raise ConfigError(
                f"rotate={rotate} flip={flip} needs decoding, but format=mjpeg passes the "
                "device's JPEGs through untouched: use --format raw to rotate or flip"
            )
        self.camera_spec = camera
        self.fmt = fmt
        self.fps_hint = fps_hint
        self.retry_s = retry_s
        self._sink_factory: SinkFactory = sink_factory or _default_sink
        if camera_finder is None:
            camera_finder = find_camera if sink_factory is None else _passthrough_finder
        self._finder = camera_finder
        self._decoder = Decoder(decoder_backend) if fmt == "raw" else None
        self._cond = threading.Condition()
        self._slot: FrameLike | None = None
        self._lost = False
        self._running = False
        self._thread: threading.Thread | None = None
        # Worker-owned state.
        self._sink: Sink | None = None
        self._sink_path: str | None = None
        self._sink_size: tuple[int, int] | None = None
        self._next_open_at = 0.0
        self._last_no_signal = 0.0
        self._no_signal_cache: tuple[tuple[int, int], Any] | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._shown_times: deque[float] = deque()
        # Counters (read by stats from other threads: plain ints/objects, replaced atomically).
        self.submitted = 0
        self.shown = 0
        self.skipped = 0
        self.not_shown = 0  # taken by the worker but no camera to show them on
        self.decode_errors = 0
        self.no_signal_shown = 0
        self.camera_error: str | None = None
        self.resolution: tuple[int, int] | None = None

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        if self.camera_spec == "none":
            return  # nothing to show: frames are only counted
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_sink()
        if self._decoder is not None:
            self._decoder.close()

    def submit(self, frame: FrameLike) -> None:
        """Hand over a complete frame; returns at once. An unprocessed older frame is dropped."""
        if self.camera_spec == "none":
            self.submitted += 1
            self.resolution = jpeg_dimensions(frame.data) or self.resolution
            return
        with self._cond:
            self.submitted += 1
            if self._slot is not None:
                self.skipped += 1
            self._slot = frame
            self._lost = False
            self._cond.notify()

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
        self._latencies.clear()

    @property
    def stats(self) -> dict[str, Any]:
        lat = sorted(self._latencies)
        now = time.monotonic()
        times = list(self._shown_times)
        fps = 0.0
        if len(times) >= 2 and now - times[-1] < FPS_WINDOW_S:
            fps = (len(times) - 1) / max(times[-1] - times[0], 1e-6)
        return {
            "shown": self.shown,
            "skipped": self.skipped,
            "camera": self._sink_path if self._sink is not None else None,
            "camera_error": self.camera_error,
            "resolution": self.resolution,
            "fps": round(fps, 2),
            "latency_p50_ms": round(_percentile(lat, 0.50) * 1000, 3) if lat else None,
            "latency_p99_ms": round(_percentile(lat, 0.99) * 1000, 3) if lat else None,
            "format": self.fmt,
            "decoder": self._decoder.backend if self._decoder is not None else None,
            "decode_errors": self.decode_errors,
            "not_shown": self.not_shown,
            "no_signal": self._lost,
            "no_signal_shown": self.no_signal_shown,
        }

    # -- worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and self._slot is None:
                    if self._lost:
                        wait = self._last_no_signal + NO_SIGNAL_PERIOD_S - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if not self._running:
                    return
                frame, self._slot = self._slot, None
                lost = self._lost
            try:
                if frame is not None:
                    self._show(frame)
                elif lost:
                    self._show_no_signal()
            except Exception:  # never let the worker die: the daemon must keep streaming
                log.exception("pipeline: unexpected error; frame dropped")

    def _show(self, frame: FrameLike) -> None:
        data = frame.data
        dims = jpeg_dimensions(data)
        if dims is None:
            self.decode_errors += 1
            return
        w, h = dims
        if self.fmt == "raw":
            w, h = w & ~1, h & ~1
        self.resolution = (w, h)
        out_size = self.transform.output_size(w, h)
        if not self._ensure_sink(out_size):
            self.not_shown += 1
            return
        picture: Any
        if self._decoder is not None:
            try:
                picture = self._decoder.decode(data)
            except DecodeError as exc:
                self.decode_errors += 1
                log.debug("frame not decodable: %s", exc)
                return
            if self._decoder.size != (w, h):  # header disagrees with the SOF we parsed
                self.decode_errors += 1
                return
            picture = self.transform.apply(picture, w, h)
        else:
            picture = data
        if self._write(picture):
            done = time.monotonic()
            self._latencies.append(done - frame.completed_at)
            self.shown += 1
            self._note_shown(done)

    def _note_shown(self, now: float) -> None:
        times = self._shown_times
        times.append(now)
        while times and now - times[0] > FPS_WINDOW_S:
            times.popleft()

    def _show_no_signal(self) -> None:
        self._last_no_signal = time.monotonic()
        size = self._sink_size or (
            self.transform.output_size(*self.resolution) if self.resolution else None
        )
        if size is None:
            return  # no frame seen yet: do not lock the device to a guessed size
        if not self._ensure_sink(size):
            return
        if self._no_signal_cache is None or self._no_signal_cache[0] != size:
            picture: Any = no_signal_i420(*size) if self.fmt == "raw" else no_signal_jpeg(*size)
            if isinstance(picture, np.ndarray):
                picture = np.ascontiguousarray(picture)
            self._no_signal_cache = (size, picture)
        if self._write(self._no_signal_cache[1]):
            self.no_signal_shown += 1

    def _ensure_sink(self, size: tuple[int, int]) -> bool:
        """An open sink at ``size``; False (and retry later) when the camera cannot be opened."""
        if self._sink is not None and self._sink_size == size:
            return True
        if self._sink is not None:
            log.info("stream size changed to %dx%d: reopening the camera", *size)
            self._close_sink()
            self._next_open_at = 0.0
        now = time.monotonic()
        if now < self._next_open_at:
            return False
        try:
            path = self._finder(self.camera_spec)
            if path is None:
                return False
            self._sink = self._sink_factory(path, size[0], size[1], self.fmt, self.fps_hint)
        except CameraError as exc:
            self._next_open_at = now + self.retry_s
            if str(exc) != self.camera_error:
                log.warning(
                    "virtual camera unavailable (retrying every %.0f s): %s", self.retry_s, exc
                )
            self.camera_error = str(exc)
            return False
        self._sink_path = path
        self._sink_size = size
        if self.camera_error is not None:
            log.info("virtual camera %s is available again", path)
        self.camera_error = None
        return True

    def _write(self, picture: Any) -> bool:
        sink = self._sink
        if sink is None:
            return False
        try:
            sink.write(picture)
        except CameraError as exc:
            log.warning("virtual camera lost: %s", exc)
            self.camera_error = str(exc)
            self._close_sink()
            self._next_open_at = time.monotonic() + self.retry_s
            return False
        return True

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        self._sink_size = None
        if sink is not None:
            try:
                sink.close()
            except Exception:
                log.exception("closing the camera failed")
