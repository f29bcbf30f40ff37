# SPDX-License-Identifier: GPL-3.0-or-later
"""The recording control object: start/stop/toggle answers, the events the page gets, the
limits and the floor that stop a recording by themselves, and a slow disk that never makes the
camera wait (frames are dropped and counted instead)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.media import extract_frames, jpeg, need_ffmpeg
from support.waiting import wait_for

from bridge.capture import recordings as recordings_mod
from bridge.capture.mkv import MkvFile
from bridge.capture.names import RECORDING_NAME, recording_name, with_number
from bridge.capture.recordings import ANSWER_S, MAX_QUEUED_FRAMES, Recordings

FRAMES = [jpeg(i, 32, 24, 70) for i in range(30)]


def feed(rec: Recordings, n: int, fps: float = 30.0, t0: float = 1000.0) -> None:
    for i in range(n):
        rec.offer(FRAMES[i % len(FRAMES)], t0 + i / fps)


def test_toggle_starts_and_stops_with_events_and_a_playable_file(tmp_path: Path) -> None:
    need_ffmpeg()
    events: list[dict[str, Any]] = []
    rec = Recordings(str(tmp_path), on_event=events.append)
    started = rec.toggle().result(5)
    assert started["ok"] and RECORDING_NAME.fullmatch(started["name"])
    assert rec.status()["running"] and rec.status()["name"] == started["name"]
    refused = rec.start().result(5)
    assert not refused["ok"] and "already recording" in refused["error"]
    feed(rec, 45)
    wait_for(lambda: rec.status()["frames"] == 45, what="45 frames written")
    stopped = rec.toggle().result(5)
    assert stopped["ok"] and stopped["frames"] == 45 and stopped["dropped"] == 0
    assert stopped["duration_s"] == pytest.approx(45 / 30, abs=0.002)
    assert events == [
        {"state": "started", "name": started["name"]},
        {"state": "stopped", "name": started["name"]},
    ]
    status = rec.status()
    assert not status["running"] and status["last_error"] is None
    got = extract_frames(tmp_path / started["name"])
    assert got == [FRAMES[i % len(FRAMES)] for i in range(45)]
    assert rec.stop().result(5) == {"ok": False, "error": "no recording is running"}


def test_a_recording_without_frames_keeps_no_file(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    rec = Recordings(str(tmp_path), on_event=events.append)
    name = rec.start().result(5)["name"]
    stopped = rec.stop().result(5)
    assert not stopped["ok"] and "no frame arrived" in stopped["error"]
    assert list(tmp_path.iterdir()) == []
    assert events[-1]["state"] == "stopped" and events[-1]["name"] == name
    assert "no frame arrived" in events[-1]["reason"]


def test_an_unwritable_directory_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    rec = Recordings(str(tmp_path / "file" / "videos"))
    reply = rec.start().result(5)
    assert not reply["ok"] and "--recordings-dir" in reply["error"]
    wait_for(lambda: not rec.status()["running"], what="the failed recording to end")
    assert rec.status()["last_error"] == reply["error"]


def test_the_size_limit_stops_it_with_a_playable_file(tmp_path: Path) -> None:
    need_ffmpeg()
    events: list[dict[str, Any]] = []
    limit = 64 * 1024
    rec = Recordings(str(tmp_path), max_bytes=limit, on_event=events.append)
    name = rec.start().result(5)["name"]
    for i in range(400):  # ~1 KiB frames: the limit comes first
        rec.offer(FRAMES[i % len(FRAMES)], 10.0 + i / 30)
        if not rec.status()["running"]:
            break
        time.sleep(0.001)
    wait_for(lambda: not rec.status()["running"], what="the size limit")
    status = rec.status()
    assert "size limit" in status["last_error"]
    assert events[-1] == {"state": "stopped", "name": name, "reason": status["last_error"]}
    size = (tmp_path / name).stat().st_size
    assert size <= limit
    assert len(extract_frames(tmp_path / name)) == status["frames"]


def test_the_time_limit_stops_even_without_frames_coming(tmp_path: Path) -> None:
    now = [0.0]
    rec = Recordings(str(tmp_path), max_seconds=10.0, clock=lambda: now[0])
    rec.start().result(5)
    rec.offer(FRAMES[0], 0.0)
    wait_for(lambda: rec.status()["frames"] == 1, what="one frame")
    now[0] = 10.0  # no more frames: the writer's own wake-ups notice the limit
    wait_for(lambda: not rec.status()["running"], what="the time limit")
    assert "time limit (10 s" in rec.status()["last_error"]
    assert rec.last is not None and (tmp_path / rec.last.name).exists()


def test_the_free_space_floor_stops_it(tmp_path: Path) -> None:
    calls = [0]

    def free_space(directory: str, need: int) -> str | None:
        calls[0] += 1
        return "only 1.0 MiB free" if calls[0] > 2 else None

    now = [0.0]
    rec = Recordings(str(tmp_path), free_space=free_space, clock=lambda: now[0])
    name = rec.start().result(5)["name"]
    for i in range(10):
        now[0] = float(i)  # a space check per frame (one per SPACE_CHECK_S)
        rec.offer(FRAMES[i], float(i))
        if not rec.status()["running"]:
            break
        wait_for(lambda i=i: rec.status()["frames"] >= i + 1 or not rec.status()["running"])  # type: ignore[misc]
    wait_for(lambda: not rec.status()["running"], what="the floor")
    error = rec.status()["last_error"]
    assert error == f"disk nearly full: recording to {tmp_path / name} stopped: only 1.0 MiB free"
    assert rec.status()["frames"] == 1  # the first check was at the start


def test_a_slow_disk_never_blocks_the_camera(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk hangs: offer() still returns at once; what does not fit the queue is dropped
    and counted; the stop answers by its deadline; the file gets what was queued."""
    release = threading.Event()
    real_add = MkvFile.add

    def slow_add(self: MkvFile, data: bytes, ms: int) -> bool:
        release.wait(30)
        return real_add(self, data, ms)

    monkeypatch.setattr(MkvFile, "add", slow_add)
    now = [0.0]
    rec = Recordings(str(tmp_path), clock=lambda: now[0])
    name = rec.start().result(5)["name"]
    n = MAX_QUEUED_FRAMES + 100
    offering = threading.Thread(target=feed, args=(rec, n))
    offering.start()
    offering.join(10)
    assert not offering.is_alive(), "offer() waited for the disk"
    status = rec.status()
    assert 99 <= status["dropped"] <= 100  # the writer holds one, the queue the rest
    stop = rec.stop()
    now[0] = ANSWER_S
    rec.expire()
    late = stop.result(1)
    assert late["pending"] and "still being finished" in late["error"]
    release.set()
    wait_for(lambda: rec.last is not None and rec.last.frames == n - rec.last.dropped)
    assert (tmp_path / name).exists()


def test_shutdown_finishes_the_running_recording(tmp_path: Path) -> None:
    need_ffmpeg()
    rec = Recordings(str(tmp_path))
    name = rec.start().result(5)["name"]
    feed(rec, 10)
    wait_for(lambda: rec.status()["frames"] == 10)
    rec.shutdown(5)
    assert not rec.status()["running"]
    assert len(extract_frames(tmp_path / name)) == 10
    assert recordings_mod.DEFAULT_MAX_BYTES == 2 * 1024**3  # the documented defaults
    assert recordings_mod.DEFAULT_MAX_SECONDS == 3600.0


def test_the_name_is_local_time_and_the_pattern_knows_exactly_ours() -> None:
    t = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)) + 0.9
    name = recording_name(t)
    assert name == "borescope-20260304-050607.mkv"
    assert RECORDING_NAME.fullmatch(name) and RECORDING_NAME.fullmatch(with_number(name, 12))
    for other in (
        "borescope-20260304-050607.mkv\n",
        "borescope-20260304-050607-100.mkv",
        "borescope-20260304-050607-089.jpg",
        "../borescope-20260304-050607.mkv",
        "borescope-2026030\uff14-050607.mkv",  # a full-width digit
        "x.mkv",
    ):
        assert not RECORDING_NAME.fullmatch(other), other
