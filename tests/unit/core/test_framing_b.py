# SPDX-License-Identifier: GPL-3.0-or-later
"""Framing B: the 51-byte header, 1-based chunks, the inverted byte; property tests."""

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core import framing_b
from bridge.core.framing_b import (
    ReassemblerB,
    chunk_jpeg,
    encode_chunk,
    flip_position,
    unpack_chunk,
)
from bridge.core.protocol import FLAG_END, FLAG_MIDDLE, FLAG_START, Reject
from bridge.core.reassembly import Frame


def make_jpeg(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"\xff\xd8" + rng.randbytes(max(size - 4, 0)) + b"\xff\xd9"


def test_header_offsets_match_the_published_layouts() -> None:
    """Offsets 0x1D/0x21/0x27/0x33 (WF070 client) and the Spade's field order, byte by byte."""
    d = encode_chunk(
        frame_id=0x01020304, total=0x0A0B0C0D, chunk=2, last=0, payload=b"xyz", frame_no=0x11223344
    )
    assert d[:4] == bytes.fromhex("99990300")
    assert len(d) == 51 + 3 and framing_b.HEADER_LEN == 0x33
    assert struct.unpack_from("<I", d, 25)[0] == 0x01020304
    assert struct.unpack_from("<I", d, 0x1D)[0] == 0x0A0B0C0D  # total JPEG length
    assert struct.unpack_from("<H", d, 0x21)[0] == 2  # chunk index from 1
    assert struct.unpack_from("<H", d, 37)[0] == 3  # payload length
    assert struct.unpack_from("<I", d, 0x27)[0] == 0x11223344  # frame number: the flip key
    assert d[0x33:] == b"xyz"


def test_flip_position_formula() -> None:
    # (((n ^ L) + (L | 1)) ^ L) mod L, by hand. n=5, L=100 (even): (97 + 101) ^ 100 = 162 -> 62.
    assert flip_position(5, 100) == 62
    # n=5, L=101 (odd, L | 1 = L): (96 + 101) ^ 101 = 197 ^ 101 = 160 -> 59.
    assert flip_position(5, 101) == 59
    assert flip_position(0, 1) == 0
    assert flip_position(7, 0) == -1
    for n in range(50):
        for length in (1, 2, 3, 1390, 50_000):
            assert 0 <= flip_position(n, length) < length


def test_chunks_map_to_framing_a_terms() -> None:
    jpeg = make_jpeg(3000)
    first, middle, last = chunk_jpeg(7, jpeg)
    assert unpack_chunk(first)[:5] == (FLAG_START, 7, 3000, 0, 1390)
    assert unpack_chunk(middle)[:5] == (FLAG_MIDDLE, 7, 3000, 1, 1390)
    assert unpack_chunk(last)[:5] == (FLAG_END, 7, 3000, 2, 220)
    # The chunk-count form of the last mark (count on every chunk) reads the same.
    counted = encode_chunk(frame_id=7, total=3000, chunk=2, last=3, payload=bytes(1390))
    assert unpack_chunk(counted)[0] == FLAG_MIDDLE


def test_rejections_are_named() -> None:
    good = chunk_jpeg(1, make_jpeg(100))[0]
    assert unpack_chunk(good[:50]) is Reject.TOO_SHORT
    assert unpack_chunk(b"\x98" + good[1:]) is Reject.BAD_MAGIC
    assert unpack_chunk(good[:2] + b"\x04" + good[3:]) is Reject.UNKNOWN_COMMAND
    assert unpack_chunk(good[:-1]) is Reject.TRUNCATED
    assert unpack_chunk(good + b"\0") is Reject.TRAILING_BYTES
    zero_chunk = good[:33] + b"\0\0" + good[35:]
    assert unpack_chunk(zero_chunk) is Reject.BAD_START
    assert unpack_chunk(12345) is Reject.NOT_BYTES  # type: ignore[arg-type]


def test_inverted_frames_come_out_as_the_real_jpeg() -> None:
    r = ReassemblerB()
    sent = [make_jpeg(4000 + 37 * i, i) for i in range(5)]
    out: list[Frame] = []
    for n, jpeg in enumerate(sent):
        wire = chunk_jpeg(n, jpeg, inverted=True)
        # The wire really differs from the JPEG in exactly one byte.
        body = b"".join(d[51:] for d in wire)
        assert sum(a != b for a, b in zip(body, jpeg, strict=True)) == 1
        for d in wire:
            out.extend(r.feed(d, 0.0))
    assert [f.data for f in out] == sent
    assert r.stats.corrupt == 0


def test_not_inverted_means_untouched() -> None:
    jpeg = make_jpeg(2000)
    r = ReassemblerB()
    out = [f for d in chunk_jpeg(3, jpeg) for f in r.feed(d, 0.0)]
    assert [f.data for f in out] == [jpeg]


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(4, 5000), min_size=1, max_size=4),
    chunk=st.integers(16, 1500),
    inverted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_reordered_duplicated_chunks_give_exact_frames(
    sizes: list[int], chunk: int, inverted: bool, seed: int
) -> None:
    rng = random.Random(seed)
    r = ReassemblerB()
    sent = [make_jpeg(s, seed + i) for i, s in enumerate(sizes)]
    out: list[Frame] = []
    for n, jpeg in enumerate(sent):
        wire = chunk_jpeg(1000 + n, jpeg, inverted=inverted, chunk_size=chunk)
        wire += rng.sample(wire, k=min(2, len(wire)))
        rng.shuffle(wire)
        for d in wire:
            out.extend(r.feed(d, 0.0))
    assert [f.data for f in out] == sent


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20))
def test_any_bytes_are_a_frame_or_a_counted_rejection(datagrams: list[bytes]) -> None:
    r = ReassemblerB(max_frame_bytes=4096)
    frames = 0
    for d in datagrams:
        frames += len(r.feed(d, 0.0))
    s = r.stats
    assert s.packets == len(datagrams)
    assert s.fragments + sum(s.rejected.values()) == len(datagrams)
    assert frames == s.frames


@settings(max_examples=200, deadline=None)
@given(header=st.binary(min_size=51, max_size=51), payload=st.binary(max_size=64))
def test_magic_prefixed_garbage_never_raises(header: bytes, payload: bytes) -> None:
    d = bytes.fromhex("99990300") + header[4:] + payload
    r = ReassemblerB(max_frame_bytes=1 << 16)
    r.feed(d, 0.0)
    r.feed(bytearray(d), 0.0, len(d) - 1)
    assert r.stats.packets == 2
    assert r.stats.fragments + sum(r.stats.rejected.values()) == 2
