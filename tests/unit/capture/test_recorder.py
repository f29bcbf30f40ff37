# SPDX-License-Identifier: GPL-3.0-or-later
"""`--record`: a full disk (the kernel's real ENOSPC, from /dev/full), a disk that stops
answering (a FIFO nobody reads), and reloads that must neither wait on the disk nor leave a
worker holding its file, and that restart a recording stopped by a full disk."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_for

from bridge.app.config import Config
from bridge.capture.recorder import MAX_QUEUED_FRAMES, Recorder

FRAME = b"\xff\xd8" + bytes(range(256)) * 40 + b"\xff\xd9"  # ~10 KiB


def full_disk(path: Path) -> None:
    """`path` on a disk with no space left: every write fails with the kernel's ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/full")


def test_full_disk_stops_the_recording_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "rec.mjpeg"
    full_disk(path)
    rec = Recorder(str(path))
    rec.start()
    rec.append(FRAME)
    wait_for(lambda: rec.error is not None)
    error = rec.error
    assert error is not None
    assert "disk full" in error and "free some space, then reload" in error
    assert not rec.active
    rec.stop(timeout=5)


def test_stop_never_waits_on_a_stuck_disk_and_the_worker_lets_go_of_its_file(
    tmp_path: Path,
) -> None:
    """A reload while the disk is stuck and the queue is full: stop() returns at once, and once
    the disk answers again every queued frame lands and the worker closes its file."""
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened, never read: writes block
    try:
        rec = Recorder(str(fifo))
        rec.start()
        assert rec.active
        for _ in range(MAX_QUEUED_FRAMES + 50):
            rec.append(FRAME)
        wait_for(lambda: rec.dropped > 0 and rec.frames > 0)  # writing, the queue full
        while True:  # until the worker is stuck in write(): the pipe is full
            frames = rec.frames
            time.sleep(0.3)
            if rec.frames == frames:
                break
        queued = rec.frames + rec._queue.qsize()
        started = time.monotonic()
        rec.stop()
        waited = time.monotonic() - started
        assert waited < 0.25, f"stop() waited {waited:.2f} s on the disk"
        assert not rec.active
        rec.append(FRAME)  # refused after stop
        # The disk answers again: drain the FIFO until every writer has closed it (EOF).
        os.set_blocking(reader, True)
        got = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            chunk = os.read(reader, 1 << 16)
            if not chunk:
                break  # EOF: the worker closed its fd
            got += len(chunk)
        else:
            pytest.fail("the old recorder still holds its file")
    finally:
        os.close(reader)
    # Every frame queued before stop() was written (one may have been in flight already).
    assert got // len(FRAME) in (queued, queued + 1)
    assert got % len(FRAME) == 0


def _daemon(tmp_path: Path, record: Path) -> Any:
    from bridge.app.build import NullOutput
    from bridge.app.daemon import Daemon

    cfg = Config(
        device_ip="127.0.0.1",
        camera="none",
        record=str(record),
        snapshot_dir=str(tmp_path / "snaps"),
        control_socket=str(tmp_path / "c.sock"),
    )
    return Daemon(cfg, reload_config=lambda: cfg, output_factory=lambda c: NullOutput())


def test_reload_restarts_a_recording_stopped_by_a_full_disk(tmp_path: Path) -> None:
    """The advice "free some space, then reload" works although `record` did not change."""
    path = tmp_path / "rec.mjpeg"
    full_disk(path)
    daemon = _daemon(tmp_path, path)
    first = daemon.recorder
    assert first is not None
    first.start()
    first.append(FRAME)
    wait_for(lambda: first.error is not None)
    path.unlink()  # space freed: the file is an ordinary file again
    path.write_bytes(FRAME)  # what was recorded before the disk filled up
    daemon.reload()
    second = daemon.recorder
    assert second is not None and second is not first and second.active
    assert second.error is None
    second.append(FRAME)
    wait_for(lambda: second.frames == 1)
    daemon._stop_recorder()
    assert path.read_bytes() == FRAME * 2  # appended, never truncated


def test_reload_with_a_stuck_disk_does_not_stall_the_loop(tmp_path: Path) -> None:
    """Changing `record` while the old file's disk is stuck: the reload returns at once."""
    from bridge.app.build import NullOutput
    from bridge.app.daemon import Daemon

    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        old = Config(
            device_ip="127.0.0.1",
            camera="none",
            record=str(fifo),
            snapshot_dir=str(tmp_path / "snaps"),
            control_socket=str(tmp_path / "c.sock"),
        )
        new = Config(**{**old.__dict__, "record": str(tmp_path / "new.mjpeg")})
        daemon = Daemon(old, reload_config=lambda: new, output_factory=lambda c: NullOutput())
        stuck = daemon.recorder
        assert stuck is not None
        stuck.start()
        for _ in range(MAX_QUEUED_FRAMES + 50):
            stuck.append(FRAME)
        wait_for(lambda: stuck.dropped > 0)
        done = threading.Event()

        def reload() -> None:
            daemon.reload()
            done.set()

        t = threading.Thread(target=reload)
        started = time.monotonic()
        t.start()
        assert done.wait(10)
        waited = time.monotonic() - started
        assert waited < 0.5, f"reload waited {waited:.2f} s on the old recording's disk"
        assert daemon.recorder is not None and daemon.recorder.path == str(tmp_path / "new.mjpeg")
        daemon._stop_recorder()
    finally:
        os.close(reader)  # the stuck worker now fails with EPIPE and closes its file
    wait_for(lambda: stuck._fd is None)
    assert stuck.error is not None and "stopped" in stuck.error  # with a reported reason


def test_check_record_path_refuses_what_cannot_be_recorded_to(tmp_path: Path) -> None:
    from bridge.capture.recorder import check_record_path
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        check_record_path(str(tmp_path / "missing" / "r.mjpeg"))
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ConfigError, match="cannot record to"):
        check_record_path(str(tmp_path))
    existing = tmp_path / "r.mjpeg"
    existing.write_bytes(b"old frames")
    check_record_path(str(existing))
    assert existing.read_bytes() == b"old frames"  # appended to later, never truncated
    check_record_path(str(tmp_path / "new.mjpeg"))
    assert not (tmp_path / "new.mjpeg").exists()  # nothing is created by the check
    existing.chmod(0o444)
    if not os.access(existing, os.W_OK):  # root may write anyway
        with pytest.raises(ConfigError, match="cannot record to"):
            check_record_path(str(existing))
