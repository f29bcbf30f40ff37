# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator's picture: a textured, moving, photo-like scene, encoded once up front.

Generated with numpy (no OpenCV, so the Debian package's demo works), with a visible frame
counter and timestamp showing the position in the loop (frame k of n, t = k / fps), and encoded
with 4:2:2 chroma like real webcams (libturbojpeg, bridge.pixels.encode). The loop is
deterministic, so a test in another process can regenerate it and compare bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bridge.pixels.encode import encode_jpeg
from bridge.pixels.font import draw_text

TEXTURE_SEED = 20261124  # the picture is the same on every run and in every process


def _upsample(small: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2-D float array to (height, width)."""
    sh, sw = small.shape
    ys = np.linspace(0, sh - 1, height, dtype=np.float32)
    xs = np.linspace(0, sw - 1, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), sh - 2)
    x0 = np.minimum(xs.astype(int), sw - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = small[y0][:, x0] * (1 - fx) + small[y0][:, x0 + 1] * fx
    bottom = small[y0 + 1][:, x0] * (1 - fx) + small[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (edges repeated)."""
    r = max(int(3 * sigma), 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    padded = np.pad(img, r, mode="edge")
    rows = sum(k[i] * padded[:, i : i + img.shape[1]] for i in range(2 * r + 1))
    return sum(k[i] * rows[i : i + img.shape[0]] for i in range(2 * r + 1)).astype(np.float32)


def _paint(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    coverage: Callable[[np.ndarray, np.ndarray], np.ndarray],
    color: tuple[int, int, int],
    alpha: float,
) -> None:
    """Blend ``color`` into ``img`` inside ``box`` (x0, y0, x1, y1), weighted by alpha times
    ``coverage(xs, ys)`` (0..1, from pixel-centre coordinates)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = (coverage(xs, ys) * alpha)[..., None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.rint(region + (np.asarray(color, np.float32) - region) * a)


def _scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured background (twice as wide, to scroll) and a borescope-like vignette."""
    rng = np.random.default_rng(TEXTURE_SEED)
    w2 = width * 2
    ys, xs = np.mgrid[0:height, 0:w2].astype(np.float32)
    u, v = xs / width, ys / height
    # Warm metal: smooth colour gradients plus periodic ridges, like the inside of a pipe.
    ridges = 0.5 + 0.5 * np.sin(2 * math.pi * (u * 6 + 0.3 * np.sin(2 * math.pi * v * 2)))
    coarse = rng.normal(0.0, 1.0, (max(height // 24, 2), max(w2 // 24, 2))).astype(np.float32)
    blotches = _upsample(coarse, w2, height)
    grain = _blur(rng.normal(0.0, 1.0, (height, w2)).astype(np.float32), 1.2)
    base = 0.55 + 0.18 * ridges + 0.10 * blotches + 0.06 * grain
    b = np.clip(255 * (base * (0.55 + 0.25 * v)), 0, 255)
    g = np.clip(255 * (base * (0.75 + 0.10 * np.cos(2 * math.pi * u))), 0, 255)
    r = np.clip(255 * (base * (0.95 - 0.20 * v)), 0, 255)
    background = np.dstack([b, g, r]).astype(np.uint8)
    ys1, xs1 = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((xs1 - width / 2) / (width / 2), (ys1 - height / 2) / (height / 2))
    vignette = np.clip(1.15 - 0.55 * radius**2, 0.15, 1.0)
    return background, np.dstack([vignette, vignette, vignette])


def render_frame(
    index: int, count: int, width: int, height: int, fps: float, scene=None
) -> np.ndarray:
    """Frame ``index`` of a seamless loop of ``count``: a BGR image."""
    background, vignette = scene if scene is not None else _scene(width, height)
    phase = index / count
    offset = round(phase * width) % width
    img = np.ascontiguousarray(background[:, offset : offset + width])
    img = (img.astype(np.float32) * vignette).astype(np.uint8)
    # A moving light spot and a turning bar: motion a viewer notices and an encoder must code.
    angle = 2 * math.pi * phase
    cx = int(width / 2 + width * 0.28 * math.cos(angle))
    cy = int(height / 2 + height * 0.25 * math.sin(2 * angle))
    radius = max(height // 10, 4)
    _paint(
        img,
        (cx - radius - 1, cy - radius - 1, cx + radius + 2, cy + radius + 2),
        lambda xs, ys: np.clip(radius + 0.5 - np.hypot(xs - cx, ys - cy), 0.0, 1.0),
        (200, 235, 255),
        0.55,
    )
    length = height * 0.3
    x0, y0 = width * 0.5, height * 0.55
    x1, y1 = x0 + length * math.cos(-angle), y0 + length * math.sin(-angle)
    half = max(height // 80, 2) / 2

    def bar(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return np.clip(half + 0.5 - np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)), 0.0, 1.0)

    pad = int(half) + 2
    box = (
        int(min(x0, x1)) - pad,
        int(min(y0, y1)) - pad,
        int(max(x0, x1)) + pad,
        int(max(y0, y1)) + pad,
    )
    _paint(img, box, bar, (40, 70, 160), 1.0)
    seconds = index / fps
    lines = (
        f"frame {index + 1:04d}/{count:04d}",
        f"t={int(seconds // 60):02d}:{seconds % 60:06.3f}  {width}x{height}",
    )
    text_h = max(round(height / 480 * 16), 7)
    for n, text in enumerate(lines):
        x, y = int(width * 0.03), int(height * (0.04 + 0.07 * n))
        draw_text(img, text, x, y, text_h, (255, 255, 255), (0, 0, 0), max(text_h // 8, 1))
    return img


def make_loop(
    width: int, height: int, count: int = 60, fps: float = 30.0, quality: int = 80
) -> list[bytes]:
    """The simulator's pre-encoded loop; deterministic for given arguments."""
    scene = _scene(width, height)
    return [
        encode_jpeg(render_frame(i, count, width, height, fps, scene), quality)
        for i in range(count)
    ]
