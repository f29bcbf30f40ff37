# SPDX-License-Identifier: GPL-3.0-or-later
"""A 5x7 bitmap font drawn anti-aliased at any size, so that pictures need no OpenCV or font files.

The no-signal picture and the simulator's frame counter are the only text the project draws; a
font package plus a rasteriser (Pillow, freetype) would cost more than the rest of the Debian
package. Glyphs are scaled by sampling the bitmap 4x finer than the output and averaging 4x4
blocks, which gives smooth edges at every size. Characters without a glyph draw as "?".
"""

from __future__ import annotations

import numpy as np

GLYPH_W = 5
CAP_H = 7  # rows above the baseline; the size of a text is its capital height
GLYPH_H = 9  # with two rows for descenders (g, j, p, q, y)
ADVANCE = GLYPH_W + 1  # one column of spacing
_SUPERSAMPLE = 4

_GLYPHS: dict[str, tuple[str, ...]] = {
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "b": ("#....", "#....", "####.", "#...#", "#...#", "#...#", "####."),
    "c": (".....", ".....", ".###.", "#....", "#....", "#...#", ".###."),
    "d": ("....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "f": ("..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."),
    "g": (".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."),
    "h": ("#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "i": ("..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."),
    "j": ("...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "k": ("#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."),
    "l": (".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "m": (".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"),
    "n": (".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "o": (".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."),
    "p": (".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."),
    "q": (".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"),
    "r": (".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."),
    "s": (".....", ".....", ".####", "#....", ".###.", "....#", "####."),
    "t": (".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."),
    "u": (".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"),
    "v": (".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "w": (".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."),
    "x": (".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"),
    "y": (".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."),
    "z": (".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "/": (".....", "....#", "...#.", "..#..", ".#...", "#....", "....."),
    "=": (".....", ".....", "#####", ".....", "#####", ".....", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    ",": (".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
}
_BITMAPS: dict[str, np.ndarray] = {
    ch: np.array(
        [[c == "#" for c in row] for row in rows + ("." * GLYPH_W,) * (GLYPH_H - len(rows))]
    )
    for ch, rows in _GLYPHS.items()
}
_BITMAPS[" "] = np.zeros((GLYPH_H, GLYPH_W), bool)


def _line_bitmap(text: str) -> np.ndarray:
    """The text as one bitmap of GLYPH_H rows, ``ADVANCE`` columns per character, no trailing
    gap."""
    cells = np.zeros((GLYPH_H, max(len(text) * ADVANCE - 1, 1)), bool)
    for n, ch in enumerate(text):
        cells[:, n * ADVANCE : n * ADVANCE + GLYPH_W] = _BITMAPS.get(ch, _BITMAPS["?"])
    return cells


def text_size(text: str, height: int) -> tuple[int, int]:
    """(width, height with descenders) in pixels of ``text`` with capitals ``height`` pixels
    tall."""
    cols = max(len(text) * ADVANCE - 1, 1)
    return max(round(cols * height / CAP_H), 1), round(height * GLYPH_H / CAP_H)


def text_mask(text: str, height: int, grow: int = 0) -> np.ndarray:
    """Coverage (float32, 0..1) of ``text`` at ``height`` pixels, widened by ``grow`` pixels
    on every side (for an outline drawn under the letters)."""
    bitmap = _line_bitmap(text)
    width, full = text_size(text, height)
    ss = _SUPERSAMPLE
    rows = (np.arange(full * ss) * GLYPH_H) // (full * ss)
    cols = (np.arange(width * ss) * bitmap.shape[1]) // (width * ss)
    fine = bitmap[rows][:, cols].astype(np.float32)
    mask = fine.reshape(full, ss, width, ss).mean(axis=(1, 3))
    if grow > 0:
        padded = np.pad(mask, grow)
        grown = np.zeros_like(padded)
        h, w = padded.shape
        for dy in range(-grow, grow + 1):
            for dx in range(-grow, grow + 1):
                if dy * dy + dx * dx <= grow * grow:
                    shifted = padded[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
                    target = grown[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
                    np.maximum(target, shifted, out=target)
        mask = grown
    return mask


def blend(img: np.ndarray, mask: np.ndarray, x: int, y: int, color: tuple[int, ...]) -> None:
    """Paint ``color`` into ``img`` (h, w, 3 uint8) with ``mask`` as coverage, top-left at (x, y),
    clipped to the picture."""
    h, w = img.shape[:2]
    mh, mw = mask.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + mw, w), min(y + mh, h)
    if x0 >= x1 or y0 >= y1:
        return
    a = mask[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    region += (np.asarray(color, np.float32) - region) * a
    img[y0:y1, x0:x1] = np.rint(region).astype(np.uint8)


def draw_text(
    img: np.ndarray,
    text: str,
    x: int,
    y: int,
    height: int,
    color: tuple[int, ...],
    outline: tuple[int, int, int] | None = None,
    outline_px: int = 0,
) -> None:
    """Draw ``text`` with its top-left corner at (x, y), optionally over a dark outline."""
    if outline is not None and outline_px > 0:
        blend(img, text_mask(text, height, outline_px), x - outline_px, y - outline_px, outline)
    blend(img, text_mask(text, height), x, y, color)
