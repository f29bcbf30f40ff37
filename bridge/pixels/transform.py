# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotate and flip (``--rotate``, ``--flip``) on I420 pictures, plane by plane, no colour maths.

With OpenCV importable each plane goes through ``cv2.rotate``/``cv2.flip``; without it (the Debian
package) the rotation and the mirror are one strided numpy view, copied once into the reused
output. A 90-degree turn is where numpy is much slower than OpenCV (its transposed read
defeats the cache); a half turn and the flips cost about the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bridge.errors import ConfigError
from bridge.pixels.optional import cv2
from bridge.pixels.yuv import planes

ROTATIONS = (0, 90, 180, 270)
FLIPS = ("none", "horizontal", "vertical")


def oriented_view(plane: np.ndarray, rotate: int, flip: str) -> np.ndarray:
    """A view of ``plane`` rotated clockwise by ``rotate`` degrees, then mirrored (no copy)."""
    view = np.rot90(plane, k=-(rotate // 90))
    if flip == "horizontal":
        return view[:, ::-1]
    if flip == "vertical":
        return view[::-1, :]
    return view


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
        if self.rotate not in ROTATIONS:
            raise ConfigError(f"rotate: {self.rotate!r} is not one of 0, 90, 180, 270")
        if self.flip not in FLIPS:
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
        src = planes(i420, width, height)
        dst = planes(self._out, ow, oh)
        for s, d in zip(src, dst, strict=True):
            if cv2 is None:
                np.copyto(d, oriented_view(s, self.rotate, self.flip))
            else:
                self._apply_cv2(s, d)
        return self._out

    def _apply_cv2(self, s: np.ndarray, d: np.ndarray) -> None:
        assert cv2 is not None
        if self.rotate and self.flip != "none":
            tmp = self._tmp[: d.size].reshape(d.shape)
            cv2.rotate(s, _cv2_rotate_code(self.rotate), dst=tmp)
            cv2.flip(tmp, _FLIP_CODES[self.flip], dst=d)
        elif self.rotate:
            cv2.rotate(s, _cv2_rotate_code(self.rotate), dst=d)
        else:
            cv2.flip(s, _FLIP_CODES[self.flip], dst=d)


_FLIP_CODES = {"horizontal": 1, "vertical": 0}


def _cv2_rotate_code(rotate: int) -> int:
    assert cv2 is not None
    return {
        90: cv2.ROTATE_90_CLOCKWISE,
        180: cv2.ROTATE_180,
        270: cv2.ROTATE_90_COUNTERCLOCKWISE,
    }[rotate]
