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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vm"))
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


def test_torn_and_padded_mjpeg_buffer_is_accepted_but_not_past_a_frames_end() -> None:
    """Torn, and reported as the whole buffer: stale bytes after the last piece's EOI."""
    loop = [j for s in evaluate.SIM_SIZES for j in evaluate.simulator_loop(*s)]
    a = loop[5]
    b = next(j for j in loop if len(j) >= len(a) + 1000 and j != a)
    buffer_size = len(b) + 4096
    stale = bytes(range(256)) * 16
    torn_padded = (a[:7000] + b[7000:] + stale)[:buffer_size]
    assert evaluate.torn_from_sent(torn_padded, loop)
    # Cut short of b's end, the same stale bytes are no longer after a JPEG's end.
    assert not evaluate.torn_from_sent(a[:7000] + b[7000:-10] + stale[:4106], loop)
    # A corrupted byte in the middle of the second piece still fails.
    i = (7000 + len(b)) // 2
    bad = bytearray(torn_padded)
    bad[i] ^= 0x55
    assert not evaluate.torn_from_sent(bytes(bad), loop)


def test_mjpeg_check_names_what_it_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guest's files are gone after the run: a refused buffer is described in the line."""
    loop = [j for s in evaluate.SIM_SIZES for j in evaluate.simulator_loop(*s)]
    a = loop[5]
    (tmp_path / "000.jpg").write_bytes(a)
    (tmp_path / "001.jpg").write_bytes(a[:5000] + b"\0" * 300 + a[5300:])
    tally = evaluate.Tally()
    evaluate.check_mjpeg(tally, "mjpeg", str(tmp_path))
    assert (tally.passed, tally.failed) == (0, 1)
    line = capsys.readouterr().out
    assert f"001.jpg: {len(a)} bytes, the first 5000 as a sent {len(a)}-byte frame" in line
