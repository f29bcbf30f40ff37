# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot files: exact bytes, never overwritten, never partial, errors reported."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.capture import snapshots
from bridge.capture.names import SNAPSHOT_NAME, snapshot_name
from bridge.capture.snapshots import (
    SnapshotRequest,
    SnapshotResult,
    Snapshots,
    SnapshotWriter,
    write_atomically,
)

NAME_RE = re.compile(r"^borescope-\d{8}-\d{6}-\d{3}(-\d+)?\.jpg$")


def test_name_format_is_local_time_with_milliseconds() -> None:
    t = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)) + 0.089
    assert snapshot_name(t) == "borescope-20260304-050607-089.jpg"


def test_same_millisecond_never_overwrites(tmp_path: Path) -> None:
    t = time.time()
    paths = [write_atomically(str(tmp_path), bytes([i]) * 10, t, 0o640) for i in range(3)]
    assert len(set(paths)) == 3
    names = [os.path.basename(p) for p in paths]
    assert names[1] == names[0][:-4] + "-1.jpg"
    assert names[2] == names[0][:-4] + "-2.jpg"
    for i, p in enumerate(paths):
        assert Path(p).read_bytes() == bytes([i]) * 10
        assert NAME_RE.match(os.path.basename(p))
    assert sorted(os.listdir(tmp_path)) == sorted(names)  # no temp files left


def test_mode_follows_umask(tmp_path: Path) -> None:
    p = write_atomically(str(tmp_path), b"\xff\xd8x\xff\xd9", time.time(), 0o666 & ~0o027)
    assert os.stat(p).st_mode & 0o777 == 0o640


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshots.os, "fsync", boom)
    with pytest.raises(OSError):
        write_atomically(str(tmp_path), b"data", time.time(), 0o640)
    assert os.listdir(tmp_path) == []


def test_writer_reports_error_and_keeps_going(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    w = SnapshotWriter(str(blocked / "sub"))
    w.start()
    try:
        req = SnapshotRequest("test")
        w.save(b"abc", req)
        result = req.wait(5)
        assert result is not None and result.path is None
        assert result.error and str(blocked) in result.error
        assert w.failed == 1 and w.taken == 0 and w.last_error
        w.set_directory(str(tmp_path / "ok"))
        req2 = SnapshotRequest("test")
        w.save(b"abc", req2)
        r2 = req2.wait(5)
        assert r2 is not None and r2.path is not None
        assert Path(r2.path).read_bytes() == b"abc"
        assert w.taken == 1 and w.last_path == r2.path and w.last_error is None
    finally:
        w.stop()


@contextlib.contextmanager
def unwritable_dir(d: Path) -> Iterator[str]:
    """A read-only bind mount for root (who ignores permissions), else mode 0500."""
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o500)
        try:
            yield "permission denied"
        finally:
            d.chmod(0o700)
        return
    try:
        subprocess.run(["mount", "--bind", str(d), str(d)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a read-only mount here: {exc}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True, capture_output=True)
        yield "read-only"
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False, capture_output=True)


def test_unwritable_directory_is_reported_and_left_clean(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    with unwritable_dir(d) as expected:
        w = SnapshotWriter(str(d))
        w.start()
        try:
            req = SnapshotRequest("test")
            w.save(b"\xff\xd8data\xff\xd9", req)
            result = req.wait(5)
        finally:
            w.stop()
        assert result is not None and result.path is None
        assert result.error is not None and expected in result.error and str(d) in result.error
        assert os.listdir(d) == []


def test_error_sentences_say_what_happened() -> None:
    assert "disk full" in snapshots.describe_os_error(OSError(errno.ENOSPC, "x"), "/d")
    assert "read-only" in snapshots.describe_os_error(OSError(errno.EROFS, "x"), "/d")
    assert "permission denied" in snapshots.describe_os_error(OSError(errno.EACCES, "x"), "/d")


# ---- one owner from press to file, one bound for waiting + writing (issue 10, item 4) ----------


class GatedDisk:
    """The write edge of SnapshotWriter made slow: every write waits for `gate`, then is real."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = 0

    def write(self, directory: str, data: bytes, wall: float, mode: int) -> str:
        self.started += 1
        assert self.gate.wait(30), "the test never opened the gate"
        return write_atomically(directory, data, wall, mode)


@contextlib.contextmanager
def coordinator(
    directory: Path,
    max_in_flight: int,
    disk: GatedDisk | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Snapshots]:
    writer = SnapshotWriter(str(directory), write=disk.write if disk else write_atomically)
    writer.start()
    try:
        yield Snapshots(writer, state=lambda: "streaming", max_in_flight=max_in_flight, clock=clock)
    finally:
        if disk is not None:
            disk.gate.set()
        writer.stop()


def test_a_slow_disk_bounds_the_whole_path_and_is_named_as_the_cause(tmp_path: Path) -> None:
    disk = GatedDisk()
    saved: list[str] = []
    now = [100.0]
    with coordinator(tmp_path, max_in_flight=4, disk=disk, clock=lambda: now[0]) as snaps:
        snaps.writer.on_saved = saved.append
        accepted = [snaps.request("button") for _ in range(4)]
        for i in range(4):
            snaps.offer(b"\xff\xd8frame%d\xff\xd9" % i)
        assert snaps.waiting == 0 and snaps.writer.pending == 4
        # The fifth is refused at once, and the reason is the disk, not the stream.
        refused = snaps.request("control")
        result = refused.wait(0)
        assert result is not None and result.path is None and result.error is not None
        assert "the disk is slow: 4 snapshots still being written to " + str(tmp_path) in (
            result.error
        )
        assert snaps.refused == 1
        # A waiter whose time is up is told its snapshot is still coming, and its name.
        now[0] += accepted[3].wait_s
        snaps.expire()  # the loop's tick
        late = accepted[3].answer.result(0)
        assert late.pending and late.path is None and late.error is not None
        assert late.name == accepted[3].name and late.name is not None
        assert "the disk is slow" in late.error and late.name in late.error
        assert "no complete frame" not in late.error
        # The disk recovers: every accepted request gets exactly one file.
        disk.gate.set()
        results = [r.wait(10) for r in accepted]
    assert all(r is not None and r.path is not None for r in results)
    paths = [r.path for r in results if r is not None]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(os.path.basename(p) for p in paths if p) and len(files) == 4
    assert sorted(saved) == sorted(p for p in paths if p)
    assert os.path.basename(paths[3] or "").startswith(late.name[: -len(".jpg")])
    for i, r in enumerate(results):
        assert r is not None and Path(r.path or "").read_bytes() == b"\xff\xd8frame%d\xff\xd9" % i


def test_no_frame_by_the_deadline_fails_and_never_writes(tmp_path: Path) -> None:
    now = [100.0]
    with coordinator(tmp_path, max_in_flight=4, clock=lambda: now[0]) as snaps:
        req = snaps.request("control", wait_s=0.2)
        other = snaps.request("button", wait_s=0.2)
        now[0] = 100.1
        snaps.expire()  # the loop's tick, before the deadline
        assert not req.answer.done() and other.result is None
        now[0] = 100.2
        snaps.expire()
        result = req.answer.result(0)
        assert result.error is not None and not result.pending
        assert "no complete frame arrived within 0.2 s (daemon state: streaming)" in result.error
        assert other.result is not None and "no complete frame" in (other.result.error or "")
        snaps.offer(b"\xff\xd8late\xff\xd9")  # nobody waits any more: nothing is written
        snaps.writer.stop()
    assert list(tmp_path.iterdir()) == []


def test_the_answer_future_comes_at_the_deadline_from_the_tick_alone(tmp_path: Path) -> None:
    """Nobody blocks: the tick (`expire`, on a stepped clock) answers no-frame and "pending"
    with the file's name; a file written in time answers with its path."""
    disk = GatedDisk()
    now = [100.0]
    writer = SnapshotWriter(str(tmp_path), write=disk.write)
    writer.start()
    try:
        snaps = Snapshots(writer, state=lambda: "streaming", clock=lambda: now[0])
        accepted = snaps.request("control", wait_s=5.0)
        frameless = snaps.request("control", wait_s=5.0)
        answers: dict[str, SnapshotResult] = {}
        accepted.add_done_callback(lambda r: answers.setdefault("accepted", r))
        frameless.add_done_callback(lambda r: answers.setdefault("frameless", r))
        snaps.expire()
        assert answers == {}
        snaps.offer(b"\xff\xd8slow\xff\xd9")  # the oldest waiter takes it; its disk hangs
        now[0] = 104.9
        snaps.expire()
        assert answers == {}
        now[0] = 105.0
        snaps.expire()
        assert set(answers) == {"accepted", "frameless"}
        late = answers["accepted"]
        assert late.pending and late.name == accepted.name and late.name is not None
        assert "the disk is slow" in (late.error or "") and late.name in (late.error or "")
        assert "no complete frame arrived within 5 s" in (answers["frameless"].error or "")
        assert not answers["frameless"].pending
        disk.gate.set()
        final = accepted.wait(10)  # the file is still written, and `result` says where
        assert final is not None and final.path is not None
        assert os.path.basename(final.path) == late.name
        assert accepted.answer.result(0) is late  # the answer stays what was sent
    finally:
        disk.gate.set()
        writer.stop()


def test_the_answer_is_the_path_when_written_in_time(tmp_path: Path) -> None:
    with coordinator(tmp_path, max_in_flight=4) as snaps:
        req = snaps.request("control", wait_s=300.0)
        snaps.offer(b"\xff\xd8ok\xff\xd9")
        result = req.answer.result(10)
        assert result.path is not None and Path(result.path).read_bytes() == b"\xff\xd8ok\xff\xd9"
        assert req.answer.cancel() is False  # nobody may cancel an answer that is due
        snaps.expire()
        assert req.answer.result(0) is result


def test_a_refused_request_is_answered_at_once(tmp_path: Path) -> None:
    with coordinator(tmp_path, max_in_flight=1) as snaps:
        snaps.request("button")
        refused = snaps.request("control")
        got: list[SnapshotResult] = []
        refused.add_done_callback(got.append)  # already known: called right here
        assert len(got) == 1 and "too many snapshots" in (got[0].error or "")


def test_the_name_pattern_matches_exactly_the_names_made() -> None:
    for wall in (0.0, 1_700_000_000.999, time.time()):
        name = snapshot_name(wall)
        assert SNAPSHOT_NAME.fullmatch(name)
        assert SNAPSHOT_NAME.fullmatch(name[: -len(".jpg")] + "-9999.jpg")
        assert not SNAPSHOT_NAME.fullmatch(name[: -len(".jpg")] + "-10000.jpg")
        assert not SNAPSHOT_NAME.fullmatch(name + "\n")


def test_too_many_waiting_for_a_frame_is_refused_with_that_reason(tmp_path: Path) -> None:
    with coordinator(tmp_path, max_in_flight=3) as snaps:
        for _ in range(3):
            snaps.request("button")
        refused = snaps.request("button").wait(0)
        assert refused is not None and refused.error is not None
        assert "too many snapshots (3) are already waiting for a frame" in refused.error
        assert "(daemon state: streaming)" in refused.error
        snaps.fail_waiting("the daemon is stopping")
        assert snaps.waiting == 0


def test_stale_temporary_files_are_swept_at_start_and_nothing_else(tmp_path: Path) -> None:
    old = time.time() - 3600
    stale = tmp_path / ".borescope-abc123.tmp"
    stale.write_bytes(b"half a jpeg")
    fresh = tmp_path / ".borescope-fresh.tmp"  # may be about to be locked by its writer
    fresh.write_bytes(b"x")
    locked = tmp_path / ".borescope-locked.tmp"  # another daemon is writing it right now
    locked.write_bytes(b"x")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / ".borescope-link.tmp"
    link.symlink_to(precious)
    subdir = tmp_path / ".borescope-dir.tmp"
    subdir.mkdir()
    others = [tmp_path / "other.tmp", tmp_path / "borescope-20260101-000000-000.jpg"]
    for p in others:
        p.write_bytes(b"x")
    for p in (stale, locked, precious, *others):
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    holder = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        w = SnapshotWriter(str(tmp_path))
        w.start()
        w.stop()
    finally:
        os.close(holder)
    assert not stale.exists()
    for p in (fresh, locked, precious, subdir, *others):
        assert p.exists(), p
    assert link.is_symlink() and precious.read_text() == "keep me"


def test_read_only_errors_explain_the_service_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.capture.recorder import _describe

    erofs = OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/borescope-bridge")
    for msg in (
        snapshots.describe_os_error(erofs, "/home/u/Pictures"),
        _describe(erofs, "/home/u/rec/x.mjpeg"),
    ):
        assert "sandbox" in msg and "/var/lib/borescope-bridge" in msg
        assert "sudo systemctl edit borescope-bridge" in msg and "ReadWritePaths=" in msg
    assert "ReadWritePaths=/home/u/rec" in _describe(erofs, "/home/u/rec/x.mjpeg")
    monkeypatch.delenv("INVOCATION_ID")
    msg = snapshots.describe_os_error(erofs, "/mnt/cd")
    assert "mounted read-only" in msg and "ReadWritePaths" not in msg


def test_a_failing_on_saved_listener_does_not_stop_the_writer(tmp_path: Path) -> None:
    def broken(path: str) -> None:
        raise RuntimeError("listener bug")

    w = SnapshotWriter(str(tmp_path), on_saved=broken)
    w.start()
    try:
        for i in range(2):
            req = SnapshotRequest("test")
            w.save(b"frame%d" % i, req)
            result = req.wait(5)
            assert result is not None and result.path is not None
    finally:
        w.stop()
    assert w.taken == 2


def test_every_final_failure_is_told_to_on_failed_and_nothing_else(tmp_path: Path) -> None:
    """A press has nobody waiting for its answer: `on_failed` is how the page hears of it.
    Refused, no frame, not written: each once, with its reason; a file or "pending", never."""
    told: list[tuple[str, str]] = []
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    now = [100.0]
    writer = SnapshotWriter(str(blocked / "sub"))
    writer.start()
    try:
        snaps = Snapshots(
            writer,
            state=lambda: "streaming",
            max_in_flight=2,
            clock=lambda: now[0],
            on_failed=lambda req, why: told.append((req.origin, why)),
        )
        unwritable = snaps.request("button", wait_s=5.0)
        frameless = snaps.request("control", wait_s=1.0)
        snaps.request("web page")  # refused at once: two already in flight
        assert told[0][0] == "web page" and "too many snapshots" in told[0][1]
        snaps.offer(b"\xff\xd8x\xff\xd9")  # the button's request takes it; the write fails
        assert unwritable.wait(5) is not None
        assert told[1][0] == "button" and str(blocked) in told[1][1]
        now[0] = 101.0
        snaps.expire()
        assert frameless.result is not None
        assert told[2] == ("control", frameless.result.error)
        assert len(told) == 3
        writer.set_directory(str(tmp_path / "ok"))
        saved = snaps.request("button", wait_s=5.0)
        snaps.offer(b"\xff\xd8y\xff\xd9")
        result = saved.wait(5)
        assert result is not None and result.path is not None
        assert len(told) == 3  # a saved snapshot is no failure
    finally:
        writer.stop()


def test_a_failing_on_failed_listener_still_answers(tmp_path: Path) -> None:
    def broken(req: SnapshotRequest, why: str) -> None:
        raise RuntimeError("listener bug")

    with coordinator(tmp_path, max_in_flight=1) as snaps:
        snaps.on_failed = broken
        snaps.request("button")
        refused = snaps.request("control")
        result = refused.answer.result(0)
        assert result.error is not None and "too many snapshots" in result.error
