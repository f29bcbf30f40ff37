# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator over real loopback UDP, against a small client built from the pure modules."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.paths import REPO

from bridge.core.buttons import ButtonTracker
from bridge.core.protocol import DEVICE_IP, HEARTBEAT, STOP, decode_retcmd
from bridge.core.reassembly import Frame, Reassembler
from bridge.pixels.encode import encode_jpeg
from bridge.sim import cli as sim_cli
from bridge.sim.scene import make_loop, render_frame
from bridge.sim.server import Simulator, SimulatorConfig

SO_RCVBUFFORCE = 33  # Linux; not exported by Python's socket module


def sof_info(jpeg: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(width, height, [(component id, sampling byte)]) from the first SOF0/SOF2 marker."""
    i = 2
    while i < len(jpeg):
        assert jpeg[i] == 0xFF
        marker = jpeg[i + 1]
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(jpeg[i + 5 : i + 7], "big")
            width = int.from_bytes(jpeg[i + 7 : i + 9], "big")
            n = jpeg[i + 9]
            comps = [(jpeg[i + 10 + 3 * k], jpeg[i + 11 + 3 * k]) for k in range(n)]
            return width, height, comps
        i += 2 + length
    raise AssertionError("no SOF marker")


def kernel_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped for this socket (full receive buffer), from /proc/net/udp."""
    port = f"{sock.getsockname()[1]:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":" + port):
            return int(fields[-1])
    return 0


class Client:
    """What the daemon's session does, minimally: heartbeat, source filter, reassembly."""

    def __init__(self, sim: Simulator, filter_source: bool = True) -> None:
        self.sim = sim
        self.device = ("127.0.0.1", sim.stream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 * 1024 * 1024)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.filter_source = filter_source
        self.reassembler = Reassembler()
        self.frames: list[Frame] = []
        self.mismatched = 0
        self.foreign: list[tuple[str, int]] = []
        self.datagrams = 0
        self._buf = bytearray(65536)
        self._last_heartbeat = 0.0

    def close(self) -> None:
        self.sock.close()

    def _deliver(self, frames) -> None:
        for frame in frames:
            if frame.data != self.sim.sent_frame(frame.frame_id):
                self.mismatched += 1
            self.frames.append(frame)

    def _recv_once(self) -> bool:
        try:
            n, addr = self.sock.recvfrom_into(self._buf)
        except TimeoutError:
            return False
        if self.filter_source and addr != self.device:
            self.foreign.append(addr)
            return True
        self.datagrams += 1
        self._deliver(self.reassembler.feed(self._buf, time.monotonic(), n))
        return True

    def run(self, until: Callable[[], bool], timeout: float = 15.0, heartbeat: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            now = time.monotonic()
            assert now < deadline, f"gave up waiting; got {len(self.frames)} frames"
            if heartbeat and now - self._last_heartbeat > 0.2:
                self.sock.sendto(HEARTBEAT, self.device)
                self._last_heartbeat = now
            self._recv_once()
            self._deliver(self.reassembler.expire(time.monotonic()))

    def stop_and_drain(self, quiet_s: float = 0.3) -> None:
        """Send STOP, then read until the line has been quiet for `quiet_s`."""
        self.sock.sendto(STOP, self.device)
        self.drain(quiet_s)

    def drain(self, quiet_s: float = 0.3) -> None:
        """Read, without heartbeats, until the line has been quiet for `quiet_s`."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            if self._recv_once():
                last = time.monotonic()
        self._deliver(self.reassembler.expire(time.monotonic() + 3600))


@pytest.fixture
def client_for() -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(sim: Simulator, **kwargs) -> Client:
        c = Client(sim, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# ------------------------------------------------------------------------ the picture


def decode_bgr(jpeg: bytes) -> np.ndarray:
    """OpenCV's own decode, independent of ours; it returns None for data it cannot read."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, f"OpenCV cannot decode this {len(jpeg)}-byte JPEG"
    return img


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080)])
def test_frames_are_photo_like_422_jpegs(size: tuple[int, int]) -> None:
    width, height = size
    frames = make_loop(width, height, count=3, fps=30, quality=80)
    for jpeg in frames:
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        w, h, comps = sof_info(jpeg)
        assert (w, h) == size
        # 4:2:2: luma sampled 2x1 against chroma 1x1.
        assert [s for _, s in comps] == [0x21, 0x11, 0x11]
    images = [decode_bgr(j) for j in frames]
    assert images[0].shape == (height, width, 3)
    assert float(images[0].std()) > 20  # not a flat colour
    # Texture: neighbouring pixels differ, as in a photo.
    assert float(np.abs(np.diff(images[0].astype(np.int16), axis=1)).mean()) > 1.0
    # Moving: consecutive frames differ substantially.
    assert float(np.abs(images[0].astype(np.int16) - images[1]).mean()) > 5


@pytest.mark.parametrize("encoder", ["turbojpeg", "opencv", "simplejpeg"])
def test_every_encoder_makes_422(monkeypatch: pytest.MonkeyPatch, encoder: str) -> None:
    """libturbojpeg first (the Debian package has nothing else); OpenCV, simplejpeg without it."""
    import bridge.pixels.encode

    if encoder == "turbojpeg" and bridge.pixels.encode.load_turbojpeg() is None:
        pytest.skip("libturbojpeg0 is not installed")
    if encoder != "turbojpeg":
        monkeypatch.setattr(bridge.pixels.encode, "load_turbojpeg", lambda: None)
    if encoder == "simplejpeg":
        monkeypatch.setattr(bridge.pixels.encode, "cv2", None)
    if getattr(bridge.pixels.encode, "cv2" if encoder == "opencv" else encoder, True) is None:
        pytest.skip(f"{encoder} is not importable here")
    image = render_frame(0, 2, 320, 240, 30.0)
    jpeg = encode_jpeg(image, 80)
    assert sof_info(jpeg) == (320, 240, [(1, 0x21), (2, 0x11), (3, 0x11)])
    back = decode_bgr(jpeg)
    assert float(np.abs(back.astype(np.int16) - image).mean()) < 4


def test_loop_is_deterministic() -> None:
    assert make_loop(320, 240, count=2) == make_loop(320, 240, count=2)


# ------------------------------------------------------------------------ streaming


def test_streams_byte_exact_frames(simulator: Simulator, client_for) -> None:
    client = client_for(simulator)
    client.run(lambda: len(client.frames) >= 20)
    client.stop_and_drain()
    assert client.mismatched == 0
    ids = [f.frame_id for f in client.frames]
    assert ids == [(ids[0] + k) & 0xFF for k in range(len(ids))]
    s = client.reassembler.stats
    assert (s.incomplete, s.corrupt, s.duplicates, s.rejected) == (0, 0, 0, {})
    assert s.frames == simulator.stats.frames_sent
    assert client.datagrams == simulator.stats.datagrams
    assert simulator.stats.clients == 1
    assert simulator.stats.stops == 1
    assert simulator.client is None
    assert all(f.data in simulator.frames for f in client.frames)


@pytest.mark.slow
def test_faults_are_injected_and_accounted(simulator_factory, client_for) -> None:
    sim = simulator_factory(
        fps=120, loss=0.01, duplicate=0.02, reorder=0.03, corrupt=0.05, foreign=0.02, seed=7
    )
    client = client_for(sim)
    client.run(lambda: sim.stats.frames_sent >= 250, timeout=30)
    client.stop_and_drain()
    st, r = sim.stats, client.reassembler.stats
    assert min(st.lost, st.duplicated, st.reordered, st.corrupted, st.foreign) > 0
    drops = kernel_drops(client.sock)
    if drops:
        pytest.skip(f"the kernel dropped {drops} datagrams (busy machine, small receive buffer)")
    # Every datagram the simulator sent arrived (loopback, big buffer): nothing else was lost.
    assert client.datagrams == st.datagrams
    assert len(client.foreign) == st.foreign
    assert all(addr != client.device for addr in client.foreign)
    # Nothing damaged was ever shown, and every frame is accounted for.
    assert client.mismatched == 0
    assert r.frames == len(client.frames)
    assert r.frames + r.incomplete + r.corrupt == st.frames_sent
    assert r.duplicates == st.duplicated
    assert r.corrupt <= st.corrupted <= r.corrupt + r.incomplete
    assert r.incomplete <= st.lost
    assert r.frames >= st.frames_sent - st.lost - st.corrupted
    ids = [f.frame_id for f in client.frames]
    seqs = np.unwrap(np.array(ids, dtype=float), period=256)
    assert np.all(np.diff(seqs) > 0)  # strictly stream order


def test_unfiltered_client_sees_foreign_datagrams(simulator_factory, client_for) -> None:
    sim = simulator_factory(fps=60, foreign=1.0, seed=3)
    client = client_for(sim, filter_source=False)
    client.run(lambda: sim.stats.frames_sent >= 3)
    client.stop_and_drain()
    # Each forged copy precedes the real datagram, so without a source filter the forged
    # payload wins and frames come out wrong or not at all: the filter is what protects.
    assert client.datagrams == sim.stats.datagrams + sim.stats.foreign
    good = sum(1 for f in client.frames if f.data == sim.sent_frame(f.frame_id))
    assert good < sim.stats.frames_sent


def test_stop_packet_stops_the_stream(simulator: Simulator, client_for) -> None:
    client = client_for(simulator)
    client.run(lambda: len(client.frames) >= 3)
    client.stop_and_drain()
    sent = simulator.stats.datagrams
    client.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client.sock.recvfrom(2048)
    assert simulator.stats.datagrams == sent
    assert simulator.stats.stops == 1


def test_stream_stops_when_heartbeats_cease(simulator_factory, client_for) -> None:
    sim = simulator_factory(heartbeat_timeout=0.3)
    client = client_for(sim)
    client.run(lambda: len(client.frames) >= 2)
    client.run(lambda: sim.client is None, heartbeat=False, timeout=10)
    assert sim.stats.timeouts == 1
    client.stop_and_drain()
    # Heartbeats resume: the stream does too.
    before = len(client.frames)
    client.run(lambda: len(client.frames) >= before + 2)
    assert sim.stats.clients == 2
    assert client.mismatched == 0


def test_set_resolution_switches_the_stream(simulator_factory, client_for) -> None:
    sim = simulator_factory(loop_frames=4)
    client = client_for(sim)
    client.run(lambda: len(client.frames) >= 2)
    sim.set_resolution(1280, 720)
    client.run(lambda: sof_info(client.frames[-1].data)[:2] == (1280, 720))
    assert client.mismatched == 0
    assert sim.resolution == (1280, 720)


# ------------------------------------------------------------------------ button events


def poll(sock: socket.socket, tracker: ButtonTracker, sim: Simulator | int) -> int:
    """One SETCMD/RETCMD round trip to a Simulator (or an event port); presses it reports."""
    port = sim if isinstance(sim, int) else sim.event_port
    sock.sendto(tracker.next_poll(), ("127.0.0.1", port))
    presses = 0
    while True:
        try:
            data, addr = sock.recvfrom(2048)
        except TimeoutError:
            return presses
        if addr == ("127.0.0.1", port):
            return presses + tracker.on_reply(data)


@pytest.fixture
def event_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def test_button_presses_over_udp(simulator: Simulator, event_socket) -> None:
    tracker = ButtonTracker()
    simulator.press_button(2)  # before the bridge started: history, not snapshots
    assert poll(event_socket, tracker, simulator) == 0
    assert tracker.baseline == 2
    simulator.press_button()
    assert poll(event_socket, tracker, simulator) == 1
    simulator.press_button(3)
    assert poll(event_socket, tracker, simulator) == 3
    assert simulator.stats.polls == 3
    assert tracker.stats.presses == 4


def test_foreign_replies_come_from_elsewhere(simulator_factory, event_socket) -> None:
    sim = simulator_factory(foreign=1.0, seed=1)
    tracker = ButtonTracker()
    event_socket.sendto(tracker.next_poll(), ("127.0.0.1", sim.event_port))
    replies = [event_socket.recvfrom(2048) for _ in range(2)]
    sources = {addr for _, addr in replies}
    assert ("127.0.0.1", sim.event_port) in sources
    assert len(sources) == 2
    forged = next(d for d, a in replies if a != ("127.0.0.1", sim.event_port))
    real = next(d for d, a in replies if a == ("127.0.0.1", sim.event_port))
    assert decode_retcmd(forged).buttons != decode_retcmd(real).buttons  # type: ignore[union-attr]
    assert sim.stats.foreign_events == 1


def test_reboot_resets_counter_and_stream(simulator_factory, client_for, event_socket) -> None:
    sim = simulator_factory(fps=60)
    tracker = ButtonTracker()
    poll(event_socket, tracker, sim)
    sim.press_button(20)
    assert poll(event_socket, tracker, sim) == 0  # 20 at once: implausible, re-baselined
    client = client_for(sim)
    client.run(lambda: len(client.frames) >= 40)
    sim.reboot(0.3)
    client.run(lambda: sim.stats.reboots == 1 and sim.client is None)
    # What the old stream left in the socket, then a reassembler with no memory of its ids: the
    # bridge's own one would drop the new ids 0, 1, ... as stale stragglers of the old stream for
    # up to its expiry (see Reassembler), and on a loaded machine that hides the restart.
    client.drain(0.1)
    at_reboot = len(client.frames)
    client.reassembler = Reassembler()
    event_socket.settimeout(0.1)
    replies = tracker.stats.replies
    # Poll until the device answers again: counter 0 is a fall back, so no snapshots.
    client.run(lambda: poll(event_socket, tracker, sim) == 0 and tracker.stats.replies > replies)
    assert tracker.baseline == 0
    assert tracker.stats.rebaselines == 2
    assert tracker.stats.presses == 0
    # The client keeps heartbeating: the stream resumes with frame ids from 0.
    before = len(client.frames)
    client.run(lambda: len(client.frames) >= before + 5, timeout=20)
    assert client.mismatched == 0
    before_ids = [f.frame_id for f in client.frames[:at_reboot]]
    after_ids = [f.frame_id for f in client.frames[at_reboot:]]
    assert before_ids[-1] >= 39, before_ids
    # Ids from 0 again, in order (the polls above may take long enough for 40 new frames).
    assert after_ids[0] == 0 and after_ids == sorted(after_ids), after_ids
    assert sim.stats.clients == 2


# ------------------------------------------------------------------------ CLI


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args([])
    cfg = sim_cli.config_from_args(args)
    assert cfg == SimulatorConfig(seed=None)
    args = parser.parse_args(
        shlex.split(
            "--bind 127.0.0.1 --stream-port 1 --event-port 2 --heartbeat-timeout 3 "
            "--resolution 1920x1080 --fps 15 --quality 70 --fragment-size 1000 --loss 0.1 "
            "--duplicate 0.2 --reorder 0.3 --corrupt 0.4 --foreign 0.5 --seed 9"
        )
    )
    cfg = sim_cli.config_from_args(args)
    assert (cfg.bind, cfg.stream_port, cfg.event_port, cfg.heartbeat_timeout) == (
        "127.0.0.1",
        1,
        2,
        3.0,
    )
    assert (cfg.resolution, cfg.fps, cfg.quality, cfg.fragment_size) == ((1920, 1080), 15, 70, 1000)
    assert (cfg.loss, cfg.duplicate, cfg.reorder, cfg.corrupt, cfg.foreign, cfg.seed) == (
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        9,
    )
    for bad in (
        ["--loss", "1.5"],
        ["--resolution", "800x600"],
        ["--fps", "0"],
        ["--quality", "101"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def _address_is_local(address: str) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, 0))
    except OSError as exc:
        assert exc.errno == errno.EADDRNOTAVAIL
        return False
    finally:
        sock.close()
    return True


def test_missing_device_address_explains_itself(caplog) -> None:
    if _address_is_local(DEVICE_IP):
        pytest.skip(f"{DEVICE_IP} is configured on this machine")
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    assert sim_cli.main(parser.parse_args([])) == 1
    assert "not on this machine" in caplog.text
    assert "--bind 127.0.0.1" in caplog.text


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_process_sigusr1_presses_and_sigterm_exits(event_socket) -> None:
    stream_port, event_port = _free_udp_port(), _free_udp_port()
    cmd = [
        sys.executable, "-m", "bridge.sim.server", "--bind", "127.0.0.1",
        "--stream-port", str(stream_port), "--event-port", str(event_port), "--fps", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "kill -USR1" in line:
                break
        assert any(f"video UDP {stream_port}" in x for x in lines), lines
        tracker = ButtonTracker()
        assert poll(event_socket, tracker, event_port) == 0
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        presses = 0
        while presses == 0:
            assert time.monotonic() < deadline
            presses = poll(event_socket, tracker, event_port)
        assert presses == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read()  # type: ignore[union-attr]
        assert "SIGTERM received" in rest
        assert "pressed 1 time" in rest
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
