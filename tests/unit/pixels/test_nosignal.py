# SPDX-License-Identifier: GPL-3.0-or-later
"""The no-signal picture and the bitmap font it is drawn with, on both pixel paths."""

from __future__ import annotations

import numpy as np
import pytest
from support.reference_yuv import bgr_to_limited_i420

from bridge.pixels.decode import Decoder
from bridge.pixels.font import text_mask, text_size
from bridge.pixels.nosignal import no_signal_bgr, no_signal_i420, no_signal_jpeg


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (1920, 1080), (320, 240)])
def test_no_signal_picture(pixel_path: str, w: int, h: int) -> None:
    bgr = no_signal_bgr(w, h)
    assert bgr.shape == (h, w, 3)
    # dark background with bright text in the middle band, nothing drawn at the edges
    assert bgr[: h // 8].max() < 80
    bright = bgr.max(axis=2) > 200
    rows = np.nonzero(bright.any(axis=1))[0]
    assert rows.size > 0 and h * 0.25 < rows.mean() < h * 0.75
    cols = np.nonzero(bright.any(axis=0))[0]
    assert cols.min() > 0 and cols.max() < w - 1  # the text fits
    assert w * 0.3 < cols.max() - cols.min() < w * 0.95  # and is large
    i420 = no_signal_i420(w, h)
    assert i420.shape == (h * 3 // 2, w)
    err = np.abs(i420.reshape(-1).astype(np.float64) - bgr_to_limited_i420(bgr))
    assert err[: w * h].max() <= 1.0  # luma: rounding only
    assert err[w * h :].mean() < 1.0  # chroma: OpenCV samples rather than averages at the edges
    jpeg = no_signal_jpeg(w, h)
    back = Decoder().decode(jpeg)
    assert back.shape == i420.shape
    assert np.abs(back.astype(np.int16) - i420).mean() < 3


def test_font_draws_distinct_readable_glyphs() -> None:
    """Each character is its own shape (no two glyphs alike) and a line keeps its proportions."""
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:/=-(),?"
    masks = {c: text_mask(c, 14) > 0.5 for c in chars}
    assert len({m.tobytes() for m in masks.values()}) == len(chars)
    assert all(m.any() for m in masks.values())
    assert text_size("No signal", 14) == (106, 18)
    assert not text_mask(" ", 14).any()
    assert np.array_equal(text_mask("\u2014", 14), text_mask("?", 14))  # no glyph: "?"
    outlined = text_mask("x", 14, grow=2)
    assert outlined.shape == (18 + 4, text_size("x", 14)[0] + 4)
    assert outlined.sum() > text_mask("x", 14).sum()
