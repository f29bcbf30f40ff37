# SPDX-License-Identifier: GPL-3.0-or-later
"""Fitting a picture into a camera of another size: aspect kept, even sides, black bars."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.pixels.fit import BLACK_C, BLACK_Y, Fitter, fitted_area, full_range_planes


@pytest.mark.parametrize(
    ("src", "cam", "area"),
    [
        ((640, 480), (320, 240), (0, 0, 320, 240)),  # same aspect: no bars
        ((640, 360), (320, 240), (0, 30, 320, 180)),  # wider: bars above and below
        ((240, 320), (320, 240), (70, 0, 180, 240)),  # rotated: bars left and right
        ((1280, 720), (640, 480), (0, 60, 640, 360)),
        ((4000, 10), (320, 240), (0, 118, 320, 2)),  # never thinner than one chroma row
    ],
)
def test_fitted_area(src: tuple[int, int], cam: tuple[int, int], area: tuple[int, ...]) -> None:
    got = fitted_area(*src, *cam)
    assert got == area
    assert all(v % 2 == 0 for v in got)


def _i420(w: int, h: int, y: int, u: int, v: int) -> np.ndarray:
    buf = np.empty((h * 3 // 2, w), np.uint8).reshape(-1)
    buf[: w * h], buf[w * h : w * h * 5 // 4], buf[w * h * 5 // 4 :] = y, u, v
    return buf.reshape(h * 3 // 2, w)


def test_fit_letterboxes_every_plane() -> None:
    src = _i420(640, 360, 200, 60, 220)
    out = Fitter().fit(src, (640, 360), (320, 240)).reshape(-1)
    y = out[: 320 * 240].reshape(240, 320)
    u = out[320 * 240 : 320 * 240 * 5 // 4].reshape(120, 160)
    v = out[320 * 240 * 5 // 4 :].reshape(120, 160)
    assert (y[:30] == BLACK_Y).all() and (y[210:] == BLACK_Y).all() and (y[30:210] == 200).all()
    assert (u[:15] == BLACK_C).all() and (u[15:105] == 60).all() and (u[105:] == BLACK_C).all()
    assert (v[:15] == BLACK_C).all() and (v[15:105] == 220).all()


def test_fit_is_nearest_neighbour_and_the_same_size_is_untouched() -> None:
    src = np.arange(8 * 4 * 3 // 2, dtype=np.uint8).reshape(6, 8)
    fitter = Fitter()
    assert fitter.fit(src, (8, 4), (8, 4)) is src
    out = fitter.fit(src, (8, 4), (4, 2)).reshape(-1)
    assert list(out[:8]) == [0, 2, 4, 6, 16, 18, 20, 22]  # every other pixel of rows 0 and 2


def test_full_range_planes_undo_the_limited_range() -> None:
    y, u, v = full_range_planes(_i420(4, 2, 16, 128, 240), 4, 2)
    assert (y == 0).all() and (u == 128).all() and (v == 255).all()
    y, _, _ = full_range_planes(_i420(4, 2, 235, 16, 16), 4, 2)
    assert (y == 255).all()
