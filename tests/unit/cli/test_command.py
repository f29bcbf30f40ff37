# SPDX-License-Identifier: GPL-3.0-or-later
"""Advice names the program as it was started, so a printed command runs as printed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bridge.cli.command import command_line


def _script(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    script = where / "borescope-bridge"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_on_path_it_is_the_bare_name(tmp_path: Path) -> None:
    script = _script(tmp_path / "bin")
    assert command_line(str(script), path=str(tmp_path / "bin")) == "borescope-bridge"


def test_a_venv_script_off_path_is_named_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home")
    script = _script(tmp_path / "src" / ".venv" / "bin")
    monkeypatch.chdir(tmp_path / "src")
    # as `make demo` starts it: a path relative to the checkout
    assert command_line(".venv/bin/borescope-bridge", path="/usr/bin") == str(script)
    # another borescope-bridge on PATH is not this one: still the full path
    other = _script(tmp_path / "other")
    assert command_line(str(script), path=str(other.parent)) == str(script)


def test_under_home_it_is_shortened_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    script = _script(tmp_path / "src" / ".venv" / "bin")
    assert command_line(str(script), path="/usr/bin") == "~/src/.venv/bin/borescope-bridge"
    spaced = _script(tmp_path / "my src" / ".venv" / "bin")
    assert command_line(str(spaced), path="/usr/bin") == f"'{spaced}'"


def test_python_dash_m(tmp_path: Path) -> None:
    assert command_line(os.path.join("bridge", "__main__.py")) == f"{sys.executable} -m bridge"
