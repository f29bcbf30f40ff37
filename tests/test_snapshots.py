# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot files: exact bytes, never overwritten, never partial, errors reported."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import snapshots
from bridge.snapshots import SnapshotRequest, SnapshotWriter, snapshot_name, write_atomically

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
