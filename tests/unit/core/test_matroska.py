# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure Matroska muxer: EBML numbers, the layout's fixed places, and the Duration read back.
What players make of the bytes is checked with ffprobe in tests/unit/capture/test_mkv.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.matroska import (
    CLUSTER,
    CLUSTER_MS,
    SIMPLE_BLOCK,
    UNKNOWN_SIZE,
    MatroskaMuxer,
    _read_vint,
    read_duration_s,
    vint,
    void,
)


@given(st.integers(min_value=0, max_value=(1 << 56) - 2))
def test_vint_round_trips(n: int) -> None:
    encoded = vint(n)
    assert _read_vint(encoded, 0, False) == (n, len(encoded))
    eight = vint(n, 8)
    assert len(eight) == 8 and _read_vint(eight, 0, False) == (n, 8)


def test_vint_is_the_shortest_and_never_the_unknown_marker() -> None:
    assert vint(0) == b"\x80"
    assert vint(126) == b"\xfe"
    assert vint(127) == b"\x40\x7f"  # 0xff would mean "unknown"
    assert _read_vint(UNKNOWN_SIZE, 0, False) == (-1, 8)
    with pytest.raises(ValueError):
        vint(1 << 56)
    with pytest.raises(ValueError):
        vint(-1)


@given(st.integers(min_value=2, max_value=5000))
def test_void_has_exactly_the_size_asked(total: int) -> None:
    v = void(total)
    assert len(v) == total
    size, end = _read_vint(v, 1, False) or (0, 0)
    assert end + size == total


def _muxed(times: list[int], sizes: list[int]) -> tuple[bytearray, MatroskaMuxer]:
    mux = MatroskaMuxer("test", 1.8e9)
    out = bytearray(mux.head() + mux.tracks(640, 480))
    for ms, n in zip(times, sizes, strict=True):
        patches, prefix = mux.block(ms, n)
        for p in patches:
            out[p.offset : p.offset + len(p.data)] = p.data
        out += prefix + bytes(n)
    return out, mux


def test_a_cluster_per_second_with_its_size_patched_when_the_next_begins() -> None:
    times = [0, 400, 999, CLUSTER_MS, 1500, 2600]
    out, mux = _muxed(times, [10] * len(times))
    assert len(out) == mux.offset
    starts = [i for i in range(len(out)) if out[i : i + 4] == CLUSTER]
    assert len(starts) == 3  # 0..999, 1000..1500, 2600
    # Closed clusters carry their size; the open one says "unknown" until the finish.
    first_size = _read_vint(bytes(out), starts[0] + 4, False)
    assert first_size is not None and first_size[1] + first_size[0] == starts[1]
    assert out[starts[2] + 4 : starts[2] + 12] == UNKNOWN_SIZE
    assert out.count(SIMPLE_BLOCK + vint(14)) == len(times)


def test_timestamps_strictly_increase() -> None:
    mux = MatroskaMuxer("test", 0.0)
    mux.head()
    mux.tracks(1, 1)
    for ms in (5, 5, 3, 7):
        mux.block(ms, 1)
    assert mux.last_ms == 8  # 5, 6, 7, 8


def test_undo_forgets_the_failed_block() -> None:
    mux = MatroskaMuxer("test", 0.0)
    mux.head()
    mux.tracks(1, 1)
    mux.block(0, 100)
    offset, frames = mux.offset, mux.frames
    mux.block(2000, 100)  # would open a new cluster
    mux.undo()
    assert (mux.offset, mux.frames, mux.last_ms) == (offset, frames, 0)
    patches, prefix = mux.block(2000, 100)
    assert patches and prefix.startswith(CLUSTER)


@given(
    st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40),
    st.booleans(),
)
def test_the_duration_reads_back_after_a_clean_finish_only(steps: list[int], cues: bool) -> None:
    times = [sum(steps[: i + 1]) for i in range(len(steps))]
    out, mux = _muxed(times, [20] * len(times))
    assert read_duration_s(bytes(out[:4096])) is None  # cut short / still running
    cues_at = None
    if cues:
        cues_at = len(out)
        data = mux.cues()
        assert len(data) <= mux.finish_bytes
        out += data
        mux.note_written(len(data))
    for p in mux.finish(times[-1] + 33.0, cues_at):
        out[p.offset : p.offset + len(p.data)] = p.data
    assert read_duration_s(bytes(out[:4096])) == pytest.approx((times[-1] + 33.0) / 1000)


@given(st.binary(max_size=300))
def test_read_duration_never_raises_on_foreign_bytes(data: bytes) -> None:
    assert read_duration_s(data) is None or isinstance(read_duration_s(data), float)
