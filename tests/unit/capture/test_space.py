# SPDX-License-Identifier: GPL-3.0-or-later
"""The free-space floor and the snapshot rate: a fake statvfs and a stepped clock; nothing is
written below the floor, and a flood is refused at once with the reason."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from support.waiting import wait_for

from bridge.capture.recorder import Recorder
from bridge.capture.snapshots import SnapshotResult, Snapshots, SnapshotWriter
from bridge.capture.space import MIN_FREE_BYTES, floor_bytes, low_space

MiB = 1024 * 1024
FRAME = b"\xff\xd8" + b"x" * 1000 + b"\xff\xd9"


def fake_statvfs(free: int, total: int) -> Callable[[str], Any]:
    def statvfs(path: str) -> Any:
        return SimpleNamespace(f_frsize=4096, f_bavail=free // 4096, f_blocks=total // 4096)

    return statvfs


def test_the_floor_is_64_mib_or_one_percent() -> None:
    assert floor_bytes(1024 * MiB) == MIN_FREE_BYTES == 64 * MiB
    assert floor_bytes(100_000 * MiB) == 1000 * MiB


def test_low_space_names_the_disk_and_the_floor(tmp_path: Path) -> None:
    roomy = fake_statvfs(free=500 * MiB, total=1000 * MiB)
    assert low_space(str(tmp_path), 10 * MiB, roomy) is None
    tight = fake_statvfs(free=70 * MiB, total=1000 * MiB)
    assert low_space(str(tmp_path), 1 * MiB, tight) is None
    why = low_space(str(tmp_path), 10 * MiB, tight)  # the write would cross the floor
    assert why is not None and "70.0 MiB free" in why and "64.0 MiB" in why
    assert "disk mounted on /" in why
    big = fake_statvfs(free=900 * MiB, total=100_000 * MiB)
    why = low_space(str(tmp_path / "not" / "made" / "yet"), 0, big)
    assert why is not None and "1000.0 MiB" in why and "1%" in why


def test_statvfs_failing_is_no_refusal(tmp_path: Path) -> None:
    def broken(path: str) -> Any:
        raise OSError(5, "Input/output error")

    assert low_space(str(tmp_path), 0, broken) is None


def test_a_snapshot_below_the_floor_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    free = [30 * MiB]

    def space(directory: str, need: int) -> str | None:
        return low_space(directory, need, fake_statvfs(free[0], 1000 * MiB))

    snapdir = tmp_path / "snaps"
    writer = SnapshotWriter(str(snapdir), free_space=space)
    writer.start()
    try:
        snaps = Snapshots(writer, state=lambda: "streaming")
        req = snaps.request("button")
        snaps.offer(FRAME)
        result = req.wait(10)
        assert result is not None and result.path is None and result.error is not None
        assert result.error.startswith("disk nearly full: snapshot not saved in " + str(snapdir))
        assert "30.0 MiB free" in result.error and "--snapshot-dir" in result.error
        assert writer.failed == 1 and writer.last_error == result.error
        assert not snapdir.exists() or os.listdir(snapdir) == []
        free[0] = 500 * MiB  # space freed: the next one is saved
        req = snaps.request("button")
        snaps.offer(FRAME)
        result = req.wait(10)
        assert result is not None and result.path is not None
        assert Path(result.path).read_bytes() == FRAME
    finally:
        writer.stop()


def test_at_most_four_per_second_from_everyone_together(tmp_path: Path) -> None:
    now = [100.0]
    writer = SnapshotWriter(str(tmp_path))  # not started: nothing needs writing here
    snaps = Snapshots(writer, state=lambda: "streaming", clock=lambda: now[0])
    origins = ["button", "web page", "control", "SIGUSR1"] * 5
    results = [snaps.request(o).wait(0) for o in origins]
    admitted = [r for r in results if r is None]  # waiting for a frame
    refused = [r for r in results if r is not None]
    assert len(admitted) == 4 and len(refused) == 16
    for r in refused:
        assert isinstance(r, SnapshotResult) and r.limited and r.path is None
        assert r.error is not None and "at most 4 per second" in r.error
    assert snaps.refused == 16
    now[0] += 0.25
    assert snaps.request("button").wait(0) is None  # one more a quarter second later
    assert snaps.request("button").wait(0) is not None
    now[0] += 10.0
    assert [snaps.request("control").wait(0) is None for _ in range(5)] == [True] * 4 + [False]


def test_a_refused_request_is_answered_at_once_and_writes_nothing(tmp_path: Path) -> None:
    writer = SnapshotWriter(str(tmp_path / "snaps"))
    writer.start()
    try:
        snaps = Snapshots(writer, state=lambda: "streaming", clock=lambda: 5.0)
        reqs = [snaps.request("web page") for _ in range(6)]
        assert all(r.answer.done() for r in reqs[4:])
        snaps.offer(FRAME)
        snaps.offer(FRAME)
        snaps.offer(FRAME)
        snaps.offer(FRAME)
        snaps.offer(FRAME)
        wait_for(lambda: writer.taken == 4, what="the four admitted snapshots")
        time.sleep(0.2)
        assert len(os.listdir(tmp_path / "snaps")) == 4
    finally:
        writer.stop()


def test_the_recording_is_refused_below_the_floor(tmp_path: Path) -> None:
    path = tmp_path / "rec.mjpeg"
    rec = Recorder(
        str(path), free_space=lambda d, n: low_space(d, n, fake_statvfs(10 * MiB, 500 * MiB))
    )
    rec.start()
    wait_for(lambda: rec.error is not None, what="the refusal")
    assert rec.error is not None
    assert rec.error.startswith(f"disk nearly full: recording to {path} stopped")
    assert "10.0 MiB free" in rec.error and "free some space, then reload" in rec.error
    rec.append(FRAME)
    rec.stop(timeout=5)
    assert not path.exists()  # not even an empty file


def test_the_recording_stops_when_the_disk_fills_up(tmp_path: Path) -> None:
    path = tmp_path / "rec.mjpeg"
    free = [900 * MiB]
    now = [0.0]
    rec = Recorder(
        str(path),
        free_space=lambda d, n: low_space(d, n, fake_statvfs(free[0], 1000 * MiB)),
        clock=lambda: now[0],
    )
    rec.start()
    rec.append(FRAME)
    wait_for(lambda: rec.frames == 1, what="the first frame")
    free[0] = 1 * MiB
    rec.append(FRAME)  # checked at most once a second: still written
    wait_for(lambda: rec.frames == 2, what="the second frame")
    now[0] = 1.5
    rec.append(FRAME)
    wait_for(lambda: rec.error is not None, what="the refusal")
    assert rec.error is not None and "disk nearly full" in rec.error
    rec.stop(timeout=5)
    assert path.read_bytes() == FRAME * 2
