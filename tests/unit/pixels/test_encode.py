# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG encoding without OpenCV or simplejpeg: full-range 4:2:0 planes through libturbojpeg."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.pixels import optional
from bridge.pixels.decode import Decoder
from bridge.pixels.encode import encode_jpeg_yuv_planes
from bridge.pixels.turbojpeg import load_turbojpeg
from bridge.pixels.yuv import bgr_to_i420, planes
from bridge.sim.scene import render_frame


def _full_range_planes(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range planes of a photo-like picture (what JPEG stores)."""
    y, u, v = planes(bgr_to_i420(render_frame(3, 8, w, h, 30.0)), w, h)
    full_y = np.clip(np.rint((y.astype(np.float64) - 16) * 255 / 219), 0, 255).astype(np.uint8)
    full_u = np.clip(np.rint((u - 128.0) * 255 / 224 + 128), 0, 255).astype(np.uint8)
    full_v = np.clip(np.rint((v - 128.0) * 255 / 224 + 128), 0, 255).astype(np.uint8)
    return full_y, full_u, full_v


def test_planes_round_trip_through_the_decoder() -> None:
    if load_turbojpeg() is None:
        pytest.skip("libturbojpeg0 is not installed")
    w, h = 320, 240
    y, u, v = _full_range_planes(w, h)
    jpeg = encode_jpeg_yuv_planes(y, u, v, 90)
    back = Decoder().decode(jpeg)  # limited range again
    want = np.concatenate([(y * (219 / 255) + 16).ravel(), (u * (224 / 255) + 15.56).ravel()])
    want = np.concatenate([want, (v * (224 / 255) + 15.56).ravel()])
    assert np.abs(back.reshape(-1) - want).mean() < 2.0
    if optional.simplejpeg is not None:  # the same library underneath: the same bytes
        assert jpeg == bytes(optional.simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=90))


def test_planes_must_be_420() -> None:
    y = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="not 4:2:0"):
        encode_jpeg_yuv_planes(y, np.zeros((16, 8), np.uint8), np.zeros((16, 8), np.uint8), 80)
