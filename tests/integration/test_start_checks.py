# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths in the settings are checked at start (issue 22): a recording that cannot be opened or
a mistyped snapshot folder stops `run` with exit status 2 and the fix, before the device is
contacted, instead of a daemon that silently records or saves nothing (or makes a tree of
folders nobody looks in)."""

from __future__ import annotations

import os
from pathlib import Path

from support.daemon import run_cli


def run_once(tmp_path: Path, *extra: str) -> tuple[int, str]:
    r = run_cli(
        "run", "--config", str(tmp_path / "none.toml"), "--device-ip", "127.0.0.1",
        "--stream-port", "9", "--event-port", "9", "--camera", "none", "--http", "off",
        "--wait", "0.5", "--control-socket", str(tmp_path / "sock" / "control.sock"), *extra,
        env={"XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    return r.returncode, r.stderr


def test_a_recording_in_a_missing_folder_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    record = tmp_path / "typo" / "inspection.mjpeg"
    rc, err = run_once(tmp_path, "--snapshot-dir", str(tmp_path), "--record", str(record))
    assert rc == 2, err
    assert f"the folder {record.parent} does not exist" in err and "mkdir -p" in err
    assert not record.parent.exists()


def test_a_recording_that_cannot_be_opened_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    record = tmp_path / "a-folder"
    record.mkdir()
    rc, err = run_once(tmp_path, "--snapshot-dir", str(tmp_path), "--record", str(record))
    assert rc == 2, err
    assert f"cannot record to {record}" in err


def test_a_mistyped_snapshot_folder_is_not_created(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    typo = tmp_path / "Pictrues" / "Borescope"
    rc, err = run_once(tmp_path, "--snapshot-dir", str(typo))
    assert rc == 2, err
    assert f"{typo.parent} does not exist (a typo?)" in err
    assert not typo.parent.exists()


def test_a_new_snapshot_folder_in_an_existing_one_is_made(tmp_path: Path) -> None:
    """The check refuses only missing parents: the last folder is made as before."""
    (tmp_path / "none.toml").write_text("")
    new = tmp_path / "Borescope"
    rc, err = run_once(tmp_path, "--snapshot-dir", str(new))
    assert rc == 0, err  # no borescope answers within --wait: a clean stop
    assert new.is_dir() and os.access(new, os.W_OK)
