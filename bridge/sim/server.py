# SPDX-License-Identifier: GPL-3.0-or-later
"""The fake borescope on real UDP: the sockets and the I/O thread around the device.

The behaviour lives in bridge.sim.device, the faults in bridge.sim.faults and the picture in
bridge.sim.scene; this module binds the device's two ports (and, to inject foreign packets,
a socket on another address: 127.0.0.2 when the simulator is on loopback, else another port of
the same address), paces the stream on a monotonic clock and sends what the device says.
The loop of frames is encoded once up front, so streaming costs no encoding.

``model`` picks a row of bridge.core.models: its address, ports, framing and button behaviour
become the defaults (an explicit bind address or port still wins, as tests need). A framing-C
model listens on TCP instead of the UDP stream port and streams to one connected client.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass

from bridge.core import models
from bridge.core.models import Framing, Model
from bridge.core.protocol import DEVICE_IP, FRAGMENT_HEADER_LEN
from bridge.errors import BridgeError
from bridge.sim.device import Device, Send, SimulatorStats, Via
from bridge.sim.faults import FAULT_NAMES, FaultRates
from bridge.sim.scene import make_loop

log = logging.getLogger(__name__)

__all__ = ["Simulator", "SimulatorConfig", "SimulatorStats"]

SEND_BUFFER_BYTES = 4 * 1024 * 1024  # a 1080p frame is ~180 datagrams sent in one burst
IDLE_POLL_S = 0.25  # how often the I/O loop wakes up when there is nothing to send


@dataclass
class SimulatorConfig:
    """Everything `borescope-bridge simulate` can be told; ports may be 0 (pick a free one).

    An empty ``bind``, a port of -1 and a ``fragment_size`` of 0 mean "the model's".
    """

    bind: str = ""
    stream_port: int = -1
    event_port: int = -1
    resolution: tuple[int, int] = (640, 480)
    fps: float = 30.0
    quality: int = 80
    fragment_size: int = 0
    heartbeat_timeout: float = 2.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    foreign: float = 0.0
    seed: int | None = None
    loop_frames: int = 60
    model: str = "j103"

    def __post_init__(self) -> None:
        row = models.find(self.model)
        if row is None:
            raise ValueError(
                f"unknown model {self.model!r}; known: {', '.join(models.NAMES)} "
                "(borescope-bridge models lists them)"
            )
        self.model = row.name
        if not self.bind:
            self.bind = row.address
        if self.stream_port == -1:
            self.stream_port = row.video_port
        if self.event_port == -1:
            self.event_port = row.event_port
        if self.fragment_size == 0:
            self.fragment_size = row.chunk_size or 1400
        self.faults()  # checks the rates
        if self.fps <= 0 or self.heartbeat_timeout <= 0:
            raise ValueError("fps and heartbeat_timeout must be positive")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, not {self.quality}")
        if not 1 <= self.fragment_size <= 65507 - FRAGMENT_HEADER_LEN:
            raise ValueError(f"fragment size must fit a UDP datagram, not {self.fragment_size}")
        if self.loop_frames < 1:
            raise ValueError("loop_frames must be at least 1")

    def faults(self) -> FaultRates:
        return FaultRates(**{name: getattr(self, name) for name in FAULT_NAMES})

    @property
    def row(self) -> Model:
        """The model table's row for ``model``."""
        row = models.find(self.model)
        assert row is not None  # checked in __post_init__
        return row


def _foreign_address(bind: str) -> str:
    """Where forged packets come from: another loopback address, else the same one."""
    if bind.startswith("127."):
        return "127.0.0.3" if bind == "127.0.0.2" else "127.0.0.2"
    return bind


def _listen_tcp(address: str, port: int) -> socket.socket:
    """Framing C's video port; the same advice as the UDP ports when it cannot be had."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise BridgeError(f"cannot listen on {address} TCP port {port} (video): {exc}") from exc
    sock.listen(1)
    return sock


def _bind_udp(address: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BridgeError(
                f"cannot listen on {address}: that address is not on this machine. The real "
                f"borescope owns it ({DEVICE_IP} for most models); to simulate one here use "
                "--bind 127.0.0.1 (as the demo does) and point the bridge at it with "
                "--device-ip 127.0.0.1"
            ) from exc
        if exc.errno == errno.EADDRINUSE:
            raise BridgeError(
                f"cannot listen on {address} UDP port {port} ({what}): the port is in use, "
                "probably by another simulator; stop it or choose another port"
            ) from exc
        raise BridgeError(f"cannot listen on {address} UDP port {port} ({what}): {exc}") from exc
    return sock


class Simulator:
    """The fake device on UDP; see bridge.sim.device. Thread-safe public methods."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stream_port = config.stream_port
        self.event_port = config.event_port
        self._lock = threading.Lock()  # the device is touched by the I/O thread and callers
        self._device = Device(
            fps=config.fps,
            heartbeat_timeout=config.heartbeat_timeout,
            fragment_size=config.fragment_size,
            faults=config.faults(),
            rng=random.Random(config.seed),
            resolution=config.resolution,
            model=config.row,
        )
        self.stats = self._device.stats
        self._stream: socket.socket | None = None
        self._event: socket.socket | None = None
        self._foreign: socket.socket | None = None
        self._conn: socket.socket | None = None  # framing C: the connected client
        self._sel: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ public

    @property
    def frames(self) -> list[bytes]:
        """The pre-encoded loop of JPEGs (encoded on first use)."""
        frames = self._device.frames
        if frames is None:
            width, height = self._device.resolution
            frames = make_loop(
                width, height, self.config.loop_frames, self.config.fps, self.config.quality
            )
            self._device.frames = frames
        return frames

    @property
    def resolution(self) -> tuple[int, int]:
        return self._device.resolution

    @property
    def client(self) -> tuple[str, int] | None:
        """The address being streamed to, if any."""
        return self._device.client

    def start(self) -> None:
        """Bind both ports, encode the loop and start the I/O thread."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        cfg = self.config
        if cfg.row.framing == Framing.C:
            self._stream = _listen_tcp(cfg.bind, cfg.stream_port)
        else:
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
        width, height = self.resolution
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
            "simulated borescope (model %s, framing %s) listening on %s: video %s %d, "
            "button events UDP %d (%.0f fps, %d-byte fragments, heartbeat timeout %.1f s)",
            cfg.model,
            cfg.row.framing,
            cfg.bind,
            "TCP" if cfg.row.framing == Framing.C else "UDP",
            self.stream_port,
            self.event_port,
            cfg.fps,
            cfg.fragment_size,
            cfg.heartbeat_timeout,
        )
        faults = {k: getattr(cfg, k) for k in FAULT_NAMES}
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

    def press_key(self, code: int) -> None:
        """Press a key of an SDK 2.x model: 1 photo, 2 video, 3 zoom in, 4 zoom out."""
        with self._lock:
            self._device.press_key(code)
        log.info("key %d pressed", code)

    def press_button(self, n: int = 1) -> None:
        """Press the snapshot button ``n`` times (the 16-bit counter wraps like the device's)."""
        with self._lock:
            value = self._device.press(n)
        log.info("snapshot button pressed %d time(s): counter now %d", n, value)

    @property
    def button_counter(self) -> int:
        return self._device.buttons

    def reboot(self, downtime_s: float = 1.0) -> None:
        """Simulate a power cycle: silent for ``downtime_s``, then counters and ids from 0."""
        with self._lock:
            self._device.reboot(time.monotonic(), downtime_s)
        self._wake()

    def set_resolution(self, width: int, height: int) -> None:
        """Re-encode the loop at a new size; the stream switches at the next frame."""
        frames = make_loop(
            width, height, self.config.loop_frames, self.config.fps, self.config.quality
        )
        with self._lock:
            self._device.resolution = (width, height)
            self._device.frames = frames
        log.info("resolution changed to %dx%d", width, height)

    def sent_frame(self, frame_id: int) -> bytes | None:
        """The JPEG most recently sent with this 8-bit id (before any injected corruption)."""
        return self._device.sent_frame(frame_id)

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
        for name in ("_conn", "_stream", "_event", "_foreign", "_wake_r", "_wake_w"):
            sock = getattr(self, name)
            if sock is not None:
                sock.close()
                setattr(self, name, None)

    def _run(self) -> None:
        assert self._stream is not None and self._event is not None and self._wake_r is not None
        sel = selectors.DefaultSelector()
        on_stream = self._on_accept if self.config.row.framing == Framing.C else self._on_stream
        sel.register(self._stream, selectors.EVENT_READ, on_stream)
        self._sel = sel
        sel.register(self._event, selectors.EVENT_READ, self._on_event)
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        try:
            while not self._stopping:
                with self._lock:
                    sends = self._device.tick(time.monotonic())
                self._transmit(sends)
                with self._lock:
                    timeout = self._device.timeout(time.monotonic())
                for key, _ in sel.select(IDLE_POLL_S if timeout is None else timeout):
                    key.data(key.fileobj)
        except Exception:
            log.exception("simulator I/O loop failed")
            raise
        finally:
            with self._lock:
                sends = self._device.end_stream()
            self._transmit(sends)
            sel.close()
            self._sel = None

    def _on_wake(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.recv(4096)

    def _on_accept(self, sock: socket.socket) -> None:
        """Framing C: a new client replaces the old one, as a single-client scope would."""
        try:
            conn, addr = sock.accept()
        except OSError:
            return
        self._drop_conn()
        conn.settimeout(2.0)
        self._conn = conn
        assert self._sel is not None
        self._sel.register(conn, selectors.EVENT_READ, self._on_conn)
        with self._lock:
            self._device.on_connect(addr, time.monotonic())

    def _on_conn(self, sock: socket.socket) -> None:
        """The client sent something or closed; a scope of framing C ignores what it sends."""
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop_conn()

    def _drop_conn(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn)
        conn.close()
        with self._lock:
            self._device.on_disconnect()

    def _on_stream(self, sock: socket.socket) -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        with self._lock:
            sends = self._device.on_stream(data, addr, time.monotonic())
        self._transmit(sends)

    def _on_event(self, sock: socket.socket) -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        with self._lock:
            sends = self._device.on_event(data, addr)
        self._transmit(sends)

    def _transmit(self, sends: list[Send]) -> None:
        """Send what the device said, counting the stream datagrams that left."""
        stats = self.stats
        sockets = {
            Via.STREAM: self._stream,
            Via.EVENT: self._event,
            Via.FOREIGN: self._foreign,
            Via.TCP: self._conn,
        }
        for send in sends:
            sock = sockets[send.via]
            if send.via is Via.TCP and sock is not None:
                try:
                    sock.sendall(send.data)
                except OSError as exc:
                    log.debug("TCP send failed: %s", exc)
                    stats.send_errors += 1
                    self._drop_conn()
                    continue
                stats.datagrams += 1
                stats.bytes_sent += len(send.data)
                continue
            if sock is None:
                stats.send_errors += 1
                continue
            try:
                sock.sendto(send.data, send.addr)
            except OSError as exc:
                stats.send_errors += 1
                log.debug("send to %s:%d failed: %s", send.addr[0], send.addr[1], exc)
                continue
            if send.via is Via.STREAM:
                stats.datagrams += 1
                stats.bytes_sent += len(send.data)


if __name__ == "__main__":
    import sys

    from bridge.sim.cli import run_script

    sys.exit(run_script("python -m bridge.sim.server"))
