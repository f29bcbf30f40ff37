# SPDX-License-Identifier: GPL-3.0-or-later
"""Which v4l2loopback device to write to, the "no signal" picture, and rotate/flip.

Device choice (``--camera auto``): the v4l2loopback device whose card label is "Borescope" (ours,
however it was left by a previous producer), else the first v4l2loopback device that no other
producer is feeding. v4l2loopback devices are recognised from sysfs without opening them: they are
virtual video4linux devices with a ``max_openers`` attribute, and ``name`` holds the card label.
With ``exclusive_caps=1`` a device that announces CAPTURE but not OUTPUT has a producer attached.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import simplejpeg

from .errors import CameraError, ConfigError
from .v4l2 import GROUP_ADVICE, MODPROBE_ADVICE, DeviceInfo, query_capability

log = logging.getLogger(__name__)

CARD_LABEL = "Borescope"
SYSFS_ROOT = "/sys/class/video4linux"
DEV_ROOT = "/dev"
MODULE_DIR = "/sys/module/v4l2loopback"
NO_SIGNAL_TEXT = ("No signal", "waiting for borescope")
DEFAULT_SIZE = (640, 480)

_VIDEO_RE = re.compile(r"^video(\d+)$")


@dataclass(frozen=True, slots=True)
class LoopbackDevice:
    path: str
    label: str
    number: int


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def list_loopback_devices(
    sysfs_root: str = SYSFS_ROOT, dev_root: str = DEV_ROOT
) -> list[LoopbackDevice]:
    """All v4l2loopback devices, lowest number first (identified through sysfs only)."""
    try:
        names = os.listdir(sysfs_root)
    except OSError:
        return []
    found = []
    for name in names:
        m = _VIDEO_RE.match(name)
        if not m:
            continue
        entry = os.path.join(sysfs_root, name)
        if not os.path.exists(os.path.join(entry, "max_openers")):
            continue  # a real camera or another driver
        label = _read(os.path.join(entry, "name")) or ""
        found.append(LoopbackDevice(os.path.join(dev_root, name), label, int(m.group(1))))
    return sorted(found, key=lambda d: d.number)


def _query(path: str) -> DeviceInfo | None:
    """QUERYCAP on an open that neither reads nor writes; None when it cannot be asked."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return query_capability(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _no_device_error(module_dir: str) -> CameraError:
    if os.path.isdir(module_dir):
        return CameraError(
            "the v4l2loopback module is loaded but has no device: reload it with "
            f"`sudo modprobe -r v4l2loopback && {MODPROBE_ADVICE}`"
        )
    return CameraError(
        f"no virtual camera: the v4l2loopback module is not loaded; run `{MODPROBE_ADVICE}`"
    )


def find_camera(
    spec: str,
    sysfs_root: str = SYSFS_ROOT,
    dev_root: str = DEV_ROOT,
    module_dir: str = MODULE_DIR,
    query: Callable[[str], DeviceInfo | None] = _query,
) -> str | None:
    """Resolve ``--camera``: "auto", "none" or a device path -> a path, or None for no camera.

    Raises CameraError whose message says what to run (load the module, join the group).
    """
    if spec == "none":
        return None
    if spec != "auto":
        if not os.path.exists(spec):
            raise CameraError(
                f"{spec} does not exist: run `{MODPROBE_ADVICE}` "
                "(add video_nr=N to get /dev/videoN)"
            )
        if not os.access(spec, os.R_OK | os.W_OK):
            raise CameraError(f"no permission to open {spec}: {GROUP_ADVICE}")
        return spec
    devices = list_loopback_devices(sysfs_root, dev_root)
    if not devices:
        raise _no_device_error(module_dir)
    for dev in devices:
        if dev.label == CARD_LABEL:
            if not os.access(dev.path, os.R_OK | os.W_OK):
                raise CameraError(f"no permission to open {dev.path}: {GROUP_ADVICE}")
            return dev.path
    denied = []
    busy = []
    for dev in devices:
        try:
            info = query(dev.path)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                denied.append(dev.path)
            else:
                busy.append(dev.path)
            continue
        if info is not None and info.has_capture and not info.has_output:
            busy.append(dev.path)  # exclusive_caps=1 and another producer is attached
            continue
        return dev.path
    if denied:
        raise CameraError(f"no permission to open {', '.join(denied)}: {GROUP_ADVICE}")
    raise CameraError(
        f"every v4l2loopback device is in use by another producer ({', '.join(busy)}); add one "
        f"for us: `sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback devices=2 "
        f"exclusive_caps=1,1 card_label=Borescope,Other` or pick one with --camera /dev/videoN"
    )


# -- rotate / flip -----------------------------------------------------------------------------

_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}
_FLIP_CODES = {"horizontal": 1, "vertical": 0}


@dataclass
class Transform:
    """Rotate clockwise by ``rotate`` degrees, then mirror (``flip``), on I420 pictures.

    Each plane is transformed on its own into preallocated buffers (no colour conversion).
    """

    rotate: int = 0
    flip: str = "none"
    _out: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint8), repr=False)
    _tmp: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint8), repr=False)

    def __post_init__(self) -> None:
        if self.rotate not in (0, 90, 180, 270):
            raise ConfigError(f"rotate: {self.rotate!r} is not one of 0, 90, 180, 270")
        if self.flip not in ("none", "horizontal", "vertical"):
            raise ConfigError(f"flip: {self.flip!r} is not one of none, horizontal, vertical")

    @property
    def identity(self) -> bool:
        return self.rotate == 0 and self.flip == "none"

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.rotate in (90, 270) else (width, height)

    def apply(self, i420: np.ndarray, width: int, height: int) -> np.ndarray:
        """The transformed I420 picture (a reused buffer); the input itself when identity."""
        if self.identity:
            return i420
        ow, oh = self.output_size(width, height)
        if self._out.shape != (oh * 3 // 2, ow):
            self._out = np.empty((oh * 3 // 2, ow), np.uint8)
            self._tmp = np.empty(oh * ow, np.uint8)
        src = _planes(i420, width, height)
        dst = _planes(self._out, ow, oh)
        for s, d in zip(src, dst, strict=True):
            if self.rotate and self.flip != "none":
                tmp = self._tmp[: d.size].reshape(d.shape)
                cv2.rotate(s, _ROTATE_CODES[self.rotate], dst=tmp)
                cv2.flip(tmp, _FLIP_CODES[self.flip], dst=d)
            elif self.rotate:
                cv2.rotate(s, _ROTATE_CODES[self.rotate], dst=d)
            else:
                cv2.flip(s, _FLIP_CODES[self.flip], dst=d)
        return self._out


def _planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a (h*3/2, w) I420 buffer."""
    flat = i420.reshape(-1)
    ysize = width * height
    cw, ch = width // 2, height // 2
    return (
        flat[:ysize].reshape(height, width),
        flat[ysize : ysize + cw * ch].reshape(ch, cw),
        flat[ysize + cw * ch : ysize + 2 * cw * ch].reshape(ch, cw),
    )


# -- "no signal" picture -----------------------------------------------------------------------


def no_signal_bgr(width: int, height: int) -> np.ndarray:
    """A dark picture with "No signal / waiting for borescope" in large, centred letters.

    Hershey fonts are ASCII-only, so the dash of "No signal — waiting for borescope" becomes a
    line break: two lines read better on small previews anyway.
    """
    img = np.full((height, width, 3), (48, 32, 24), np.uint8)  # dark blue-grey (BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    big, small = NO_SIGNAL_TEXT
    big_scale = max(0.5, width / 640 * 1.6)
    small_scale = big_scale * 0.55
    thick_big = max(1, round(big_scale * 2))
    thick_small = max(1, round(small_scale * 2))
    (bw, bh), _ = cv2.getTextSize(big, font, big_scale, thick_big)
    (sw, sh), _ = cv2.getTextSize(small, font, small_scale, thick_small)
    gap = bh // 2
    top = (height - (bh + gap + sh)) // 2
    cv2.putText(
        img,
        big,
        ((width - bw) // 2, top + bh),
        font,
        big_scale,
        (240, 240, 240),
        thick_big,
        cv2.LINE_AA,
    )
    cv2.putText(
        img,
        small,
        ((width - sw) // 2, top + bh + gap + sh),
        font,
        small_scale,
        (190, 200, 210),
        thick_small,
        cv2.LINE_AA,
    )
    return img


def no_signal_i420(width: int, height: int) -> np.ndarray:
    """The "no signal" picture as limited-range I420 (what the raw camera format carries)."""
    return cv2.cvtColor(no_signal_bgr(width & ~1, height & ~1), cv2.COLOR_BGR2YUV_I420)


def no_signal_jpeg(width: int, height: int) -> bytes:
    """The "no signal" picture as a JPEG (for MJPEG output)."""
    return simplejpeg.encode_jpeg(no_signal_bgr(width, height), 85, "BGR", "422")
