# SPDX-License-Identifier: GPL-3.0-or-later
"""A frame with a damaged JPEG header costs that one frame, never the camera.

The security review's fault: after a header error libturbojpeg's decompressor stayed in its
failed state, every later frame failed with the same error, and the camera showed the last good
picture forever. The frames are the simulator's real JPEGs with header bytes changed
(tests/support/damage.py), through the real Pipeline and libturbojpeg (tests/support/stepped.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.damage import bad_marker_length, bogus_huffman, dqt_index_0f, header_end
from support.stepped import Clock, Recorder, feed, good_frames, reference, stepped_pipeline

from bridge.pixels.decode import DecodeError, Decoder
from bridge.pixels.turbojpeg import turbojpeg_available

pytestmark = pytest.mark.skipif(
    not turbojpeg_available(), reason="the fault is libturbojpeg's: apt install libturbojpeg0"
)


@pytest.mark.parametrize("damage", [dqt_index_0f, bogus_huffman, bad_marker_length])
def test_a_damaged_header_costs_one_frame_not_the_camera(
    damage: Callable[[bytes], bytes],
) -> None:
    frames = good_frames()
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock)
    feed(p, clock, frames[:20])
    feed(p, clock, [damage(frames[20])])
    feed(p, clock, frames[21:61])
    stats = p.stats()
    assert stats["decode_errors"] == 1
    assert stats["shown"] == 60
    assert recorder.pictures[-40:] == [reference(f) for f in frames[21:61]]
    p.stop()


def single_byte_damages(jpeg: bytes) -> list[tuple[int, int]]:
    """(offset, new value) for every header byte and three values: zero, 0x0F, 0xFF."""
    return [
        (at, value)
        for at in range(2, header_end(jpeg))
        for value in (0x00, 0x0F, 0xFF)
        if jpeg[at] != value
    ]


def test_after_any_single_byte_header_damage_good_frames_decode_again() -> None:
    frames = good_frames()
    good = frames[0]
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock)
    feed(p, clock, [good])
    damages = single_byte_damages(good)
    stale: list[tuple[int, int]] = []
    for n, (at, value) in enumerate(damages):
        damaged = bytearray(good)
        damaged[at] = value
        feed(p, clock, [bytes(damaged)])
        after = frames[1 + n % 60]
        feed(p, clock, [after])
        if recorder.pictures[-1] != reference(after):
            stale.append((at, value))
    assert not stale, (
        f"after {len(stale)} of {len(damages)} damaged headers the next good frame was not "
        f"shown; the first (offset, byte): {stale[:8]}"
    )
    assert p.stats()["decode_errors"] > 100  # the table does reach the decoder's error paths
    p.stop()


@pytest.mark.parametrize("damage", [dqt_index_0f, bogus_huffman, bad_marker_length])
def test_the_decoder_starts_afresh_after_an_error(damage: Callable[[bytes], bytes]) -> None:
    good = good_frames()[0]
    decoder = Decoder("turbojpeg")
    try:
        decoder.decode(good)
        with pytest.raises(DecodeError):
            decoder.decode(damage(good))
        assert decoder.decode(good).tobytes() == reference(good)
    finally:
        decoder.close()
