# SPDX-License-Identifier: GPL-3.0-or-later
"""A faithful fake borescope on real UDP, for tests, the demo and benchmarks.

It behaves like the J10x-OTG device as far as the bridge can tell:

* The stream port waits for a heartbeat, then streams JPEG frames (fragmented exactly like the
  device, 8-bit wrapping frame ids) from that port to the source address of the latest
  heartbeat, paced at ``fps`` on a monotonic clock. It stops on the STOP packet and by itself
  when heartbeats cease for ``heartbeat_timeout`` seconds.
* The event port answers every ``SETCMD`` with a ``RETCMD`` echoing its counter and carrying the
  button counter, which :meth:`Simulator.press_button` (or SIGUSR1 in the CLI) increments.
* The picture is generated with numpy (no OpenCV, so the Debian package's demo works): a
  textured, moving, photo-like scene with a visible frame counter and timestamp, encoded with
  4:2:2 chroma like real webcams (libturbojpeg, bridge.pixels.encode). A loop of ``loop_frames``
  frames
  is encoded once up front, so streaming costs no encoding. The loop is deterministic, so a test
  in another process can regenerate it and compare bytes. The counter and timestamp show
  the position in the loop (frame k of n, t = k / fps).

Fault injection, every injected fault counted in :attr:`Simulator.stats`:

* ``loss``: a datagram is not sent. ``duplicate``: it is sent twice, back to back.
  ``reorder``: it is held back and sent after 1-3 later datagrams (possibly of the next frame).
* ``corrupt``: per *frame*, not per datagram. A flipped bit inside the entropy-coded data cannot
  be detected without decoding, so the corruption is one the wire checks must catch: the SOI or
  the EOI marker is damaged (one each at random). Each corrupted frame therefore ends up counted
  as corrupt by the reassembler, or as incomplete if it also lost a fragment; never shown.
* ``foreign``: per datagram, a forged copy (same header, garbage payload) is sent first from
  another socket: 127.0.0.2 when the simulator is on loopback, else another port of the same
  address. Per poll reply the same rate sends a forged RETCMD with a jump in the button counter.
  A bridge that does not filter by source address shows garbage or takes phantom snapshots.
* :meth:`Simulator.reboot`: the device goes quiet for a while, forgets its client, restarts
  its frame ids at 0 and its button counter at 0.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import random
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from bridge.core.protocol import (
    DEVICE_IP,
    EVENT_PORT,
    FRAGMENT_HEADER_LEN,
    STREAM_PORT,
    Reject,
    decode_control,
    decode_setcmd,
    encode_retcmd,
    fragment_jpeg,
)
from bridge.errors import BridgeError
from bridge.pixels.encode import encode_jpeg
from bridge.pixels.font import draw_text

log = logging.getLogger(__name__)

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
SEND_BUFFER_BYTES = 4 * 1024 * 1024  # a 1080p frame is ~180 datagrams sent in one burst
IDLE_POLL_S = 0.25  # how often the I/O loop wakes up when there is nothing to send
REORDER_MAX_DELAY = 3  # a reordered datagram goes out after 1..3 later ones
TEXTURE_SEED = 20261124  # the picture is the same on every run and in every process


@dataclass
class SimulatorConfig:
    """Everything `borescope-bridge simulate` can be told; ports may be 0 (pick a free one)."""

    bind: str = DEVICE_IP
    stream_port: int = STREAM_PORT
    event_port: int = EVENT_PORT
    resolution: tuple[int, int] = (640, 480)
    fps: float = 30.0
    quality: int = 80
    fragment_size: int = 1400
    heartbeat_timeout: float = 2.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    foreign: float = 0.0
    seed: int | None = None
    loop_frames: int = 60

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt", "foreign"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} rate must be between 0 and 1, not {rate}")
        if self.fps <= 0 or self.heartbeat_timeout <= 0:
            raise ValueError("fps and heartbeat_timeout must be positive")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, not {self.quality}")
        if not 1 <= self.fragment_size <= 65507 - FRAGMENT_HEADER_LEN:
            raise ValueError(f"fragment size must fit a UDP datagram, not {self.fragment_size}")
        if self.loop_frames < 1:
            raise ValueError("loop_frames must be at least 1")


@dataclass
class SimulatorStats:
    """What the simulator did, including every fault it injected."""

    frames_sent: int = 0
    datagrams: int = 0
    bytes_sent: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    foreign: int = 0
    foreign_events: int = 0
    heartbeats: int = 0
    stops: int = 0
    timeouts: int = 0
    clients: int = 0
    polls: int = 0
    rejected: int = 0
    presses: int = 0
    reboots: int = 0
    send_errors: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- the picture


def _upsample(small: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2-D float array to (height, width)."""
    sh, sw = small.shape
    ys = np.linspace(0, sh - 1, height, dtype=np.float32)
    xs = np.linspace(0, sw - 1, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), sh - 2)
    x0 = np.minimum(xs.astype(int), sw - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = small[y0][:, x0] * (1 - fx) + small[y0][:, x0 + 1] * fx
    bottom = small[y0 + 1][:, x0] * (1 - fx) + small[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (edges repeated)."""
    r = max(int(3 * sigma), 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    padded = np.pad(img, r, mode="edge")
    rows = sum(k[i] * padded[:, i : i + img.shape[1]] for i in range(2 * r + 1))
    return sum(k[i] * rows[i : i + img.shape[0]] for i in range(2 * r + 1)).astype(np.float32)


def _paint(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    coverage: Callable[[np.ndarray, np.ndarray], np.ndarray],
    color: tuple[int, int, int],
    alpha: float,
) -> None:
    """Blend ``color`` into ``img`` inside ``box`` (x0, y0, x1, y1), weighted by alpha times
    ``coverage(xs, ys)`` (0..1, from pixel-centre coordinates)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = (coverage(xs, ys) * alpha)[..., None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.rint(region + (np.asarray(color, np.float32) - region) * a)


def _scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured background (twice as wide, to scroll) and a borescope-like vignette."""
    rng = np.random.default_rng(TEXTURE_SEED)
    w2 = width * 2
    ys, xs = np.mgrid[0:height, 0:w2].astype(np.float32)
    u, v = xs / width, ys / height
    # Warm metal: smooth colour gradients plus periodic ridges, like the inside of a pipe.
    ridges = 0.5 + 0.5 * np.sin(2 * math.pi * (u * 6 + 0.3 * np.sin(2 * math.pi * v * 2)))
    coarse = rng.normal(0.0, 1.0, (max(height // 24, 2), max(w2 // 24, 2))).astype(np.float32)
    blotches = _upsample(coarse, w2, height)
    grain = _blur(rng.normal(0.0, 1.0, (height, w2)).astype(np.float32), 1.2)
    base = 0.55 + 0.18 * ridges + 0.10 * blotches + 0.06 * grain
    b = np.clip(255 * (base * (0.55 + 0.25 * v)), 0, 255)
    g = np.clip(255 * (base * (0.75 + 0.10 * np.cos(2 * math.pi * u))), 0, 255)
    r = np.clip(255 * (base * (0.95 - 0.20 * v)), 0, 255)
    background = np.dstack([b, g, r]).astype(np.uint8)
    ys1, xs1 = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((xs1 - width / 2) / (width / 2), (ys1 - height / 2) / (height / 2))
    vignette = np.clip(1.15 - 0.55 * radius**2, 0.15, 1.0)
    return background, np.dstack([vignette, vignette, vignette])


def render_frame(
    index: int, count: int, width: int, height: int, fps: float, scene=None
) -> np.ndarray:
    """Frame ``index`` of a seamless loop of ``count``: a BGR image."""
    background, vignette = scene if scene is not None else _scene(width, height)
    phase = index / count
    offset = round(phase * width) % width
    img = np.ascontiguousarray(background[:, offset : offset + width])
    img = (img.astype(np.float32) * vignette).astype(np.uint8)
    # A moving light spot and a turning bar: motion a viewer notices and an encoder must code.
    angle = 2 * math.pi * phase
    cx = int(width / 2 + width * 0.28 * math.cos(angle))
    cy = int(height / 2 + height * 0.25 * math.sin(2 * angle))
    radius = max(height // 10, 4)
    _paint(
        img,
        (cx - radius - 1, cy - radius - 1, cx + radius + 2, cy + radius + 2),
        lambda xs, ys: np.clip(radius + 0.5 - np.hypot(xs - cx, ys - cy), 0.0, 1.0),
        (200, 235, 255),
        0.55,
    )
    length = height * 0.3
    x0, y0 = width * 0.5, height * 0.55
    x1, y1 = x0 + length * math.cos(-angle), y0 + length * math.sin(-angle)
    half = max(height // 80, 2) / 2

    def bar(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return np.clip(half + 0.5 - np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)), 0.0, 1.0)

    pad = int(half) + 2
    box = (
        int(min(x0, x1)) - pad,
        int(min(y0, y1)) - pad,
        int(max(x0, x1)) + pad,
        int(max(y0, y1)) + pad,
    )
    _paint(img, box, bar, (40, 70, 160), 1.0)
    seconds = index / fps
    lines = (
        f"frame {index + 1:04d}/{count:04d}",
        f"t={int(seconds // 60):02d}:{seconds % 60:06.3f}  {width}x{height}",
    )
    text_h = max(round(height / 480 * 16), 7)
    for n, text in enumerate(lines):
        x, y = int(width * 0.03), int(height * (0.04 + 0.07 * n))
        draw_text(img, text, x, y, text_h, (255, 255, 255), (0, 0, 0), max(text_h // 8, 1))
    return img


def make_loop(
    width: int, height: int, count: int = 60, fps: float = 30.0, quality: int = 80
) -> list[bytes]:
    """The simulator's pre-encoded loop; deterministic for given arguments."""
    scene = _scene(width, height)
    return [
        encode_jpeg(render_frame(i, count, width, height, fps, scene), quality)
        for i in range(count)
    ]


# --------------------------------------------------------------------------- the device


def _foreign_address(bind: str) -> str:
    """Where forged packets come from: another loopback address, else the same one."""
    if bind.startswith("127."):
        return "127.0.0.3" if bind == "127.0.0.2" else "127.0.0.2"
    return bind


def _bind_udp(address: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BridgeError(
                f"cannot listen on {address}: that address is not on this machine. The real "
                f"borescope owns {DEVICE_IP}; to simulate one here use --bind 127.0.0.1 "
                f"(as the demo does) and point the bridge at it with --device-ip 127.0.0.1"
            ) from exc
        if exc.errno == errno.EADDRINUSE:
            raise BridgeError(
                f"cannot listen on {address} UDP port {port} ({what}): the port is in use, "
                "probably by another simulator; stop it or choose another port"
            ) from exc
        raise BridgeError(f"cannot listen on {address} UDP port {port} ({what}): {exc}") from exc
    return sock


class Simulator:
    """The fake device; see the module docstring. Thread-safe public methods."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.stream_port = config.stream_port
        self.event_port = config.event_port
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._frames: list[bytes] | None = None
        self._resolution = config.resolution
        self._sent: list[bytes | None] = [None] * 256
        self._buttons = 0
        self._reboot_request: float | None = None
        self._stream: socket.socket | None = None
        self._event: socket.socket | None = None
        self._foreign: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        # State of the I/O thread only.
        self._client: tuple[str, int] | None = None
        self._last_heartbeat = 0.0
        self._next_frame = 0.0
        self._frame_seq = 0
        self._loop_index = 0
        self._delayed: list[list] = []  # [datagram, datagrams still to go before it]
        self._down_until = 0.0

    # ------------------------------------------------------------------ public

    @property
    def frames(self) -> list[bytes]:
        """The pre-encoded loop of JPEGs (encoded on first use)."""
        frames = self._frames
        if frames is None:
            width, height = self._resolution
            frames = make_loop(
                width, height, self.config.loop_frames, self.config.fps, self.config.quality
            )
            self._frames = frames
        return frames

    @property
    def resolution(self) -> tuple[int, int]:
        return self._resolution

    @property
    def client(self) -> tuple[str, int] | None:
        """The address being streamed to, if any."""
        return self._client

    def start(self) -> None:
        """Bind both ports, encode the loop and start the I/O thread."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        cfg = self.config
        self._stream = _bind_udp(cfg.bind, cfg.stream_port, "stream")
        try:
            self._event = _bind_udp(cfg.bind, cfg.event_port, "events")
            self._stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            if cfg.foreign > 0:
                self._foreign = self._bind_foreign(cfg.bind)
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._close_sockets()
            raise
        self.stream_port = self._stream.getsockname()[1]
        self.event_port = self._event.getsockname()[1]
        width, height = self._resolution
        t0 = time.monotonic()
        frames = self.frames
        log.info(
            "encoded %d frames of %dx%d at quality %d (%.0f KB average) in %.1f s",
            len(frames),
            width,
            height,
            cfg.quality,
            sum(map(len, frames)) / len(frames) / 1024,
            time.monotonic() - t0,
        )
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        log.info(
            "simulated borescope listening on %s: video UDP %d, button events UDP %d "
            "(%.0f fps, %d-byte fragments, heartbeat timeout %.1f s)",
            cfg.bind,
            self.stream_port,
            self.event_port,
            cfg.fps,
            cfg.fragment_size,
            cfg.heartbeat_timeout,
        )
        faults = {
            k: getattr(cfg, k) for k in ("loss", "duplicate", "reorder", "corrupt", "foreign")
        }
        if any(faults.values()):
            log.info(
                "injecting faults: %s (seed %s)",
                ", ".join(f"{k} {v:.1%}" for k, v in faults.items() if v),
                cfg.seed,
            )

    def stop(self) -> None:
        """Stop streaming, join the thread and close the sockets. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(timeout=5.0)
        self._thread = None
        self._close_sockets()
        log.info("simulator stopped")

    def press_button(self, n: int = 1) -> None:
        """Press the snapshot button ``n`` times (the 16-bit counter wraps like the device's)."""
        with self._lock:
            self._buttons = (self._buttons + n) & 0xFFFF
            self.stats.presses += n
            value = self._buttons
        log.info("snapshot button pressed %d time(s): counter now %d", n, value)

    @property
    def button_counter(self) -> int:
        return self._buttons

    def reboot(self, downtime_s: float = 1.0) -> None:
        """Simulate a power cycle: silent for ``downtime_s``, then counters and ids from 0."""
        with self._lock:
            self._reboot_request = downtime_s
        self._wake()

    def set_resolution(self, width: int, height: int) -> None:
        """Re-encode the loop at a new size; the stream switches at the next frame."""
        frames = make_loop(
            width, height, self.config.loop_frames, self.config.fps, self.config.quality
        )
        with self._lock:
            self._resolution = (width, height)
            self._frames = frames
        log.info("resolution changed to %dx%d", width, height)

    def sent_frame(self, frame_id: int) -> bytes | None:
        """The JPEG most recently sent with this 8-bit id (before any injected corruption)."""
        return self._sent[frame_id & 0xFF]

    # ----------------------------------------------------------------- private

    def _bind_foreign(self, bind: str) -> socket.socket:
        address = _foreign_address(bind)
        try:
            return _bind_udp(address, 0, "foreign packets")
        except BridgeError:
            log.warning(
                "cannot bind %s for foreign packets; using another port of %s", address, bind
            )
            return _bind_udp(bind, 0, "foreign packets")

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"\0")

    def _close_sockets(self) -> None:
        for name in ("_stream", "_event", "_foreign", "_wake_r", "_wake_w"):
            sock = getattr(self, name)
            if sock is not None:
                sock.close()
                setattr(self, name, None)

    def _reject(self, reason: Reject) -> None:
        self.stats.rejected += 1
        by_reason = self.stats.rejected_by_reason
        by_reason[reason.value] = by_reason.get(reason.value, 0) + 1

    def _run(self) -> None:
        assert self._stream is not None and self._event is not None and self._wake_r is not None
        sel = selectors.DefaultSelector()
        sel.register(self._stream, selectors.EVENT_READ, self._on_stream)
        sel.register(self._event, selectors.EVENT_READ, self._on_event)
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        period = 1.0 / self.config.fps
        try:
            while not self._stopping:
                now = time.monotonic()
                self._check_reboot(now)
                if self._client is not None:
                    if now - self._last_heartbeat > self.config.heartbeat_timeout:
                        log.info(
                            "client %s:%d gone: no heartbeat for %.1f s; streaming stopped",
                            *self._client,
                            self.config.heartbeat_timeout,
                        )
                        self.stats.timeouts += 1
                        self._end_stream()
                    elif now >= self._next_frame:
                        self._send_frame()
                        self._next_frame += period
                        if now - self._next_frame > period:
                            self._next_frame = now + period  # fell behind: no catch-up burst
                if self._client is not None:
                    timeout = max(self._next_frame - time.monotonic(), 0.0)
                elif self._down_until:
                    timeout = max(self._down_until - now, 0.0)
                else:
                    timeout = IDLE_POLL_S
                for key, _ in sel.select(timeout):
                    key.data(key.fileobj)
        except Exception:
            log.exception("simulator I/O loop failed")
            raise
        finally:
            self._end_stream()
            sel.close()

    def _on_wake(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.recv(4096)

    def _check_reboot(self, now: float) -> None:
        with self._lock:
            downtime = self._reboot_request
            self._reboot_request = None
        if downtime is not None:
            if self._client is not None:
                self.stats.lost += len(self._delayed)
                self._delayed.clear()
                self._client = None
            with self._lock:
                self._buttons = 0
            self._frame_seq = 0
            self._loop_index = 0
            self._down_until = now + downtime
            self.stats.reboots += 1
            log.info(
                "rebooting: silent for %.1f s, then button counter and frame ids at 0", downtime
            )
        elif self._down_until and now >= self._down_until:
            self._down_until = 0.0
            log.info("back up after reboot, waiting for a heartbeat")

    def _on_stream(self, sock: socket.socket) -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        if self._down_until:
            return  # powered off: the packet is lost
        kind = decode_control(data)
        if isinstance(kind, Reject):
            self._reject(kind)
            log.debug("ignored %d-byte packet from %s:%d on the stream port", len(data), *addr)
            return
        now = time.monotonic()
        if kind == "heartbeat":
            self.stats.heartbeats += 1
            self._last_heartbeat = now
            if self._client != addr:
                if self._client is not None:
                    log.info("heartbeat from %s:%d: now streaming there instead", *addr)
                    self._flush_delayed()
                self._client = addr
                self._next_frame = now
                self.stats.clients += 1
                width, height = self._resolution
                log.info(
                    "client %s:%d connected: streaming %dx%d at %.0f fps",
                    *addr,
                    width,
                    height,
                    self.config.fps,
                )
        else:
            self.stats.stops += 1
            if addr == self._client:
                log.info("client %s:%d sent stop: streaming stopped", *addr)
                self._end_stream()
            else:
                log.debug("stop from %s:%d, which is not the client: ignored", *addr)

    def _on_event(self, sock: socket.socket) -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        if self._down_until:
            return
        counter = decode_setcmd(data)
        if isinstance(counter, Reject):
            self._reject(counter)
            return
        self.stats.polls += 1
        buttons = self._buttons
        if self._foreign is not None and self._rng.random() < self.config.foreign:
            self._send(self._foreign, encode_retcmd(counter, buttons + 5), addr)
            self.stats.foreign_events += 1
        self._send(sock, encode_retcmd(counter, buttons), addr)

    def _end_stream(self) -> None:
        self._flush_delayed()
        self._client = None

    def _send(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> bool:
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self.stats.send_errors += 1
            log.debug("send to %s:%d failed: %s", addr[0], addr[1], exc)
            return False
        return True

    def _flush_delayed(self) -> None:
        """Send what reordering held back, so every datagram is sent or counted as lost."""
        client = self._client
        delayed, self._delayed = self._delayed, []
        if client is None or self._stream is None:
            self.stats.lost += len(delayed)
            return
        for item in delayed:
            self._put(item[0], client)

    def _put(self, datagram: bytes, client: tuple[str, int]) -> None:
        assert self._stream is not None
        if self._send(self._stream, datagram, client):
            self.stats.datagrams += 1
            self.stats.bytes_sent += len(datagram)

    def _send_frame(self) -> None:
        client = self._client
        assert client is not None and self._stream is not None
        cfg = self.config
        rng = self._rng
        stats = self.stats
        frames = self.frames
        jpeg = frames[self._loop_index % len(frames)]
        self._loop_index = (self._loop_index + 1) % len(frames)
        frame_id = self._frame_seq & 0xFF
        self._frame_seq += 1
        self._sent[frame_id] = jpeg
        wire = jpeg
        if cfg.corrupt and rng.random() < cfg.corrupt:
            damaged = bytearray(jpeg)
            if rng.random() < 0.5:
                damaged[1] ^= 0xFF  # SOI FF D8 -> FF 27
            else:
                damaged[-1] ^= 0xFF  # EOI FF D9 -> FF 26
            wire = bytes(damaged)
            stats.corrupted += 1
        stats.frames_sent += 1
        for datagram in fragment_jpeg(frame_id, wire, cfg.fragment_size):
            if self._foreign is not None and rng.random() < cfg.foreign:
                forged = datagram[:FRAGMENT_HEADER_LEN] + rng.randbytes(
                    len(datagram) - FRAGMENT_HEADER_LEN
                )
                self._send(self._foreign, forged, client)
                stats.foreign += 1
            if cfg.loss and rng.random() < cfg.loss:
                stats.lost += 1
            elif cfg.reorder and rng.random() < cfg.reorder:
                self._delayed.append([datagram, rng.randint(1, REORDER_MAX_DELAY)])
                stats.reordered += 1
                continue  # a held-back datagram does not count as a later one's predecessor
            else:
                self._put(datagram, client)
                if cfg.duplicate and rng.random() < cfg.duplicate:
                    self._put(datagram, client)
                    stats.duplicated += 1
            self._release_delayed(client)

    def _release_delayed(self, client: tuple[str, int]) -> None:
        if not self._delayed:
            return
        keep = []
        for item in self._delayed:
            item[1] -= 1
            if item[1] <= 0:
                self._put(item[0], client)
            else:
                keep.append(item)
        self._delayed = keep


# --------------------------------------------------------------------------- CLI


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1 (e.g. 0.01 = 1%)")
    return value


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be positive")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0..65535, 0 = any)")
    return value


def _quality(text: str) -> int:
    value = _positive(int)(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"quality {text} is above 100")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `borescope-bridge simulate` (and `python -m bridge.sim.server`)."""
    d = SimulatorConfig()
    parser.add_argument("--bind", default=d.bind, help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--stream-port",
        type=_port,
        default=d.stream_port,
        help="UDP port for heartbeats and video (default %(default)s)",
    )
    parser.add_argument(
        "--event-port",
        type=_port,
        default=d.event_port,
        help="UDP port for SETCMD/RETCMD button polls (default %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=_positive(float),
        default=d.heartbeat_timeout,
        help="stop streaming after this many seconds without a heartbeat (default %(default)s)",
    )
    parser.add_argument(
        "--resolution",
        choices=sorted(RESOLUTIONS, key=lambda k: RESOLUTIONS[k]),
        default="640x480",
        help="picture size (default %(default)s)",
    )
    parser.add_argument(
        "--fps",
        type=_positive(float),
        default=d.fps,
        help="frames per second (default %(default)s)",
    )
    parser.add_argument(
        "--quality",
        type=_quality,
        default=d.quality,
        help="JPEG quality 1-100 (default %(default)s)",
    )
    parser.add_argument(
        "--fragment-size",
        type=_positive(int),
        default=d.fragment_size,
        help="JPEG bytes per datagram (default %(default)s)",
    )
    for name, what in (
        ("loss", "datagrams dropped"),
        ("duplicate", "datagrams sent twice"),
        ("reorder", "datagrams delayed behind 1-3 later ones"),
        ("corrupt", "frames sent with a damaged SOI/EOI marker"),
        ("foreign", "datagrams preceded by a forged copy from another address"),
    ):
        parser.add_argument(
            f"--{name}",
            type=_rate,
            default=0.0,
            metavar="RATE",
            help=f"fraction of {what} (0..1, default 0)",
        )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for the fault injection (default: random)",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        bind=args.bind,
        stream_port=args.stream_port,
        event_port=args.event_port,
        resolution=RESOLUTIONS[args.resolution],
        fps=args.fps,
        quality=args.quality,
        fragment_size=args.fragment_size,
        heartbeat_timeout=args.heartbeat_timeout,
        loss=args.loss,
        duplicate=args.duplicate,
        reorder=args.reorder,
        corrupt=args.corrupt,
        foreign=args.foreign,
        seed=args.seed,
    )


def main(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT or SIGTERM; SIGUSR1 presses the snapshot button."""
    try:
        sim = Simulator(config_from_args(args))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    done = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, shutting down", signal.Signals(signum).name)
        done.set()

    def on_press(_signum: int, _frame: FrameType | None) -> None:
        sim.press_button()

    # Handlers first: SIGUSR1's default action would kill the process.
    previous: dict[int, Any] = {}
    try:
        for signum, handler in (
            (signal.SIGINT, on_stop),
            (signal.SIGTERM, on_stop),
            (signal.SIGUSR1, on_press),
        ):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:
        log.debug("not the main thread: signals are not handled")
    try:
        try:
            sim.start()
        except BridgeError as exc:
            log.error("%s", exc)
            return 1
        log.info("press the snapshot button with: kill -USR1 %d; stop with Ctrl-C", os.getpid())
        while not done.wait(1.0):
            pass
        sim.stop()
        log.info("statistics: %s", sim.stats.as_dict())
        return 0
    finally:
        sim.stop()
        for number, old in previous.items():
            signal.signal(number, old)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    _parser = argparse.ArgumentParser(prog="python -m bridge.sim.server", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
