# SPDX-License-Identifier: GPL-3.0-or-later
"""Decode path pixels against an independent golden reference (no timing asserts).

The reference is computed without our code: cv2.imdecode -> BGR, then the BT.601 limited-range
formulas in float numpy, chroma averaged over 2x2 blocks. A wrong range (full-range planes passed
through), swapped U/V planes or a wrong plane layout falls far below the threshold. The golden
tests run on both pixel paths (``pixel_path``: OpenCV, numpy), and
tests/unit/pixels/test_optional.py runs
this whole file again with OpenCV and simplejpeg hidden from bridge, as in the Debian package.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg
from support.reference_yuv import bgr_to_limited_i420

from bridge.core.jpeg import jpeg_dimensions
from bridge.pixels import optional
from bridge.pixels.decode import DecodeError, Decoder
from bridge.pixels.turbojpeg import turbojpeg_available
from bridge.pixels.yuv import RangeFix

PSNR_MIN_DB = 45.0

BACKENDS = (["simplejpeg"] if optional.simplejpeg is not None else []) + (
    ["turbojpeg"] if turbojpeg_available() else []
)


def photo_like(width: int, height: int, seed: int = 1) -> np.ndarray:
    """Smooth gradients, shapes, blur and sensor-like noise: JPEG sizes like a real borescope."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = (
            128
            + 60 * np.sin(xx / (37 + c * 11) + c) * np.cos(yy / (29 + c * 7))
            + 40 * np.sin((xx + yy) / 90.0 + c)
        )
    for _ in range(12):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(5, max(6, height // 5)))
        color = tuple(float(v) for v in rng.integers(0, 255, 3))
        cv2.circle(img, (cx, cy), r, color, -1)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    noisy = blurred + rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def reference_i420(jpeg: bytes) -> np.ndarray:
    """Limited-range BT.601 I420 computed in float from an independent BGR decode."""
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None, "OpenCV could not decode the test JPEG"
    return bgr_to_limited_i420(decoded)


def psnr(got: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((got.astype(np.float64).ravel() - ref.ravel()) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def encode(img: np.ndarray, sub: str, quality: int = 80) -> bytes:
    return simplejpeg.encode_jpeg(img, quality, "BGR", sub)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sub", ["422", "420", "444", "Gray"])
def test_golden_psnr(pixel_path: str, backend: str, sub: str) -> None:
    img = photo_like(320, 240)
    if sub == "Gray":
        jpeg = simplejpeg.encode_jpeg(
            cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None], 80, "GRAY", "Gray"
        )
    else:
        jpeg = encode(img, sub)
    out = Decoder(backend).decode(jpeg)
    assert out.shape == (240 * 3 // 2, 320)
    assert out.dtype == np.uint8
    assert psnr(out, reference_i420(jpeg)) >= PSNR_MIN_DB


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_catches_wrong_range_and_plane_order(pixel_path: str, backend: str) -> None:
    """The threshold discriminates: the mistakes the decode path could make fall below it."""
    w, h = 320, 240
    jpeg = encode(photo_like(w, h, seed=3), "422")
    ref = reference_i420(jpeg)
    out = Decoder(backend).decode(jpeg).copy()
    assert psnr(out, ref) >= PSNR_MIN_DB
    swapped = out.copy().reshape(-1)
    q = (w // 2) * (h // 2)
    swapped[w * h : w * h + q], swapped[w * h + q :] = (
        out.reshape(-1)[w * h + q :],
        out.reshape(-1)[w * h : w * h + q],
    )
    assert psnr(swapped, ref) < PSNR_MIN_DB - 5
    # Undo the limited-range scaling: what passing JPEG's full-range planes through would give.
    full = out.astype(np.float64)
    full[:h] = (full[:h] - 16) * 255 / 219
    full[h:] = (full[h:] - 128) * 255 / 224 + 128
    assert psnr(np.clip(full, 0, 255), ref) < PSNR_MIN_DB - 5


def test_backends_agree() -> None:
    if len(BACKENDS) < 2:
        pytest.skip(f"only one decoder backend exists here: {BACKENDS}")
    jpeg = encode(photo_like(640, 480, seed=5), "422")
    a = Decoder("turbojpeg").decode(jpeg).copy()
    b = Decoder("simplejpeg").decode(jpeg)
    assert psnr(a, b.astype(np.float64)) >= PSNR_MIN_DB


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_buffer_is_reused_and_resized(backend: str) -> None:
    d = Decoder(backend)
    j1 = encode(photo_like(320, 240), "422")
    j2 = encode(photo_like(160, 120), "420")
    first = d.decode(j1)
    again = d.decode(j1)
    assert again is first  # preallocated, no per-frame allocation
    small = d.decode(j2)
    assert small.shape == (180, 160)
    assert d.size == (160, 120)


@pytest.mark.parametrize("backend", BACKENDS)
def test_odd_size_is_cropped_to_even(pixel_path: str, backend: str) -> None:
    jpeg = encode(photo_like(321, 241), "420")
    out = Decoder(backend).decode(jpeg)
    assert out.shape == (240 * 3 // 2, 320)
    assert psnr(out, reference_i420(jpeg)) >= PSNR_MIN_DB


@pytest.mark.parametrize("backend", BACKENDS)
def test_garbage_raises_decode_error(backend: str) -> None:
    d = Decoder(backend)
    with pytest.raises(DecodeError):
        d.decode(b"\x00" * 100)
    with pytest.raises(DecodeError):
        d.decode(b"\xff\xd8\xff\xd9")


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_jpeg_still_gives_a_picture(backend: str) -> None:
    """A frame cut short decodes with a warning (grey bottom) instead of killing the stream."""
    jpeg = encode(photo_like(320, 240), "422")
    out = Decoder(backend).decode(jpeg[: len(jpeg) * 2 // 3])
    assert out.shape == (360, 320)


def test_range_fix_is_exact_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every input value maps to the rounded BT.601 formula, with and without OpenCV."""
    import bridge.pixels.yuv

    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    want_y = np.floor(x * (219 / 255) + 16 + 0.5).astype(np.uint8)
    want_c = np.floor(x * (224 / 255) + 128 - 128 * 224 / 255 + 0.5).astype(np.uint8)
    for hide in [False, True] if bridge.pixels.yuv.cv2 is not None else [True]:
        if hide:
            monkeypatch.setattr(bridge.pixels.yuv, "cv2", None)
        fix = RangeFix()
        y, c = x.copy(), np.empty_like(x)
        fix.luma(y, y)  # in place, as the decoder does
        fix.chroma(x, c)
        assert np.array_equal(y, want_y)
        assert np.array_equal(c, want_c)
    strided = np.empty((8, 16), np.uint8)
    RangeFix().chroma(x[::2], strided)  # the 4:2:2 row drop reads every other row
    assert np.array_equal(strided, want_c[::2])


def test_no_decoder_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import bridge.pixels.decode

    monkeypatch.setattr(bridge.pixels.decode, "simplejpeg", None)
    monkeypatch.setattr(bridge.pixels.decode, "load_turbojpeg", lambda: None)
    with pytest.raises(DecodeError, match="apt install libturbojpeg0"):
        Decoder()


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720), (1920, 1080), (33, 17)])
def test_jpeg_dimensions_from_sof(w: int, h: int) -> None:
    jpeg = encode(np.zeros((h, w, 3), np.uint8), "422")
    assert jpeg_dimensions(jpeg) == (w, h)
    assert jpeg_dimensions(bytearray(jpeg)) == (w, h)
    assert jpeg_dimensions(memoryview(jpeg)) == (w, h)


def test_jpeg_dimensions_skips_segments_and_fill_bytes() -> None:
    jpeg = encode(np.zeros((48, 64, 3), np.uint8), "420")
    comment = b"\xff\xfe\x00\x06" + b"abcd"
    padded = jpeg[:2] + b"\xff\xff" + comment + jpeg[2:]
    assert jpeg_dimensions(padded) == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"\xff\xd8",
        b"\x89PNG\r\n\x1a\n....",
        b"\xff\xd8\xff\xda\x00\x08",
        b"\xff\xd8\xff\xc0\x00\x11\x08",
    ],
)
def test_jpeg_dimensions_none_for_non_jpeg(data: bytes) -> None:
    assert jpeg_dimensions(data) is None
