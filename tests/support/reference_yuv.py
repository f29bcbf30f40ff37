# SPDX-License-Identifier: GPL-3.0-or-later
"""The tests' golden YUV reference, computed without bridge's code: the BT.601 limited-range
formulas in float numpy, chroma averaged over 2x2 blocks."""

from __future__ import annotations

import numpy as np


def bgr_to_limited_i420(bgr: np.ndarray) -> np.ndarray:
    """I420 planes (Y, U, V, flattened, float) of a BGR picture cropped to even sides."""
    h, w = (bgr.shape[0] & ~1), (bgr.shape[1] & ~1)
    f = bgr[:h, :w].astype(np.float64)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (219 / 255) * (0.299 * r + 0.587 * g + 0.114 * b)
    cb = 128 + (224 / 255) * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    cr = 128 + (224 / 255) * (0.5 * r - 0.418688 * g - 0.081312 * b)

    def sub(p: np.ndarray) -> np.ndarray:
        return p.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    return np.concatenate([y.ravel(), sub(cb).ravel(), sub(cr).ravel()])
