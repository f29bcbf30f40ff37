# SPDX-License-Identifier: GPL-3.0-or-later
"""Damaged JPEGs built from real ones: the header faults a radio link or a hostile sender makes.

Each helper takes a good JPEG (the simulator's) and changes header bytes in place of a copy, so
the tests feed the decoder exactly what the security review found: a DQT table index of 0x0F, a
bogus Huffman table, a bad marker length, a SOF that declares a picture of any size.
"""

from __future__ import annotations

from collections.abc import Iterator


def segments(jpeg: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset of the 0xFF, marker, length field) of each header segment up to and with SOS."""
    i = 2
    while i + 4 <= len(jpeg):
        marker = jpeg[i + 1]
        length = (jpeg[i + 2] << 8) | jpeg[i + 3]
        yield i, marker, length
        if marker == 0xDA:
            return
        i += 2 + length


def header_end(jpeg: bytes) -> int:
    """Offset of the first entropy-coded byte (just after the SOS segment)."""
    for offset, marker, length in segments(jpeg):
        if marker == 0xDA:
            return offset + 2 + length
    raise ValueError("no SOS marker")


def _first(jpeg: bytes, marker: int) -> int:
    for offset, m, _ in segments(jpeg):
        if m == marker:
            return offset
    raise ValueError(f"no 0x{marker:02X} marker")


def _patched(jpeg: bytes, at: int, values: bytes) -> bytes:
    out = bytearray(jpeg)
    out[at : at + len(values)] = values
    return bytes(out)


def dqt_index_0f(jpeg: bytes) -> bytes:
    """The first quantisation table declared as table 15 (libjpeg: "Bogus DQT index 15")."""
    return _patched(jpeg, _first(jpeg, 0xDB) + 4, b"\x0f")


def bogus_huffman(jpeg: bytes) -> bytes:
    """The first Huffman table's code counts summing to more than 256 codes."""
    return _patched(jpeg, _first(jpeg, 0xC4) + 5, b"\xff")


def bad_marker_length(jpeg: bytes) -> bytes:
    """The first Huffman table's segment length below its own two bytes. That segment comes
    after the SOF, so the frame still has a readable size and reaches the decoder."""
    return _patched(jpeg, _first(jpeg, 0xC4) + 2, b"\x00\x01")


def with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same bytes with a SOF that declares width x height (a decompression bomb when big)."""
    sof = _first(jpeg, 0xC0)
    return _patched(jpeg, sof + 5, height.to_bytes(2, "big") + width.to_bytes(2, "big"))
