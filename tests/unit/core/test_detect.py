# SPDX-License-Identifier: GPL-3.0-or-later
"""Detection: a complete valid frame decides, never a header; garbage never locks."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.detect import MAX_CANDIDATES, Detector, framing_of
from bridge.core.framing_b import ReassemblerB, chunk_jpeg
from bridge.core.models import Framing
from bridge.core.protocol import fragment_jpeg


def make_jpeg(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"\xff\xd8" + rng.randbytes(size - 4) + b"\xff\xd9"


def test_framing_of() -> None:
    assert framing_of(b"\x66abc", 4) == Framing.A
    assert framing_of(bytes.fromhex("99990300") + bytes(60), 64) == Framing.B
    assert framing_of(bytes.fromhex("99990100") + bytes(20), 24) is None  # a start packet
    assert framing_of(b"", 0) is None
    assert framing_of(bytearray(b"\x66" * 10), 0) is None  # the length is what counts


def test_the_first_complete_frame_decides_and_keeps_its_reassembler() -> None:
    det = Detector(1 << 20)
    jpeg_a, jpeg_b = make_jpeg(3000, 1), make_jpeg(3000, 2)
    a = fragment_jpeg(1, jpeg_a, 1400)
    b = chunk_jpeg(5, jpeg_b, inverted=True)
    # Interleaved, B's last chunk first to complete.
    assert det.feed(("10.0.0.1", 8030), a[0], 0.0, len(a[0])) is None
    for d in b[:-1]:
        assert det.feed(("10.0.0.1", 8031), d, 0.0, len(d)) is None
    found = det.feed(("10.0.0.1", 8031), b[-1], 0.0, len(b[-1]))
    assert found is not None
    assert (found.framing, found.source) == (Framing.B, ("10.0.0.1", 8031))
    assert [f.data for f in found.frames] == [jpeg_b]  # the inversion undone
    assert isinstance(found.reassembler, ReassemblerB) and found.reassembler.inverted is True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=40), st.integers(0, 20))
def test_garbage_with_the_right_first_bytes_never_decides(pieces: list[bytes], n: int) -> None:
    det = Detector(1 << 16)
    for i, p in enumerate(pieces):
        for head in (b"\x66", bytes.fromhex("99990300")):
            d = head + p
            assert det.feed(("h", i % (n + 1)), d, 0.0, len(d)) is None
    assert len(det._candidates) <= MAX_CANDIDATES
