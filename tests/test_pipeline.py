# SPDX-License-Identifier: GPL-3.0-or-later
"""Pipeline behaviour with a stand-in sink: newest wins, reopen, retry with advice, no signal.

No timing asserts: the tests wait (with a generous deadline) for states, never measure speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import simplejpeg
from waiting import wait_for

from bridge.decode import Decoder
from bridge.errors import CameraError, ConfigError
from bridge.nosignal import no_signal_i420, no_signal_jpeg
from bridge.pipeline import Pipeline


@dataclass(frozen=True)
class Frame:
    frame_id: int
    data: bytes
    completed_at: float


def jpeg(w: int, h: int, value: int = 100) -> bytes:
    img = np.full((h, w, 3), value, np.uint8)
    img[: h // 2, : w // 2] = (255 - value, value // 2, 30)
    return simplejpeg.encode_jpeg(img, 85, "BGR", "422")


def frame(i: int, data: bytes, age_s: float = 0.0) -> Frame:
    return Frame(i, data, time.monotonic() - age_s)


class FakeSink:
    def __init__(self, owner: Sinks, path: str, w: int, h: int, fmt: str, fps: float) -> None:
        self.owner, self.args = owner, (path, w, h, fmt, fps)
        self.frames: list[bytes] = []
        self.closed = False

    def write(self, data: object) -> None:
        self.owner.gate.wait(30)
        if self.owner.fail_writes:
            raise CameraError("/dev/video9 stopped accepting frames (No such device)")
        self.frames.append(bytes(memoryview(data)))  # type: ignore[arg-type]
        self.owner.written.set()

    def close(self) -> None:
        self.closed = True


class Sinks:
    """sink_factory that records every sink it made."""

    def __init__(self) -> None:
        self.made: list[FakeSink] = []
        self.gate = threading.Event()
        self.gate.set()
        self.written = threading.Event()
        self.fail_writes = False
        self.refuse: str | None = None

    def __call__(self, path: str, w: int, h: int, fmt: str, fps: float) -> FakeSink:
        if self.refuse:
            raise CameraError(self.refuse)
        sink = FakeSink(self, path, w, h, fmt, fps)
        self.made.append(sink)
        return sink

    @property
    def all_frames(self) -> list[bytes]:
        return [f for s in self.made for f in s.frames]


@pytest.fixture
def sinks() -> Sinks:
    return Sinks()


@pytest.fixture
def make(sinks: Sinks) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def _make(**kw: object) -> Pipeline:
        kw.setdefault("sink_factory", sinks)
        p = Pipeline(**kw)  # type: ignore[arg-type]
        p.start()
        made.append(p)
        return p

    yield _make
    sinks.gate.set()
    for p in made:
        p.stop()


def test_raw_frames_are_decoded_to_i420(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(camera="/dev/video9", fps_hint=25.0)
    data = jpeg(320, 240)
    p.submit(frame(1, data, age_s=0.010))
    wait_for(lambda: p.stats["shown"] == 1)
    assert sinks.made[0].args == ("/dev/video9", 320, 240, "raw", 25.0)
    expected = Decoder().decode(data)
    assert sinks.all_frames == [expected.tobytes()]
    st = p.stats
    assert st["camera"] == "/dev/video9" and st["camera_error"] is None
    assert st["resolution"] == (320, 240)
    assert st["latency_p50_ms"] >= 10.0  # completed 10 ms before submit
    assert st["latency_p99_ms"] >= st["latency_p50_ms"]


def test_mjpeg_passes_bytes_through(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(fmt="mjpeg")
    frames = [jpeg(640, 480, v) for v in (40, 120, 200)]
    for i, data in enumerate(frames):
        p.submit(frame(i, data))
        wait_for(lambda i=i: p.stats["shown"] == i + 1)
    assert sinks.made[0].args[1:4] == (640, 480, "mjpeg")
    assert sinks.all_frames == frames
    assert p.stats["decoder"] is None


def test_mjpeg_refuses_rotation() -> None:
    with pytest.raises(ConfigError, match="--format raw"):
        Pipeline(fmt="mjpeg", rotate=90, sink_factory=Sinks())
    with pytest.raises(ConfigError, match="format"):
        Pipeline(fmt="h264", sink_factory=Sinks())


def test_newest_frame_wins_and_skips_are_counted(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make(fmt="mjpeg")
    sinks.gate.clear()  # the camera is slow: the first write blocks
    frames = [jpeg(160, 120, v) for v in range(10, 250, 40)]
    p.submit(frame(0, frames[0]))
    wait_for(lambda: len(sinks.made) == 1)
    for i, data in enumerate(frames[1:], start=1):
        p.submit(frame(i, data))  # returns although the worker is stuck
    assert p.stats["skipped"] == len(frames) - 2  # only the newest one is kept waiting
    sinks.gate.set()
    wait_for(lambda: p.stats["shown"] == 2)
    assert sinks.all_frames == [frames[0], frames[-1]]


def test_resolution_change_reopens(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make()
    p.submit(frame(0, jpeg(320, 240)))
    wait_for(lambda: p.stats["shown"] == 1)
    p.submit(frame(1, jpeg(640, 480)))
    wait_for(lambda: p.stats["shown"] == 2)
    assert [s.args[1:3] for s in sinks.made] == [(320, 240), (640, 480)]
    assert sinks.made[0].closed and not sinks.made[1].closed
    assert len(sinks.made[1].frames[0]) == 640 * 480 * 3 // 2


def test_rotation_changes_the_camera_size(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(rotate=90, flip="horizontal")
    p.submit(frame(0, jpeg(320, 240)))
    wait_for(lambda: p.stats["shown"] == 1)
    assert sinks.made[0].args[1:3] == (240, 320)


def test_camera_unavailable_keeps_accepting_and_retries(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    advice = "no virtual camera: run `sudo modprobe v4l2loopback exclusive_caps=1`"
    sinks.refuse = advice
    p = make(retry_s=0.05)
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats["camera_error"] == advice)
    assert p.stats["camera"] is None
    for i in range(1, 4):
        p.submit(frame(i, data))
    wait_for(lambda: p.stats["not_shown"] >= 2)
    sinks.refuse = None  # the module was loaded meanwhile
    deadline = time.monotonic() + 20
    while p.stats["shown"] == 0 and time.monotonic() < deadline:
        p.submit(frame(9, data))
        time.sleep(0.02)
    assert p.stats["shown"] >= 1
    assert p.stats["camera_error"] is None


def test_dead_device_is_reopened(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(retry_s=0.05)
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats["shown"] == 1)
    sinks.fail_writes = True
    p.submit(frame(1, data))
    wait_for(lambda: p.stats["camera_error"] is not None)
    assert "stopped accepting frames" in p.stats["camera_error"]
    assert sinks.made[0].closed
    sinks.fail_writes = False
    deadline = time.monotonic() + 20
    while p.stats["shown"] < 2 and time.monotonic() < deadline:
        p.submit(frame(2, data))
        time.sleep(0.02)
    assert p.stats["shown"] >= 2
    assert len(sinks.made) == 2


@pytest.mark.parametrize("fmt", ["raw", "mjpeg"])
def test_no_signal_picture_while_lost(
    make: Callable[..., Pipeline], sinks: Sinks, fmt: str
) -> None:
    p = make(fmt=fmt)
    p.signal_lost()  # nothing seen yet: the device must not be locked to a guessed size
    time.sleep(0.6)
    assert sinks.made == []
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats["shown"] == 1)
    p.signal_lost()
    wait_for(lambda: p.stats["no_signal_shown"] >= 2)
    expected = no_signal_i420(320, 240).tobytes() if fmt == "raw" else no_signal_jpeg(320, 240)
    assert sinks.all_frames[1] == expected
    assert p.stats["no_signal"] is True
    p.submit(frame(1, data))  # frames return: real pictures replace it
    wait_for(lambda: p.stats["shown"] == 2)
    assert p.stats["no_signal"] is False
    n = p.stats["no_signal_shown"]
    time.sleep(0.7)
    assert p.stats["no_signal_shown"] == n


def test_corrupt_frames_are_counted_not_fatal(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make()
    p.submit(frame(0, b"\xff\xd8garbage"))
    wait_for(lambda: p.stats["decode_errors"] == 1)
    p.submit(frame(1, jpeg(320, 240)))
    wait_for(lambda: p.stats["shown"] == 1)


def test_camera_none_shows_nothing(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(camera="none")
    p.submit(frame(0, jpeg(320, 240)))
    p.submit(frame(1, jpeg(320, 240)))
    assert sinks.made == []
    st = p.stats
    assert st["shown"] == 0 and st["skipped"] == 0 and st["camera"] is None
    assert st["resolution"] == (320, 240)


def test_default_finder_reports_advice_on_a_machine_without_module(tmp_path: object) -> None:
    """Without a sink_factory the real discovery runs; with a bogus path it gives advice."""
    p = Pipeline(camera="/nonexistent/video42", retry_s=60)
    p.start()
    try:
        p.submit(frame(0, jpeg(64, 48)))
        wait_for(lambda: p.stats["camera_error"] is not None)
        assert "modprobe v4l2loopback" in p.stats["camera_error"]
    finally:
        p.stop()
