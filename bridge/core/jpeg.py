# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG header parsing without decoding: pure byte reading, no pixels, no libraries.

The daemon reads a frame's size from its SOF marker on every frame (to notice a resolution
change before it decodes, or instead of decoding in MJPEG mode), so this lives in the core,
apart from the decoders and their numpy and libturbojpeg imports.
"""

from __future__ import annotations

SOF_MARKERS = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
)
STANDALONE_MARKERS = frozenset((0x01, *range(0xD0, 0xD9)))


def jpeg_dimensions(jpeg: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """Width and height from the SOF marker, without decoding; None if there is no readable SOF.

    Cheap enough to call per frame: the pipeline uses it to notice a resolution change before it
    decodes (or, in MJPEG mode, instead of decoding).
    """
    data = memoryview(jpeg)
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE_MARKERS:
            i += 2
            continue
        if marker == 0xDA or marker == 0xD9:  # scan data or end without a frame header
            return None
        seg_len = (data[i + 2] << 8) | data[i + 3]
        if seg_len < 2:
            return None
        if marker in SOF_MARKERS:
            if i + 9 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            if width == 0 or height == 0:
                return None
            return width, height
        i += 2 + seg_len
    return None
