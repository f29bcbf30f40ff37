# SPDX-License-Identifier: GPL-3.0-or-later
"""Fit an I420 picture into a camera of another size: scaled to keep its aspect, black bars.

Why: while an app holds the virtual camera, v4l2loopback keeps the format it negotiated (0.12
silently, newer versions with EBUSY). When the stream changes size (another resolution, `rotate
90` by reload, one corrupt frame whose SOF claims another size) the daemon keeps writing at the
size the device has and fits each picture into it, so the app never freezes.

Nearest-neighbour scaling with numpy index arrays, computed once per (source, camera) size pair
and reused: cheap enough per frame, and a fallback until the device can be switched, not the
normal path. Bars are BT.601 limited-range black (Y 16, Cb/Cr 128).
"""

from __future__ import annotations

import numpy as np

BLACK_Y = 16
BLACK_C = 128


def fitted_area(sw: int, sh: int, dw: int, dh: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the picture inside the camera: even numbers, aspect kept."""
    scale = min(dw / sw, dh / sh)
    iw = min(dw, max(2, round(sw * scale) & ~1))
    ih = min(dh, max(2, round(sh * scale) & ~1))
    return ((dw - iw) // 2) & ~1, ((dh - ih) // 2) & ~1, iw, ih


def _planes(buf: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = buf.reshape(-1)
    ys, cs = w * h, (w // 2) * (h // 2)
    return (
        flat[:ys].reshape(h, w),
        flat[ys : ys + cs].reshape(h // 2, w // 2),
        flat[ys + cs : ys + 2 * cs].reshape(h // 2, w // 2),
    )


class Fitter:
    """Letterboxes/pillarboxes I420 pictures into a fixed camera size; reuses its buffers.

    Not thread-safe: one per worker thread (the pipeline's).
    """

    def __init__(self) -> None:
        self._key: tuple[int, int, int, int] | None = None
        self._out = np.empty((0, 0), np.uint8)
        self._index: list[tuple[np.ndarray, np.ndarray]] = []
        self._area = (0, 0, 0, 0)

    def _prepare(self, sw: int, sh: int, dw: int, dh: int) -> None:
        x, y, iw, ih = fitted_area(sw, sh, dw, dh)
        self._area = (x, y, iw, ih)
        self._index = []
        for div in (1, 2, 2):  # Y at full size, U and V at half
            rows = (np.arange(ih // div) * (sh // div)) // (ih // div)
            cols = (np.arange(iw // div) * (sw // div)) // (iw // div)
            self._index.append((rows[:, None], cols[None, :]))
        self._out = np.empty((dh * 3 // 2, dw), np.uint8)
        oy, ou, ov = _planes(self._out, dw, dh)
        oy.fill(BLACK_Y)
        ou.fill(BLACK_C)
        ov.fill(BLACK_C)
        self._key = (sw, sh, dw, dh)

    def fit(self, i420: np.ndarray, size: tuple[int, int], into: tuple[int, int]) -> np.ndarray:
        """The picture of ``size`` (w, h) fitted into ``into``: a reused (h*3/2, w) buffer."""
        if size == into:
            return i420
        key = (*size, *into)
        if key != self._key:
            self._prepare(*key)
        x, y, iw, ih = self._area
        dst = _planes(self._out, *into)
        src = _planes(i420, *size)
        for k, (s, d, (rows, cols)) in enumerate(zip(src, dst, self._index, strict=True)):
            div = 1 if k == 0 else 2
            d[y // div : (y + ih) // div, x // div : (x + iw) // div] = s[rows, cols]
        return self._out


# Limited-range (what the decoder gives the camera) back to JPEG's full range, for re-encoding.
_Y_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_C_FULL = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)


def full_range_planes(
    i420: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range Y, Cb, Cr planes (new arrays) of a limited-range I420 picture."""
    y, u, v = _planes(i420, width, height)
    return _Y_FULL[y], _C_FULL[u], _C_FULL[v]
