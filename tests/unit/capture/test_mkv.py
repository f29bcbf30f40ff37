# SPDX-License-Identifier: GPL-3.0-or-later
"""The recording file as players see it, with Debian's real ffprobe, ffmpeg and mkvinfo: any
sequence of JPEGs and arrival times gives a file they open, whose frames copy out byte for byte
at those times; cut short anywhere (a crash), it still plays up to its last whole frame."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.media import extract_frames, jpeg, mkvinfo, need_ffmpeg, probe

from bridge.capture.mkv import MkvFile


def write(directory: Path, frames: list[bytes], times_ms: list[int], finish: bool) -> Path:
    mkv = MkvFile.create(str(directory), "borescope-20260101-120000.mkv", "test", 1.8e9)
    for data, ms in zip(frames, times_ms, strict=True):
        assert mkv.add(data, ms)
    if finish:
        mkv.finish(times_ms[-1] + 33.0)
    else:
        mkv.close()
    return Path(mkv.path)


frame_specs = st.lists(
    st.tuples(
        st.integers(0, 2**32 - 1),
        st.sampled_from([8, 16, 40]),
        st.integers(0, 100),  # quality
        st.integers(1, 1500),  # ms since the frame before (a gap over a second: a new cluster)
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=frame_specs, finish=st.booleans())
def test_any_frames_at_any_times_play_back_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, specs: list[tuple[int, int, int, int]], finish: bool
) -> None:
    need_ffmpeg()
    directory = tmp_path_factory.mktemp("mkv")
    size = specs[0][1]
    frames = [jpeg(seed, size, size, max(1, q)) for seed, _, q, _ in specs]
    times = [sum(step for *_, step in specs[: i + 1]) - specs[0][3] for i in range(len(specs))]
    path = write(directory, frames, times, finish)
    assert extract_frames(path) == frames
    info = probe(path)
    assert info["streams"][0]["codec_name"] == "mjpeg"
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (size, size)
    pts = [round(float(p["pts_time"]) * 1000) for p in info["packets"]]
    assert pts == times
    if finish:
        assert float(info["format"]["duration"]) == pytest.approx((times[-1] + 33) / 1000)
        mkvinfo(path)


def test_cut_short_anywhere_it_plays_up_to_its_last_whole_frame(tmp_path: Path) -> None:
    """A crash or power cut can end the file at any byte: what is whole still plays."""
    need_ffmpeg()
    frames = [jpeg(i, 32, 24, 60) for i in range(40)]
    times = [i * 100 for i in range(40)]  # four clusters
    whole = write(tmp_path, frames, times, finish=False).read_bytes()
    ends = []
    pos = 0
    for f in frames:
        pos = whole.index(f, pos) + len(f)
        ends.append(pos)
    for cut in (ends[0], ends[9] + 5, ends[10] - 3, ends[25], ends[33] + 1, len(whole) - 1):
        clip = tmp_path / f"cut-{cut}.mkv"
        clip.write_bytes(whole[:cut])
        whole_frames = sum(1 for e in ends if e <= cut)
        got = extract_frames(clip)
        assert got[:whole_frames] == frames[:whole_frames], cut
        assert len(got) in (whole_frames, whole_frames + 1), cut  # + a cut one, at most


def test_a_new_file_never_replaces_one(tmp_path: Path) -> None:
    first = write(tmp_path, [jpeg(1, 8, 8, 50)], [0], finish=True)
    second = write(tmp_path, [jpeg(2, 8, 8, 50)], [0], finish=True)
    assert first.name == "borescope-20260101-120000.mkv"
    assert second.name == "borescope-20260101-120000-1.mkv"
    assert first.read_bytes() != second.read_bytes()


def test_a_full_disk_cuts_the_failed_frame_off_and_finishes_a_playable_file(
    tmp_path: Path,
) -> None:
    """The kernel's own ENOSPC, from a small tmpfs (root only)."""
    need_ffmpeg()
    disk = tmp_path / "disk"
    disk.mkdir()
    import subprocess

    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()!r}")
    try:
        mkv = MkvFile.create(str(disk), "borescope-20260101-120000.mkv", "test", 1.8e9)
        frames = [jpeg(i, 64, 64, 95) for i in range(200)]
        written = []
        with pytest.raises(OSError) as err:
            for i, f in enumerate(frames):
                mkv.add(f, i * 40)
                written.append(f)
        assert err.value.errno == 28  # ENOSPC
        mkv.finish(len(written) * 40.0)  # no room for the Cues: finished without them
        path = disk / "borescope-20260101-120000.mkv"
        assert os.path.getsize(path) <= 256 * 1024
        assert extract_frames(path) == written
        assert len(written) > 10
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)
