# SPDX-License-Identifier: GPL-3.0-or-later
"""The picture the camera shows while no frame arrives: "No signal / waiting for borescope".

Drawn with the project's own bitmap font (bridge.pixels.font) in numpy, so it looks the same with or
without OpenCV. Two lines rather than "No signal — waiting for borescope": they read better on
small previews.
"""

from __future__ import annotations

import numpy as np

from bridge.pixels.encode import encode_jpeg
from bridge.pixels.font import draw_text, text_size
from bridge.pixels.yuv import bgr_to_i420

NO_SIGNAL_TEXT = ("No signal", "waiting for borescope")
BACKGROUND_BGR = (48, 32, 24)  # dark blue-grey
JPEG_QUALITY = 85


def no_signal_bgr(width: int, height: int) -> np.ndarray:
    """A dark picture with the two lines of text in large, centred letters."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND_BGR
    big, small = NO_SIGNAL_TEXT
    # The longer second line spans about 70% of the width; the first is larger.
    small_h = max(7, min(round(width * 0.7 / text_size(small, 7)[0] * 7), height // 8))
    big_h = max(7, min(round(small_h * 1.8), height // 5))
    bw, _ = text_size(big, big_h)
    sw, _ = text_size(small, small_h)
    gap = big_h // 2
    top = (height - (big_h + gap + small_h)) // 2
    draw_text(img, big, (width - bw) // 2, top, big_h, (240, 240, 240))
    draw_text(img, small, (width - sw) // 2, top + big_h + gap, small_h, (190, 200, 210))
    return img


def no_signal_i420(width: int, height: int) -> np.ndarray:
    """The "no signal" picture as limited-range I420 (what the raw camera format carries)."""
    return bgr_to_i420(no_signal_bgr(width & ~1, height & ~1))


def no_signal_jpeg(width: int, height: int) -> bytes:
    """The "no signal" picture as a JPEG (for MJPEG output)."""
    return encode_jpeg(no_signal_bgr(width, height), JPEG_QUALITY)
