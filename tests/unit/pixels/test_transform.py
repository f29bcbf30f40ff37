# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotate/flip on I420 planes, on both pixel paths (OpenCV and numpy), against numpy's rot90."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.pixels.transform import Transform


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
def test_transform_matches_numpy(pixel_path: str, rotate: int, flip: str) -> None:
    w, h = 64, 48
    src = _i420(w, h)
    t = Transform(rotate, flip)
    out = t.apply(src, w, h)
    ow, oh = t.output_size(w, h)
    assert (ow, oh) == ((h, w) if rotate in (90, 270) else (w, h))
    assert out.shape == (oh * 3 // 2, ow)
    for got, plane in zip(_split(out, ow, oh), _split(src, w, h), strict=True):
        assert np.array_equal(got, _expected(plane, rotate, flip))


def test_rotate_90_clockwise_moves_the_top_left_corner_to_the_top_right(pixel_path: str) -> None:
    """An orientation check that does not share np.rot90's convention with the code."""
    w, h = 8, 4
    src = np.zeros((h * 3 // 2, w), np.uint8)
    src[0, 0] = 255  # top-left luma pixel
    out = Transform(90, "none").apply(src, w, h)
    y = out.reshape(-1)[: w * h].reshape(w, h)  # now h wide, w tall
    assert y[0, h - 1] == 255 and int(y.sum()) == 255


def test_transform_reuses_its_buffer(pixel_path: str) -> None:
    t = Transform(90, "horizontal")
    a = t.apply(_i420(32, 16, 1), 32, 16)
    b = t.apply(_i420(32, 16, 2), 32, 16)
    assert a is b


@pytest.mark.parametrize(("rotate", "flip"), [(45, "none"), (0, "diagonal"), (-90, "none")])
def test_transform_rejects_bad_values(rotate: int, flip: str) -> None:
    with pytest.raises(ConfigError):
        Transform(rotate, flip)
