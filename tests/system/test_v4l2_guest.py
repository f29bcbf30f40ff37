# SPDX-License-Identifier: GPL-3.0-or-later
"""Our V4L2 writer against a real v4l2loopback device, read back by independent clients.

Needs a loaded v4l2loopback (the host's kernel cannot load modules; the VM harness can):

    vm-run 'modprobe v4l2loopback exclusive_caps=1 card_label=Borescope &&
            .venv/bin/python -m pytest -q tests/system/test_v4l2_guest.py'

Skipped, with the reason, where no v4l2loopback device exists or ffmpeg/v4l2-ctl are missing.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg

from bridge.camera.loopback import CARD_LABEL, list_loopback_devices
from bridge.camera.v4l2 import (
    BUF_TYPE_VIDEO_OUTPUT,
    FIELD_NONE,
    PIX_FMT_YU12,
    VIDIOC_S_FMT,
    Format,
    V4L2Writer,
    query_capability,
)
from bridge.errors import CameraError

W, H = 320, 240
LEFT_RGB = (200, 40, 40)
RIGHT_RGB = (40, 40, 200)


def _device() -> str | None:
    devices = list_loopback_devices()
    for d in devices:
        if d.label == CARD_LABEL:
            return d.path
    return devices[0].path if devices else None


DEVICE = _device()
pytestmark = [
    pytest.mark.skipif(
        DEVICE is None,
        reason="no v4l2loopback device (load the module: "
        "sudo modprobe v4l2loopback exclusive_caps=1 card_label=Borescope; "
        "on hosts that cannot load modules run this file in the VM harness)",
    ),
    pytest.mark.skipif(
        shutil.which("ffmpeg") is None or shutil.which("v4l2-ctl") is None,
        reason="ffmpeg and v4l2-ctl (v4l-utils) are needed to read the camera back",
    ),
]


def _pattern_i420() -> np.ndarray:
    bgr = np.empty((H, W, 3), np.uint8)
    bgr[:, : W // 2] = LEFT_RGB[::-1]
    bgr[:, W // 2 :] = RIGHT_RGB[::-1]
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))


def _jpegs(n: int) -> list[bytes]:
    """Distinct JPEGs (a moving bar) so a read-back can be matched to what was written."""
    out = []
    for k in range(n):
        img = np.full((H, W, 3), 90, np.uint8)
        img[:, (k * 37) % (W - 20) : (k * 37) % (W - 20) + 20] = (20, 220, 20)
        out.append(simplejpeg.encode_jpeg(img, 85, "BGR", "422"))
    return out


class Feeder:
    """Writes frames at ~fps in a thread, as the pipeline would."""

    def __init__(self, writer: V4L2Writer, frames: list, fps: float = 30.0) -> None:
        self.writer, self.frames, self.period = writer, frames, 1.0 / fps
        self.stop_event = threading.Event()
        self.written = 0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.writer.write(self.frames[self.written % len(self.frames)])
                self.written += 1
                time.sleep(self.period)
        except Exception as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> Feeder:
        self.thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(5)


@pytest.fixture
def raw_writer() -> Iterator[V4L2Writer]:
    assert DEVICE is not None
    w = V4L2Writer(DEVICE, W, H, "raw", fps=25.0)
    yield w
    w.close()


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)


def _ffmpeg(output: list[str], input_opts: tuple[str, ...] = ()) -> list[str]:
    """An independent reader: ffmpeg capturing from the loopback device into `output`."""
    assert DEVICE is not None
    return ["ffmpeg", "-hide_banner", "-nostdin", "-f", "v4l2", *input_opts, "-i", DEVICE, *output]


def _read_rgb(out: Path, frames: int = 5) -> subprocess.CompletedProcess:
    """`frames` frames from the camera, converted by ffmpeg to RGB24 in `out`."""
    return _run(
        _ffmpeg(["-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", str(out)])
    )


def test_i420_read_back_by_ffmpeg_and_v4l2ctl(raw_writer: V4L2Writer, tmp_path: Path) -> None:
    assert DEVICE is not None
    pattern = _pattern_i420()
    with Feeder(raw_writer, [pattern]) as feeder:
        ff = _read_rgb(tmp_path / "ff.rgb")
        raw = tmp_path / "ctl.yuv"
        ctl = _run(
            ["v4l2-ctl", "-d", DEVICE, "--stream-mmap", "--stream-count=5", f"--stream-to={raw}"]
        )
        parm = _run(["v4l2-ctl", "-d", DEVICE, "--get-parm"])
    assert feeder.error is None
    assert ff.returncode == 0, ff.stderr.decode(errors="replace")[-2000:]
    rgb = np.fromfile(tmp_path / "ff.rgb", np.uint8).reshape(-1, H, W, 3)
    assert len(rgb) == 5
    for frame in rgb:
        left = frame[:, : W // 2 - 8].reshape(-1, 3).mean(axis=0)
        right = frame[:, W // 2 + 8 :].reshape(-1, 3).mean(axis=0)
        assert np.allclose(left, LEFT_RGB, atol=6), left
        assert np.allclose(right, RIGHT_RGB, atol=6), right
    # ffmpeg reports the rate we set with S_PARM.
    m = re.search(rb"(\d+(?:\.\d+)?) fps", ff.stderr)
    assert m is not None and float(m.group(1)) == pytest.approx(25.0), ff.stderr[-1500:]
    assert ctl.returncode == 0, ctl.stderr.decode(errors="replace")
    data = np.fromfile(raw, np.uint8).reshape(-1, pattern.size)
    assert len(data) == 5
    for frame in data:  # v4l2-ctl stores the buffers as written: bit-exact
        assert np.array_equal(frame, pattern.reshape(-1))
    assert parm.returncode == 0
    assert re.search(rb"Frames per second: 25\.0+ \(25/1\)", parm.stdout), parm.stdout


def test_mjpeg_read_back_byte_identical(tmp_path: Path) -> None:
    assert DEVICE is not None
    jpegs = _jpegs(8)
    with V4L2Writer(DEVICE, W, H, "mjpeg", fps=30.0) as writer, Feeder(writer, jpegs) as feeder:
        ff = _run(
            _ffmpeg(
                [
                    "-c:v",
                    "copy",
                    "-frames:v",
                    "6",
                    "-f",
                    "image2",
                    "-y",
                    str(tmp_path / "f%03d.jpg"),
                ],
                input_opts=("-input_format", "mjpeg"),
            )
        )
    assert feeder.error is None
    assert ff.returncode == 0, ff.stderr.decode(errors="replace")[-2000:]
    got = [p.read_bytes() for p in sorted(tmp_path.glob("f*.jpg"))]
    assert len(got) == 6
    # v4l2loopback 0.12.x hands a new reader its first buffer with bytesused = sizeimage (set at
    # REQBUFS): our JPEG, intact, followed by padding. JPEG decoders stop at EOI. Every later
    # frame carries exactly the bytes we wrote.
    assert any(got[0].startswith(j) for j in jpegs), "first frame is not one of ours"
    for k, data in enumerate(got[1:], start=2):
        assert data in jpegs, f"frame {k} differs from every JPEG written"


def _capture_in_background(tmp_path: Path, seconds: float) -> subprocess.Popen:
    assert DEVICE is not None
    return subprocess.Popen(
        _ffmpeg(
            [
                "-t",
                str(seconds),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-y",
                str(tmp_path / "bg.gray"),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _one_capture(tmp_path: Path) -> int:
    assert DEVICE is not None
    out = tmp_path / "one.yuv"
    ctl = _run(
        ["v4l2-ctl", "-d", DEVICE, "--stream-mmap", "--stream-count=3", f"--stream-to={out}"],
        timeout=60,
    )
    assert ctl.returncode == 0, ctl.stderr.decode(errors="replace")
    return out.stat().st_size


def test_reopen_after_close_without_reader(tmp_path: Path) -> None:
    """A restarted daemon gets a working camera again (exclusive_caps=1 re-attach)."""
    assert DEVICE is not None
    pattern = _pattern_i420()
    for _ in range(2):
        with V4L2Writer(DEVICE, W, H, "raw") as w, Feeder(w, [pattern]) as feeder:
            assert _one_capture(tmp_path) == 3 * pattern.size
        assert feeder.error is None


def _write_only_producer(frames: int = 3) -> None:
    """What pyvirtualcam does: S_FMT, write(), close, and never STREAMON."""
    assert DEVICE is not None
    fd = os.open(DEVICE, os.O_RDWR)
    try:
        fmt = Format(type=BUF_TYPE_VIDEO_OUTPUT)
        fmt.fmt.pix.width, fmt.fmt.pix.height = W, H
        fmt.fmt.pix.pixelformat, fmt.fmt.pix.field = PIX_FMT_YU12, FIELD_NONE
        fcntl.ioctl(fd, VIDIOC_S_FMT, fmt)
        for _ in range(frames):
            os.write(fd, _pattern_i420().tobytes())
    finally:
        os.close(fd)


def _announces_output() -> bool:
    assert DEVICE is not None
    fd = os.open(DEVICE, os.O_RDWR)
    try:
        return query_capability(fd).has_output
    finally:
        os.close(fd)


def test_reopen_after_write_only_producer(tmp_path: Path) -> None:
    """A producer that only write()s leaves 0.12.x announcing no capability; we recover, and
    leave the device announcing OUTPUT for whoever comes next."""
    assert DEVICE is not None
    _write_only_producer()
    pattern = _pattern_i420()
    with V4L2Writer(DEVICE, W, H, "raw") as w, Feeder(w, [pattern]) as feeder:
        assert _one_capture(tmp_path) == 3 * pattern.size
    assert feeder.error is None
    assert _announces_output()


def test_reattach_after_real_pyvirtualcam(tmp_path: Path) -> None:
    """pyvirtualcam issue 61 / v4l2loopback issue 442, with the real library: after a
    pyvirtualcam producer has used and closed the device, our writer still gets a camera."""
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    assert DEVICE is not None
    with pyvirtualcam.Camera(W, H, 30, fmt=pyvirtualcam.PixelFormat.I420, device=DEVICE) as cam:
        for _ in range(3):
            cam.send(_pattern_i420())
    pattern = _pattern_i420()
    with V4L2Writer(DEVICE, W, H, "raw") as w, Feeder(w, [pattern]) as feeder:
        assert _one_capture(tmp_path) == 3 * pattern.size
    assert feeder.error is None


def test_reopen_while_a_reader_stays(tmp_path: Path) -> None:
    """Daemon restart while an app keeps the camera open: the app gets the new frames."""
    assert DEVICE is not None
    first = _pattern_i420()
    second = 255 - first  # a visibly different picture after the restart
    out = tmp_path / "bg.yuv"
    w = V4L2Writer(DEVICE, W, H, "raw")
    feeder = Feeder(w, [first]).__enter__()
    reader = subprocess.Popen(
        ["v4l2-ctl", "-d", DEVICE, "--stream-mmap", "--stream-count=60", f"--stream-to={out}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            (not out.exists() or out.stat().st_size < 3 * first.size)
            and time.monotonic() < deadline
            and reader.poll() is None
        ):
            time.sleep(0.1)
        feeder.__exit__()
        w.close()
        w = V4L2Writer(DEVICE, W, H, "raw")
        feeder = Feeder(w, [second]).__enter__()
        _, err = reader.communicate(timeout=120)
    finally:
        feeder.__exit__()
        w.close()
        if reader.poll() is None:
            reader.kill()
    assert feeder.error is None
    assert reader.returncode == 0, err.decode(errors="replace")[-2000:]
    frames = np.fromfile(out, np.uint8).reshape(-1, first.size)
    assert len(frames) == 60

    def which(f: np.ndarray) -> str:
        if np.array_equal(f, first.reshape(-1)):
            return "first"
        return "second" if np.array_equal(f, second.reshape(-1)) else "other"

    got = {which(f) for f in frames}
    assert got == {"first", "second"}, got


def test_locked_format_is_reported(tmp_path: Path) -> None:
    """While a producer streams to a reader, another size cannot be negotiated: say so."""
    assert DEVICE is not None
    with V4L2Writer(DEVICE, W, H, "raw") as w, Feeder(w, [_pattern_i420()]):
        reader = _capture_in_background(tmp_path, 4.0)
        try:
            time.sleep(2.0)
            with pytest.raises(CameraError, match="locked to 320x240 YU12"):
                V4L2Writer(DEVICE, W * 2, H * 2, "raw").close()
            reader.communicate(timeout=120)
        finally:
            if reader.poll() is None:
                reader.kill()


def test_pipeline_to_real_camera(tmp_path: Path) -> None:
    """The daemon's Pipeline with the default sink: --camera auto finds the device, decoded
    frames reach readers in the right colours, and the "no signal" picture replaces them."""
    from bridge.camera.pipeline import Pipeline
    from bridge.core.reassembly import Frame
    from bridge.pixels.nosignal import no_signal_i420

    assert DEVICE is not None
    bgr = np.empty((H, W, 3), np.uint8)
    bgr[:, : W // 2] = LEFT_RGB[::-1]
    bgr[:, W // 2 :] = RIGHT_RGB[::-1]
    data = simplejpeg.encode_jpeg(bgr, 95, "BGR", "422")
    p = Pipeline(camera="auto", fmt="raw", fps_hint=30.0)
    p.start()
    stop = threading.Event()

    def feed() -> None:
        k = 0
        while not stop.is_set():
            p.submit(Frame(k & 0xFF, data, time.monotonic()))
            k += 1
            time.sleep(1 / 30)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        ff = _read_rgb(tmp_path / "ff.rgb")
        assert ff.returncode == 0, ff.stderr.decode(errors="replace")[-2000:]
        st = p.stats()
        assert st["camera"] == DEVICE and st["camera_error"] is None
        stop.set()
        t.join(5)
        p.signal_lost()
        raw = tmp_path / "ns.yuv"
        ctl = _run(
            ["v4l2-ctl", "-d", DEVICE, "--stream-mmap", "--stream-count=2", f"--stream-to={raw}"]
        )
        assert ctl.returncode == 0, ctl.stderr.decode(errors="replace")
    finally:
        stop.set()
        p.stop()
    rgb = np.fromfile(tmp_path / "ff.rgb", np.uint8).reshape(-1, H, W, 3)
    for frame in rgb:
        assert np.allclose(frame[:, : W // 2 - 8].reshape(-1, 3).mean(axis=0), LEFT_RGB, atol=8)
        assert np.allclose(frame[:, W // 2 + 8 :].reshape(-1, 3).mean(axis=0), RIGHT_RGB, atol=8)
    frames = np.fromfile(raw, np.uint8).reshape(-1, W * H * 3 // 2)
    assert np.array_equal(frames[-1], no_signal_i420(W, H).reshape(-1))


def test_resize_without_a_reader_switches_the_device(tmp_path: Path) -> None:
    """No app holds the camera: resize() hands over and the device takes the new size."""
    assert DEVICE is not None
    big = np.ascontiguousarray(cv2.resize(_pattern_i420(), (W * 2, H * 3)))  # any 640x480 I420
    with V4L2Writer(DEVICE, W, H, "raw", adopt_locked=True) as w:
        with Feeder(w, [_pattern_i420()]) as feeder:
            assert _one_capture(tmp_path) == 3 * W * H * 3 // 2
        assert feeder.error is None
        assert w.resize(W * 2, H * 2) is True and w.size == (W * 2, H * 2)
        with Feeder(w, [big]) as feeder:
            assert _one_capture(tmp_path) == 3 * big.size
        assert feeder.error is None


def _levels(bgr: tuple[int, int, int]) -> tuple[float, float, float]:
    """BT.601 limited-range Y, U, V of one colour, as OpenCV (not our code) computes them."""
    img = np.full((4, 4, 3), bgr, np.uint8)
    i420 = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    return float(i420[:16].mean()), float(i420[16:20].mean()), float(i420[20:24].mean())


def _runs(kinds: list[str]) -> str:
    """["A", "A", "B"] -> "A x2, B x1": a readable picture of a whole capture."""
    out: list[str] = []
    for k in kinds:
        if out and out[-1].rsplit(" x", 1)[0] == k:
            name, n = out[-1].rsplit(" x", 1)
            out[-1] = f"{name} x{int(n) + 1}"
        else:
            out.append(f"{k} x1")
    return ", ".join(out)


def test_reader_attached_throughout_size_changes_keeps_getting_fitted_pictures(
    tmp_path: Path,
) -> None:
    """Issue 10 item 5, on the real module: a reader streams the whole time while the stream
    gets one corrupt frame whose SOF claims 1280x720, then changes to 640x360, then is rotated
    90 degrees by a reload. The reader never stops receiving buffers; the camera stays at the
    size the reader negotiated and shows each new picture fitted into it (black bars)."""
    from bridge.camera.pipeline import Pipeline
    from bridge.core.reassembly import Frame

    assert DEVICE is not None
    a_bgr = np.empty((H, W, 3), np.uint8)
    a_bgr[:, : W // 2] = LEFT_RGB[::-1]
    a_bgr[:, W // 2 :] = RIGHT_RGB[::-1]
    a_jpeg = simplejpeg.encode_jpeg(a_bgr, 95, "BGR", "422")
    sof = a_jpeg.index(b"\xff\xc0")
    corrupt = a_jpeg[: sof + 5] + (720).to_bytes(2, "big") + (1280).to_bytes(2, "big")
    corrupt += a_jpeg[sof + 9 :]
    b_colour = (40, 200, 40)  # BGR: a green 640x360 picture
    b_jpeg = simplejpeg.encode_jpeg(np.full((360, 640, 3), b_colour, np.uint8), 95, "BGR", "422")
    total = 60
    out = tmp_path / "reader.yuv"
    frame_bytes = W * H * 3 // 2
    p = Pipeline(camera="auto", fmt="raw", fps_hint=30.0)
    p.start()
    reader: subprocess.Popen | None = None
    try:
        k = 0
        # Three frames shown; or, where the module counts readers (0.14+), one frame shown and
        # decoding then idle because nobody watches yet: the reader below ends that.
        while p.stats()["shown"] < 3 and not (p.stats()["shown"] >= 1 and p.stats()["idle"]):
            p.submit(Frame(k & 0xFF, a_jpeg, time.monotonic()))
            k += 1
            time.sleep(0.05)
            assert k < 2000, p.stats()
        reader = subprocess.Popen(
            [
                "v4l2-ctl",
                "-d",
                DEVICE,
                "--stream-mmap",
                f"--stream-count={total}",
                f"--stream-to={out}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        sent_corrupt = rotated = False
        deadline = time.monotonic() + 300
        while reader.poll() is None and time.monotonic() < deadline:
            got = out.stat().st_size // frame_bytes if out.exists() else 0
            data = a_jpeg
            if got >= 8 and not sent_corrupt:
                data, sent_corrupt = corrupt, True
            elif 15 <= got < 35:
                data = b_jpeg
            elif got >= 35 and not rotated:
                p.set_transform(rotate=90, flip="none")  # what a reload does
                rotated = True
            p.submit(Frame(k & 0xFF, data, time.monotonic()))
            k += 1
            time.sleep(1 / 20)
        _, err = reader.communicate(timeout=60)
        camera_size = p.stats()["camera_size"]
    finally:
        p.stop()
        if reader is not None and reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err.decode(errors="replace")[-2000:]
    assert camera_size == (W, H)
    frames = np.fromfile(out, np.uint8)
    assert frames.size == total * frame_bytes, "the reader stopped receiving buffers"
    frames = frames.reshape(total, frame_bytes).astype(float)
    a_ref = _pattern_i420()[:H].astype(float)
    left, right = _levels(LEFT_RGB[::-1])[0], _levels(RIGHT_RGB[::-1])[0]
    green = _levels(b_colour)

    def kind(f: np.ndarray) -> str:
        y = f[: W * H].reshape(H, W)
        v = f[W * H + W * H // 4 :].reshape(H // 2, W // 2)
        if np.abs(y - a_ref).mean() < 10:
            return "A"
        # 640x360 into 320x240: 320x180 with 30 black rows above and below; green (its chroma
        # too, so a grey picture with the same bars, as the corrupt frame decodes, is not it).
        bars = max(y[:28].mean(), y[212:].mean())
        body, body_v = y[34:206].mean(), v[18:102].mean()
        if bars < 24 and abs(body - green[0]) < 12 and abs(body_v - green[2]) < 12:
            return "B fitted"
        # A rotated (240x320) into 320x240: 180x240 with 70 black columns left and right;
        # its left (red) half is now on top.
        bars = max(y[:, :68].mean(), y[:, 252:].mean())
        top, bottom = y[4:116, 74:246].mean(), y[124:236, 74:246].mean()
        if bars < 24 and abs(top - left) < 12 and abs(bottom - right) < 12:
            return "A rotated, fitted"
        return "other"

    kinds = [kind(f) for f in frames]
    seen = _runs(kinds)
    known = [k for k in kinds if k != "other"]
    order = [k for i, k in enumerate(known) if i == 0 or known[i - 1] != k]
    assert order == ["A", "B fitted", "A rotated, fitted"], seen
    # Torn buffers at a switch (the producer overwrote a mapped buffer) and the corrupt frame
    # may each show once; everything else is one of the three pictures.
    assert kinds.count("other") <= 4, seen
    assert kinds.count("B fitted") >= 10 and kinds.count("A rotated, fitted") >= 10, seen
