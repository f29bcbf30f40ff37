# SPDX-License-Identifier: GPL-3.0-or-later
"""Pixel maths on I420 (YU12) pictures: plane views, the full->limited range fix, BGR->I420.

JPEG stores full-range YCbCr; V4L2 consumers expect BT.601 *limited* range (Y 16..235, chroma
16..240), so every decoded plane is rescaled. With OpenCV importable this is
``cv2.convertScaleAbs``; without it (the Debian package) it is exact integer arithmetic in numpy
on a reused uint16 scratch buffer: ``(x * 219 + 16 * 255 + 127) // 255`` equals the rounded float
formula for every input (no ties exist), the same values as convertScaleAbs. Of the ways tried
(this, a ``numpy.take`` table, ``cv2.LUT``) it was the fastest without OpenCV; the benchmark's
"raw, Debian package" row measures the path as shipped.
"""

from __future__ import annotations

import numpy as np

from bridge.pixels.optional import cv2

# Full range -> BT.601 limited range: out = x * alpha + beta.
Y_ALPHA = 219.0 / 255.0
Y_BETA = 16.0
C_ALPHA = 224.0 / 255.0
C_BETA = 128.0 - 128.0 * C_ALPHA
# The same in integers: out = (x * mul + add) // 255, with rounding folded into add.
_Y_INT = (219, 16 * 255 + 127)
_C_INT = (224, 128 * 31 + 127)  # beta * 255 = 128 * (255 - 224), exactly


def backend() -> str:
    """Which implementation the range fix and colour conversion use here."""
    return "opencv" if cv2 is not None else "numpy"


def planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a (h*3/2, w) I420 buffer."""
    flat = i420.reshape(-1)
    ysize = width * height
    cw, ch = width // 2, height // 2
    return (
        flat[:ysize].reshape(height, width),
        flat[ysize : ysize + cw * ch].reshape(ch, cw),
        flat[ysize + cw * ch : ysize + 2 * cw * ch].reshape(ch, cw),
    )


class RangeFix:
    """Full -> limited range, plane by plane, into a destination that may be the source itself.

    Holds the numpy path's scratch buffer so that no frame allocates; one per thread.
    """

    def __init__(self) -> None:
        self._scratch = np.empty(0, np.uint16)

    def luma(self, src: np.ndarray, dst: np.ndarray) -> None:
        self._apply(src, dst, Y_ALPHA, Y_BETA, _Y_INT)

    def chroma(self, src: np.ndarray, dst: np.ndarray) -> None:
        self._apply(src, dst, C_ALPHA, C_BETA, _C_INT)

    def _apply(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        alpha: float,
        beta: float,
        ints: tuple[int, int],
    ) -> None:
        if cv2 is not None:
            cv2.convertScaleAbs(src, dst=dst, alpha=alpha, beta=beta)
            return
        if self._scratch.size < src.size:
            self._scratch = np.empty(src.size, np.uint16)
        tmp = self._scratch[: src.size].reshape(src.shape)
        mul, add = ints
        np.multiply(src, mul, out=tmp, dtype=np.uint16)  # <= 255 * 224 + add < 65536
        np.add(tmp, add, out=tmp)
        np.floor_divide(tmp, 255, out=tmp)
        np.copyto(dst, tmp, casting="unsafe")


def bgr_to_i420(bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Limited-range BT.601 I420 of an even-sized BGR picture (chroma averaged over 2x2)."""
    h, w = bgr.shape[:2]
    if out is None:
        out = np.empty((h * 3 // 2, w), np.uint8)
    if cv2 is not None:
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=out)
        return out
    f = bgr.astype(np.float32)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    y, u, v = planes(out, w, h)
    np.copyto(y, np.rint(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255), casting="unsafe")
    # Average 2x2 blocks first: the conversion is linear, so this equals averaging the chroma.
    quad = f.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    qb, qg, qr = quad[..., 0], quad[..., 1], quad[..., 2]
    np.copyto(u, np.rint(128 + (-37.797 * qr - 74.203 * qg + 112.0 * qb) / 255), casting="unsafe")
    np.copyto(v, np.rint(128 + (112.0 * qr - 93.786 * qg - 18.214 * qb) / 255), casting="unsafe")
    return out
