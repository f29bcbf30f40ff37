# SPDX-License-Identifier: GPL-3.0-or-later
"""The page's list of recordings: only our names, only regular files (never through a
symlink), newest first, with the duration a clean finish wrote and none for a file cut short."""

from __future__ import annotations

import os
from pathlib import Path

from support.media import jpeg

from bridge.capture.mkv import MkvFile
from bridge.web.recordings import list_recordings


def test_the_list_holds_our_files_only_newest_first(tmp_path: Path) -> None:
    frames = [jpeg(i, 16, 16, 50) for i in range(5)]
    done = MkvFile.create(str(tmp_path), "borescope-20260101-120000.mkv", "test", 1.8e9)
    cut = MkvFile.create(str(tmp_path), "borescope-20260101-130000.mkv", "test", 1.8e9)
    for i, f in enumerate(frames):
        done.add(f, i * 100)
        cut.add(f, i * 100)
    done.finish(500.0)
    cut.close()  # as after a SIGKILL
    os.utime(Path(done.path), (1000, 1000))
    os.utime(Path(cut.path), (2000, 2000))
    (tmp_path / "notes.mkv").write_bytes(b"x")
    (tmp_path / "borescope-20260101-140000.mkv").symlink_to(done.path)
    (tmp_path / "borescope-20260101-150000.mkv").mkdir()
    listed = list_recordings(str(tmp_path))
    assert [e["name"] for e in listed] == [
        "borescope-20260101-130000.mkv",
        "borescope-20260101-120000.mkv",
    ]
    assert listed[0]["duration"] is None
    assert listed[1]["duration"] == 0.5
    assert listed[1]["bytes"] == os.path.getsize(done.path) and listed[1]["time"] == 1000
    assert list_recordings(str(tmp_path / "missing")) == []
