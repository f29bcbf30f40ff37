# SPDX-License-Identifier: GPL-3.0-or-later
"""Pipeline behaviour with a stand-in sink: newest wins, reopen, retry with advice, no signal.

No timing asserts: the tests wait (with a generous deadline) for states, never measure speed.
Where time decides (the "no signal" period, the parked worker's look at the reader count) a
pipeline that was never started is driven by hand (``work_once``) on a stepped clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import simplejpeg
from support.waiting import wait_for

import bridge.camera.pipeline as pipeline_mod
from bridge.camera.pipeline import (
    NO_SIGNAL_PERIOD_S,
    PARKED_CHECK_S,
    SWITCH_AFTER_FRAMES,
    Pipeline,
)
from bridge.core.jpeg import jpeg_dimensions
from bridge.errors import CameraError, ConfigError
from bridge.pixels.decode import Decoder
from bridge.pixels.fit import Fitter
from bridge.pixels.nosignal import no_signal_i420, no_signal_jpeg
from bridge.pixels.transform import Transform


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
    """A v4l2loopback device at the edge: while ``owner.locked`` is set (an app holds the
    device), opens get that size and resize() keeps it, as the real module does."""

    def __init__(self, owner: Sinks, path: str, w: int, h: int, fmt: str, fps: float) -> None:
        self.owner, self.args = owner, (path, w, h, fmt, fps)
        self.size = owner.locked or (w, h)
        self.frames: list[bytes] = []
        self.resizes: list[tuple[int, int]] = []
        self.closed = False

    def resize(self, w: int, h: int) -> bool:
        self.resizes.append((w, h))
        if self.owner.resize_error:
            self.closed = True
            raise CameraError(self.owner.resize_error)
        if self.owner.locked is None:
            self.size = (w, h)
        return self.size == (w, h)

    def write(self, data: object) -> None:
        self.owner.entered.set()
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
        self.entered = threading.Event()  # a write() began (it may hang at the gate)
        self.fail_writes = False
        self.refuse: str | None = None
        self.locked: tuple[int, int] | None = None
        self.resize_error: str | None = None

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


class SteppedClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def manual(sinks: Sinks, clock: SteppedClock) -> Iterator[Callable[..., Pipeline]]:
    """Pipelines without a worker thread: the test runs each job with ``work_once()``."""
    made: list[Pipeline] = []

    def _make(**kw: object) -> Pipeline:
        kw.setdefault("sink_factory", sinks)
        p = Pipeline(clock=clock, **kw)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield _make
    for p in made:
        p.stop()


def run_due(p: Pipeline) -> int:
    """Every job due at the clock's time now, as the worker would; how many there were."""
    n = 0
    while p.work_once():
        n += 1
    return n


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
    wait_for(lambda: p.stats()["shown"] == 1)
    assert sinks.made[0].args == ("/dev/video9", 320, 240, "raw", 25.0)
    expected = Decoder().decode(data)
    assert sinks.all_frames == [expected.tobytes()]
    st = p.stats()
    assert st["camera"] == "/dev/video9" and st["camera_error"] is None
    assert st["resolution"] == (320, 240)
    assert st["latency_p50_ms"] >= 10.0  # completed 10 ms before submit
    assert st["latency_p99_ms"] >= st["latency_p50_ms"]


def test_mjpeg_passes_bytes_through(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(fmt="mjpeg")
    frames = [jpeg(640, 480, v) for v in (40, 120, 200)]
    for i, data in enumerate(frames):
        p.submit(frame(i, data))

        def shown(n: int = i + 1) -> bool:
            return p.stats()["shown"] == n

        wait_for(shown)
    assert sinks.made[0].args[1:4] == (640, 480, "mjpeg")
    assert sinks.all_frames == frames
    assert p.stats()["decoder"] is None


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
    assert p.stats()["skipped"] == len(frames) - 2  # only the newest one is kept waiting
    sinks.gate.set()
    wait_for(lambda: p.stats()["shown"] == 2)
    assert sinks.all_frames == [frames[0], frames[-1]]


def show(p: Pipeline, data: bytes, n: int = 1) -> None:
    """Submit ``n`` frames one at a time, each shown before the next (none skipped)."""
    for _ in range(n):
        target = p.stats()["shown"] + 1
        p.submit(frame(0, data))

        def shown(target: int = target) -> bool:
            return p.stats()["shown"] >= target

        wait_for(shown)


def i420_size(size: tuple[int, int]) -> int:
    return size[0] * size[1] * 3 // 2


def test_resolution_change_switches_after_several_frames_without_closing(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make()
    show(p, jpeg(320, 240))
    show(p, jpeg(640, 480), SWITCH_AFTER_FRAMES + 2)
    assert len(sinks.made) == 1 and not sinks.made[0].closed  # the writer never let go
    assert sinks.made[0].resizes == [(640, 480)]
    sizes = [len(f) for f in sinks.all_frames]
    # Until the switch the new frames are fitted into the old size, then shown at their own.
    old, new = i420_size((320, 240)), i420_size((640, 480))
    assert sizes == [old] * SWITCH_AFTER_FRAMES + [new] * 3
    assert p.stats()["fitted"] == SWITCH_AFTER_FRAMES - 1
    assert p.stats()["camera_size"] == (640, 480)


def corrupt_sof(data: bytes, w: int, h: int) -> bytes:
    """The same JPEG with an SOF0 that claims another size (what one bad fragment does)."""
    k = data.index(b"\xff\xc0")
    return data[: k + 5] + h.to_bytes(2, "big") + w.to_bytes(2, "big") + data[k + 9 :]


def test_one_corrupt_frame_claiming_another_size_changes_nothing(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make()
    good = jpeg(320, 240)
    show(p, good, 2)
    bad = corrupt_sof(good, 1280, 720)
    assert jpeg_dimensions(bad) == (1280, 720)
    p.submit(frame(1, bad))
    wait_for(lambda: p.stats()["shown"] + p.stats()["decode_errors"] == 3)
    show(p, good, 3)
    assert len(sinks.made) == 1 and not sinks.made[0].closed
    assert sinks.made[0].resizes == []
    assert all(len(f) == i420_size((320, 240)) for f in sinks.all_frames)


def y_plane(data: bytes, size: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(data, np.uint8)[: size[0] * size[1]].reshape(size[1], size[0])


def test_camera_held_by_an_app_keeps_its_size_and_gets_fitted_pictures(
    make: Callable[..., Pipeline], sinks: Sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_mod, "RESIZE_RETRY_S", 0.3)
    p = make()
    show(p, jpeg(320, 240))
    sinks.locked = (320, 240)  # an app opened the camera: v4l2loopback keeps this size
    wide = jpeg(640, 360, value=200)
    show(p, wide, SWITCH_AFTER_FRAMES + 5)
    sink = sinks.made[0]
    assert len(sinks.made) == 1 and not sink.closed
    assert sink.resizes[:1] == [(640, 360)]
    assert len(sink.resizes) < 3  # asked again only every RESIZE_RETRY_S, not every frame
    last = sink.frames[-1]
    assert len(last) == i420_size((320, 240))
    # 640x360 scaled to 320x180, centred: black bars of 30 rows above and below.
    y = y_plane(last, (320, 240))
    assert (y[:30] == 16).all() and (y[210:] == 16).all()
    expected = Decoder().decode(wide)[:360].reshape(360, 640)[::2, ::2]
    assert np.abs(y[30:210].astype(int) - expected).mean() < 2
    sinks.locked = None  # the app closed: the next retry switches the camera
    deadline = time.monotonic() + 20
    while sink.size != (640, 360) and time.monotonic() < deadline:
        show(p, wide)
        time.sleep(0.05)
    assert sink.size == (640, 360) and len(sinks.made) == 1
    show(p, wide)
    assert len(sink.frames[-1]) == i420_size((640, 360))


def test_rotate_by_reload_while_an_app_holds_the_camera(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make()
    data = jpeg(320, 240, value=220)
    show(p, data)
    sinks.locked = (320, 240)
    p.set_transform(rotate=90, flip="none")
    show(p, data, SWITCH_AFTER_FRAMES + 2)
    assert sinks.made[0].resizes == [(240, 320)] and not sinks.made[0].closed
    y = y_plane(sinks.all_frames[-1], (320, 240))
    # 240x320 scaled to 180x240: pillarbox bars of 70 columns left and right.
    assert (y[:, :70] == 16).all() and (y[:, 250:] == 16).all()
    assert (y[:, 70:250] > 100).mean() > 0.5  # the rotated picture (mostly bright) between


def test_mjpeg_is_reencoded_into_a_held_camera(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(fmt="mjpeg")
    show(p, jpeg(320, 240))
    sinks.locked = (320, 240)
    big = jpeg(640, 480, value=60)
    show(p, big, SWITCH_AFTER_FRAMES + 1)
    last = sinks.all_frames[-1]
    assert jpeg_dimensions(last) == (320, 240)
    got = simplejpeg.decode_jpeg(last, "BGR").astype(int)
    want = simplejpeg.decode_jpeg(big, "BGR")[::2, ::2].astype(int)
    assert np.abs(got - want).mean() < 8


def test_resize_that_loses_the_device_reopens_at_once(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make(retry_s=60)
    show(p, jpeg(320, 240))
    sinks.resize_error = "/dev/video9 is busy"
    big = jpeg(640, 480)
    show(p, big, SWITCH_AFTER_FRAMES - 1)
    p.submit(frame(1, big))  # the switch: the device is lost on the way
    wait_for(lambda: p.stats()["not_shown"] == 1)
    assert sinks.made[0].closed
    sinks.resize_error = None
    show(p, big)  # reopened at once, not after retry_s
    assert len(sinks.made) == 2 and sinks.made[1].size == (640, 480)


class Alternating(Pipeline):
    """A pipeline whose transform changes every time it is read (a reload racing the worker)."""

    reads = 0

    @property
    def transform(self) -> Transform:
        self.reads += 1
        return Transform(90 if self.reads % 2 else 0, "none")

    @transform.setter
    def transform(self, value: Transform) -> None:
        pass


def test_the_transform_is_read_once_per_frame(sinks: Sinks) -> None:
    p = Alternating(camera="/dev/video9", sink_factory=sinks)
    p.start()
    data = jpeg(320, 240)
    try:
        show(p, data, 6)
    finally:
        p.stop()
    cam = sinks.made[0].size
    # Every picture is the frame under one transform or the other, never a mix of both.
    decoded = Decoder().decode(data)
    upright = Fitter().fit(decoded, (320, 240), cam).tobytes()
    turned = Transform(90, "none").apply(decoded, 320, 240)
    rotated = Fitter().fit(turned, (240, 320), cam).tobytes()
    assert upright != rotated
    assert set(sinks.all_frames) == {upright, rotated}


def test_stop_leaves_the_camera_and_decoder_to_a_busy_worker(
    make: Callable[..., Pipeline], sinks: Sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_mod, "STOP_JOIN_S", 0.2)
    p = make()
    show(p, jpeg(320, 240))
    freed: list[str] = []
    assert p._decoder is not None
    real_close = p._decoder.close

    def close() -> None:
        freed.append("decoder")
        real_close()

    monkeypatch.setattr(p._decoder, "close", close)
    sinks.gate.clear()  # the next write hangs (a stuck device)
    sinks.entered.clear()
    p.submit(frame(1, jpeg(320, 240)))
    wait_for(sinks.entered.is_set, what="the worker inside write()")
    p.stop()
    assert freed == [] and not sinks.made[0].closed  # still in use by the worker
    sinks.gate.set()
    wait_for(lambda: sinks.made[0].closed and freed == ["decoder"])


def test_rotation_changes_the_camera_size(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(rotate=90, flip="horizontal")
    p.submit(frame(0, jpeg(320, 240)))
    wait_for(lambda: p.stats()["shown"] == 1)
    assert sinks.made[0].args[1:3] == (240, 320)


def test_camera_unavailable_keeps_accepting_and_retries(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    advice = "no virtual camera: run `sudo modprobe v4l2loopback exclusive_caps=1`"
    sinks.refuse = advice
    p = make(retry_s=0.05)
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats()["camera_error"] == advice)
    assert p.stats()["camera"] is None
    for i in range(1, 4):
        p.submit(frame(i, data))
    wait_for(lambda: p.stats()["not_shown"] >= 2)
    sinks.refuse = None  # the module was loaded meanwhile
    deadline = time.monotonic() + 20
    while p.stats()["shown"] == 0 and time.monotonic() < deadline:
        p.submit(frame(9, data))
        time.sleep(0.02)
    assert p.stats()["shown"] >= 1
    assert p.stats()["camera_error"] is None


def test_dead_device_is_reopened(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make(retry_s=0.05)
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats()["shown"] == 1)
    sinks.fail_writes = True
    p.submit(frame(1, data))
    wait_for(lambda: p.stats()["camera_error"] is not None)
    assert "stopped accepting frames" in p.stats()["camera_error"]
    assert sinks.made[0].closed
    sinks.fail_writes = False
    deadline = time.monotonic() + 20
    while p.stats()["shown"] < 2 and time.monotonic() < deadline:
        p.submit(frame(2, data))
        time.sleep(0.02)
    assert p.stats()["shown"] >= 2
    assert len(sinks.made) == 2


@pytest.mark.parametrize("fmt", ["raw", "mjpeg"])
def test_no_signal_picture_while_lost(
    manual: Callable[..., Pipeline], sinks: Sinks, clock: SteppedClock, fmt: str
) -> None:
    p = manual(fmt=fmt)
    p.signal_lost()  # nothing seen yet: the device must not be locked to a guessed size
    assert run_due(p) == 1
    clock.step(NO_SIGNAL_PERIOD_S)
    assert run_due(p) == 1
    assert sinks.made == []
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    assert run_due(p) == 1 and p.stats()["shown"] == 1
    p.signal_lost()
    clock.step(NO_SIGNAL_PERIOD_S)
    assert run_due(p) == 1 and p.stats()["no_signal_shown"] == 1
    assert run_due(p) == 0  # the next one is due a period later
    clock.step(NO_SIGNAL_PERIOD_S / 2)
    assert run_due(p) == 0
    clock.step(NO_SIGNAL_PERIOD_S / 2)
    assert run_due(p) == 1 and p.stats()["no_signal_shown"] == 2
    expected = no_signal_i420(320, 240).tobytes() if fmt == "raw" else no_signal_jpeg(320, 240)
    assert sinks.all_frames[1:] == [expected, expected]
    assert p.stats()["no_signal"] is True
    p.submit(frame(1, data))  # frames return: real pictures replace it
    assert run_due(p) == 1 and p.stats()["shown"] == 2
    assert p.stats()["no_signal"] is False
    clock.step(3 * NO_SIGNAL_PERIOD_S)
    assert run_due(p) == 0
    assert p.stats()["no_signal_shown"] == 2 and len(sinks.all_frames) == 4


def test_corrupt_frames_are_counted_not_fatal(make: Callable[..., Pipeline], sinks: Sinks) -> None:
    p = make()
    p.submit(frame(0, b"\xff\xd8garbage"))
    wait_for(lambda: p.stats()["decode_errors"] == 1)
    p.submit(frame(1, jpeg(320, 240)))
    wait_for(lambda: p.stats()["shown"] == 1)


def test_camera_none_is_not_a_pipeline() -> None:
    with pytest.raises(ValueError, match="NullOutput"):
        Pipeline(camera="none", sink_factory=Sinks())


def test_default_finder_reports_advice_on_a_machine_without_module(tmp_path: object) -> None:
    """Without a sink_factory the real discovery runs; with a bogus path it gives advice."""
    p = Pipeline(camera="/nonexistent/video42", retry_s=60)
    p.start()
    try:
        p.submit(frame(0, jpeg(64, 48)))
        wait_for(lambda: p.stats()["camera_error"] is not None)
        assert "modprobe v4l2loopback" in p.stats()["camera_error"]
    finally:
        p.stop()


class FakeUsage:
    """The client-usage count as a module reports it (bridge.camera.usage.Usage)."""

    def __init__(self, count: int | None, may_idle: bool) -> None:
        self.count, self.idles = count, may_idle
        self.asked = 0
        self.threads: set[str] = set()

    @property
    def supported(self) -> bool:
        return self.count is not None

    @property
    def may_idle(self) -> bool:
        return self.idles

    def readers(self) -> int | None:
        self.asked += 1
        self.threads.add(threading.current_thread().name)
        return self.count


def test_nobody_watching_pauses_decoding_after_one_frame(
    manual: Callable[..., Pipeline], sinks: Sinks, clock: SteppedClock
) -> None:
    usage = FakeUsage(0, may_idle=True)
    p = manual(usage_factory=lambda sink: usage)
    data = jpeg(320, 240)
    p.submit(frame(0, data))  # one frame even now: it makes the device a capture device
    assert run_due(p) == 1 and p.stats()["shown"] == 1
    p.submit(frame(1, data))  # the worker sees nobody watching: it parks
    assert run_due(p) == 1 and p.stats()["idle_frames"] == 1
    asked = usage.asked
    for i in range(2, 5):
        p.submit(frame(i, data))  # dropped by submit: no job for the worker, no look at the device
    assert run_due(p) == 0 and usage.asked == asked
    assert p.stats()["idle_frames"] == 4
    assert p.stats()["shown"] == 1 and len(sinks.all_frames) == 1
    assert p.stats()["idle"] is True and p.stats()["readers"] == 0
    assert sinks.made[0].closed is False  # the format stays set: the camera stays listed
    clock.step(PARKED_CHECK_S)  # parked, the worker asks the count itself: still nobody
    assert run_due(p) == 1 and usage.asked == asked + 1
    assert p.stats()["idle"] is True and p.stats()["shown"] == 1
    p.signal_lost()  # no "no signal" picture for nobody either
    clock.step(NO_SIGNAL_PERIOD_S)
    run_due(p)
    assert p.stats()["no_signal_shown"] == 0 and len(sinks.all_frames) == 1
    usage.count = 1  # a reader starts (with the stream stalled): "no signal" is what it gets
    clock.step(NO_SIGNAL_PERIOD_S)
    run_due(p)
    assert p.stats()["idle"] is False and p.stats()["readers"] == 1
    assert p.stats()["no_signal_shown"] == 1
    p.submit(frame(5, data))  # the next frame is decoded and written
    assert run_due(p) == 1 and p.stats()["shown"] == 2
    assert sinks.all_frames[-1] == Decoder().decode(data).tobytes()


def test_a_reader_starting_gets_the_newest_dropped_frame(
    manual: Callable[..., Pipeline], sinks: Sinks, clock: SteppedClock
) -> None:
    """The parked worker notices the reader on its own and shows what came last, without
    waiting for the next frame (a slow stream would otherwise keep the reader waiting)."""
    usage = FakeUsage(0, may_idle=True)
    p = manual(usage_factory=lambda sink: usage)
    first, last = jpeg(320, 240, 60), jpeg(320, 240, 200)
    for i in range(2):
        p.submit(frame(i, first))
        run_due(p)
    assert p.stats()["idle"] is True
    p.submit(frame(2, first))
    p.submit(frame(3, last))
    usage.count = 1
    assert run_due(p) == 0  # nothing wakes the worker before its next look
    clock.step(PARKED_CHECK_S)
    assert run_due(p) == 2  # the look at the count, then the frame it hands itself
    assert p.stats()["idle"] is False and p.stats()["shown"] == 2
    assert sinks.all_frames[-1] == Decoder().decode(last).tobytes()
    assert p.stats()["idle_frames"] == 2  # frames 1 and 2: frame 3 was shown after all


def test_parked_worker_asks_the_count_only_on_its_own_thread(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    """The reader count polls and drains events on the camera's descriptor: the worker owns
    it, so the receive thread must never ask it, even while the worker is parked."""
    usage = FakeUsage(0, may_idle=True)
    p = make(usage_factory=lambda sink: usage)
    data = jpeg(320, 240)
    p.submit(frame(0, data))
    wait_for(lambda: p.stats()["shown"] == 1)
    p.submit(frame(1, data))
    wait_for(lambda: p.stats()["idle"] is True)
    for i in range(2, 12):
        p.submit(frame(i, data))
    assert p.stats()["idle_frames"] >= 10  # dropped at once by submit, not handed over
    asked = usage.asked
    wait_for(lambda: usage.asked > asked + 3, what="the parked worker asking the count")
    usage.count = 1
    wait_for(lambda: p.stats()["shown"] == 2, what="the reader's first picture")
    assert usage.threads == {"pipeline"}


def test_count_without_read_readers_keeps_decoding(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    # v4l2loopback 0.13.x: the count misses read() readers, so it only informs
    p = make(fmt="mjpeg", usage_factory=lambda sink: FakeUsage(0, may_idle=False))
    data = jpeg(320, 240)
    for i in range(3):
        p.submit(frame(i, data))

        def shown(n: int = i + 1) -> bool:
            return p.stats()["shown"] == n

        wait_for(shown)
    st = p.stats()
    assert st["readers"] == 0 and st["idle"] is False and st["idle_frames"] == 0


def test_module_without_usage_event_reports_unknown(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    p = make(usage_factory=lambda sink: FakeUsage(None, may_idle=False))
    p.submit(frame(0, jpeg(320, 240)))
    wait_for(lambda: p.stats()["shown"] == 1)
    assert p.stats()["readers"] == "unknown" and p.stats()["idle"] is False


def test_nobody_watching_still_follows_a_new_stream_size(
    make: Callable[..., Pipeline], sinks: Sinks
) -> None:
    """Idle frames are dropped early, but a size change still reaches the device: the switch
    needs SWITCH_AFTER_FRAMES frames at the new size, and nobody watching is the best moment."""
    subscribed: list[FakeSink] = []

    def usage_for(sink: FakeSink) -> FakeUsage:
        subscribed.append(sink)
        return FakeUsage(0, may_idle=True)

    p = make(usage_factory=usage_for)
    small, large = jpeg(320, 240), jpeg(640, 480)
    p.submit(frame(0, small))
    wait_for(lambda: p.stats()["shown"] == 1)
    p.submit(frame(1, small))
    wait_for(lambda: p.stats()["idle"] is True)
    for i in range(SWITCH_AFTER_FRAMES + 1):
        handled = p.stats()["shown"] + p.stats()["idle_frames"]
        p.submit(frame(2 + i, large))

        def handled_more(h: int = handled) -> bool:
            return p.stats()["shown"] + p.stats()["idle_frames"] > h

        wait_for(handled_more)
    wait_for(lambda: sinks.made[0].size == (640, 480), what="the camera at the new size")
    # resize() may reopen the device: the reader count is asked again on the sink it has now,
    # and after one frame at the new size (which lists the device) decoding pauses again.
    assert len(subscribed) >= 2
    wait_for(lambda: p.stats()["idle"] is True)
    assert sinks.made[0].frames[-1] == Decoder().decode(large).tobytes()
