# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest's picture checks (tests/vm/evaluate.py) accept what a module race makes, nothing else.

v4l2loopback 0.12.7 lets a producer overwrite a buffer a reader still holds. The reader then
gets a torn buffer made of two frames we sent: rows of two frames, one frame's luma with the
other's chroma, or (MJPEG) the first bytes of one JPEG and the rest of another. Those must
not fail the end-to-end run at random; a wrong picture or a corrupted byte must still fail.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))
evaluate: Any = pytest.importorskip("evaluate")

W, H = 640, 480


def i420(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2YUV_I420)


def rgb(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)


@pytest.fixture(scope="module")
def refs() -> np.ndarray:
    return evaluate.reference_rgb(W, H)


def test_plane_tear_is_made_of_sent_frames(refs: np.ndarray) -> None:
    """Luma of the newer frame over chroma of the older one, from some row down."""
    a, b = i420(refs[3]), i420(refs[20])
    torn = a.copy()
    torn[:H] = b[:H]  # the producer has rewritten all of Y
    cut = H + (H // 4) // 2  # ... and half of U, none of V
    torn[H:cut] = b[H:cut]
    frame = rgb(torn)
    assert evaluate.row_error(frame) <= evaluate.MAE_TOLERANCE


def test_row_tear_is_made_of_sent_frames(refs: np.ndarray) -> None:
    frame = refs[3].copy()
    frame[H // 3 :] = refs[40][H // 3 :]
    assert evaluate.row_error(frame.astype(np.uint8)) <= evaluate.MAE_TOLERANCE


def test_wrong_pictures_still_fail(refs: np.ndarray) -> None:
    a = i420(refs[3])
    swapped = a.copy()
    q = (H // 2) * (W // 2)
    swapped[H:] = np.concatenate([a[H:].reshape(-1)[q:], a[H:].reshape(-1)[:q]]).reshape(-1, W)
    shifted = np.roll(refs[3], 24, axis=1).astype(np.uint8)
    no_signal = evaluate.no_signal_rgb(W, H).astype(np.uint8)
    for name, frame in (
        ("U/V swapped", rgb(swapped)),
        ("shifted", shifted),
        ("no signal", no_signal),
    ):
        assert evaluate.row_error(frame) > evaluate.MAE_TOLERANCE, name


def test_torn_mjpeg_buffer_is_accepted_and_corruption_is_not() -> None:
    loop = [j for s in evaluate.SIM_SIZES for j in evaluate.simulator_loop(*s)]
    a = loop[5]
    b = next(j for j in loop if len(j) >= len(a) and j != a)
    assert evaluate.torn_from_sent(a[:7000] + b[7000 : len(a)], loop)
    rng = random.Random(7)
    for _ in range(100):
        frame = rng.choice(loop)
        i = rng.randrange(len(frame))
        bad = frame[:i] + bytes([frame[i] ^ rng.randrange(1, 256)]) + frame[i + 1 :]
        assert not evaluate.torn_from_sent(bad, loop), i
    assert not evaluate.torn_from_sent(a[1:] + b"\0", loop), "shifted by one byte"
