# SPDX-License-Identifier: GPL-3.0-or-later
"""Device discovery on a fake sysfs/dev tree, rotate/flip on I420 planes, the no-signal picture."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg

from bridge.camera import (
    Transform,
    find_camera,
    list_loopback_devices,
    no_signal_bgr,
    no_signal_i420,
    no_signal_jpeg,
)
from bridge.errors import CameraError, ConfigError
from bridge.v4l2 import CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT, DeviceInfo


class FakeTree:
    """/sys/class/video4linux and /dev stand-ins."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys"
        self.dev = root / "dev"
        self.module = root / "module"
        self.sys.mkdir()
        self.dev.mkdir()

    def add(self, n: int, label: str, loopback: bool = True, mode: int = 0o660) -> str:
        entry = self.sys / f"video{n}"
        entry.mkdir()
        (entry / "name").write_text(label + "\n")
        if loopback:
            (entry / "max_openers").write_text("10\n")
        node = self.dev / f"video{n}"
        node.write_bytes(b"")
        node.chmod(mode)
        return str(node)

    def find(self, spec: str = "auto", caps: dict[str, int] | None = None) -> str | None:
        def query(path: str) -> DeviceInfo | None:
            if caps is None or path not in caps:
                return None
            if caps[path] < 0:
                raise OSError(-caps[path], os.strerror(-caps[path]))
            return DeviceInfo("v4l2 loopback", "x", caps[path])

        return find_camera(spec, str(self.sys), str(self.dev), str(self.module), query)


@pytest.fixture
def tree(tmp_path: Path) -> FakeTree:
    return FakeTree(tmp_path)


def test_none_means_no_camera(tree: FakeTree) -> None:
    assert tree.find("none") is None


def test_prefers_borescope_label_even_when_busy(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    b = tree.add(2, "Dummy video device (0x0000)")
    c = tree.add(7, "Borescope")
    assert [d.path for d in list_loopback_devices(str(tree.sys), str(tree.dev))] == [b, c]
    assert tree.find(caps={c: CAP_VIDEO_CAPTURE}) == c


def test_first_free_loopback_without_label(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    busy = tree.add(3, "OBS Virtual Camera")
    free = tree.add(10, "Dummy video device (0x0001)")
    # video3 announces CAPTURE only: exclusive_caps=1 with a producer attached.
    assert tree.find(caps={busy: CAP_VIDEO_CAPTURE, free: CAP_VIDEO_OUTPUT}) == free
    # numeric order, not string order: video3 before video10 when both are free
    assert tree.find(caps={busy: CAP_VIDEO_OUTPUT, free: CAP_VIDEO_OUTPUT}) == busy


def test_all_busy_says_so(tree: FakeTree) -> None:
    busy = tree.add(3, "OBS Virtual Camera")
    with pytest.raises(CameraError, match="in use by another producer"):
        tree.find(caps={busy: CAP_VIDEO_CAPTURE})


def test_no_module_says_what_to_run(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    with pytest.raises(CameraError) as exc:
        tree.find()
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=Borescope" in str(exc.value)


def test_module_without_devices(tree: FakeTree) -> None:
    tree.module.mkdir()
    with pytest.raises(CameraError, match="loaded but has no device"):
        tree.find()


def test_permission_denied_names_the_group(tree: FakeTree) -> None:
    if os.geteuid() == 0:
        path = tree.add(4, "Dummy video device (0x0000)")
        with pytest.raises(CameraError, match="usermod -aG video"):
            tree.find(caps={path: -errno.EACCES})
    else:
        tree.add(4, "Borescope", mode=0o000)
        with pytest.raises(CameraError, match="usermod -aG video"):
            tree.find()


def test_explicit_path(tree: FakeTree) -> None:
    path = tree.add(5, "whatever")
    assert tree.find(path) == path
    with pytest.raises(CameraError, match="modprobe v4l2loopback"):
        tree.find(str(tree.dev / "video99"))


# -- Transform ---------------------------------------------------------------------------------


def _i420(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)


def _split(buf: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    flat = buf.reshape(-1)
    q = (w // 2) * (h // 2)
    return [
        flat[: w * h].reshape(h, w),
        flat[w * h : w * h + q].reshape(h // 2, w // 2),
        flat[w * h + q : w * h + 2 * q].reshape(h // 2, w // 2),
    ]


def _expected(plane: np.ndarray, rotate: int, flip: str) -> np.ndarray:
    out = np.rot90(plane, k=-(rotate // 90))  # clockwise
    if flip == "horizontal":
        out = out[:, ::-1]
    elif flip == "vertical":
        out = out[::-1, :]
    return out


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
@pytest.mark.parametrize("flip", ["none", "horizontal", "vertical"])
def test_transform_matches_numpy(rotate: int, flip: str) -> None:
    w, h = 64, 48
    src = _i420(w, h)
    t = Transform(rotate, flip)
    out = t.apply(src, w, h)
    ow, oh = t.output_size(w, h)
    assert (ow, oh) == ((h, w) if rotate in (90, 270) else (w, h))
    assert out.shape == (oh * 3 // 2, ow)
    for got, plane in zip(_split(out, ow, oh), _split(src, w, h), strict=True):
        assert np.array_equal(got, _expected(plane, rotate, flip))


def test_transform_reuses_its_buffer() -> None:
    t = Transform(90, "horizontal")
    a = t.apply(_i420(32, 16, 1), 32, 16)
    b = t.apply(_i420(32, 16, 2), 32, 16)
    assert a is b


@pytest.mark.parametrize(("rotate", "flip"), [(45, "none"), (0, "diagonal"), (-90, "none")])
def test_transform_rejects_bad_values(rotate: int, flip: str) -> None:
    with pytest.raises(ConfigError):
        Transform(rotate, flip)


# -- no signal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (1920, 1080), (320, 240)])
def test_no_signal_picture(w: int, h: int) -> None:
    bgr = no_signal_bgr(w, h)
    assert bgr.shape == (h, w, 3)
    # dark background with bright text in the middle band, nothing drawn at the edges
    assert bgr[: h // 8].max() < 80
    bright = bgr.max(axis=2) > 200
    rows = np.nonzero(bright.any(axis=1))[0]
    assert rows.size > 0 and h * 0.25 < rows.mean() < h * 0.75
    cols = np.nonzero(bright.any(axis=0))[0]
    assert cols.min() > 0 and cols.max() < w - 1  # the text fits
    i420 = no_signal_i420(w, h)
    assert i420.shape == (h * 3 // 2, w)
    jpeg = no_signal_jpeg(w, h)
    back = simplejpeg.decode_jpeg(jpeg, "BGR")
    assert back.shape == (h, w, 3)
    assert cv2.absdiff(back, bgr).mean() < 3
