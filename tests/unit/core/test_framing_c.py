# SPDX-License-Identifier: GPL-3.0-or-later
"""Framing C: BoundaryS/BoundaryE over TCP, the inverted middle byte; any split, any garbage."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.framing_c import END, HEADER, START, StreamC, encode_frame
from bridge.core.reassembly import Frame


def make_jpeg(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"\xff\xd8" + rng.randbytes(max(size - 4, 0)) + b"\xff\xd9"


def test_golden_first_line_of_a_wf028_stream() -> None:
    """mplough's blog: the stream starts 42 6f 75 6e 64 61 72 79 53 00 00 01 00 dc 4e 00."""
    line = bytes.fromhex("42 6f 75 6e 64 61 72 79 53 00 00 01 00 dc 4e 00".replace(" ", ""))
    assert line.startswith(START)
    header = line[9:] + bytes(HEADER.size - 7)
    assert HEADER.unpack(header)[1] == 0x4EDC  # the JPEG length, 20188 bytes
    wire = encode_frame(0, make_jpeg(0x4EDC))
    assert wire[:13] == line[:13]  # our encoder writes the same four leading bytes


def test_middle_byte_is_undone() -> None:
    jpeg = make_jpeg(1001)
    wire = encode_frame(3, jpeg, (1280, 720))
    assert wire[9 + 32 + 500] == jpeg[500] ^ 0xFF and wire.endswith(END)
    s = StreamC()
    assert [f.data for f in s.feed(wire, 1.0)] == [jpeg]
    assert s.stats.frames == 1 and s.stats.corrupt == 0


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(4, 3000), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 700), min_size=1, max_size=40),
    noise=st.binary(max_size=40),
)
def test_any_split_gives_the_same_frames(sizes: list[int], cuts: list[int], noise: bytes) -> None:
    sent = [make_jpeg(n, i) for i, n in enumerate(sizes)]
    stream = noise.replace(b"B", b"b") + b"".join(encode_frame(i, j) for i, j in enumerate(sent))
    s = StreamC()
    out: list[Frame] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out.extend(s.feed(stream[pos : pos + step], 0.0))
        pos += step
        i += 1
    assert [f.data for f in out] == sent
    assert s.buffer_bytes < 9


def test_broken_frame_is_counted_and_the_next_one_survives() -> None:
    a, b = make_jpeg(500, 1), make_jpeg(600, 2)
    broken = encode_frame(0, a)[:-9] + b"BoundaryX"  # lost end marker
    s = StreamC()
    out = s.feed(broken + encode_frame(1, b), 0.0)
    assert [f.data for f in out] == [b]
    assert s.stats.corrupt == 1


def test_oversized_length_is_rejected_without_allocating() -> None:
    s = StreamC(max_frame_bytes=1000)
    huge = START + HEADER.pack(b"\0\0\1\0", 1 << 30, 0, 0, 0, 0, 0, 0, 0)
    assert s.feed(huge + encode_frame(0, make_jpeg(100)), 0.0)
    assert s.stats.rejected == {"frame_too_large": 1}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_any_bytes_never_raise_and_stay_bounded(pieces: list[bytes]) -> None:
    s = StreamC(max_frame_bytes=4096)
    frames = 0
    for p in pieces:
        frames += len(s.feed(START + p if len(p) % 3 == 0 else p, 0.0))
        assert s.buffer_bytes <= s.memory_bound
    assert frames == s.stats.frames
    assert s.stats.packets == len(pieces)
