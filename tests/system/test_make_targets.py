# SPDX-License-Identifier: GPL-3.0-or-later
"""What `make demo` installs against what the test targets add (issue 22): a newcomer's demo
gets the program and its runtime packages, never the test toolchain.

Read from `make -n` (nothing is installed or built): the recursive `deps` calls and the pip
lines the targets would run for a venv that does not exist yet.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.paths import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")

TEST_ONLY = ("chromium", "chromium-driver", "gcc-multilib", "lintian", "udev", "iproute2")


def dry_run(target: str, tmp_path: Path) -> str:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(REPO), target, f"VENV={tmp_path / 'v'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def apt_lists(text: str) -> set[str]:
    out: set[str] = set()
    for line in text.splitlines():
        if "deps APT_PACKAGES=" in line:
            out.update(line.split('APT_PACKAGES="', 1)[1].split('"', 1)[0].split())
    return out


def test_make_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    text = dry_run("demo", tmp_path)
    packages = apt_lists(text)
    assert {"python3-venv", "libturbojpeg0", "libsystemd-dev"} <= packages
    assert not packages & set(TEST_ONLY), packages & set(TEST_ONLY)
    pip = [line for line in text.splitlines() if "pip install" in line and "--upgrade" not in line]
    assert pip == [f"{tmp_path / 'v'}/bin/python -m pip install -q -e ."], pip
    assert text.rstrip().endswith(f"{tmp_path / 'v'}/bin/borescope-bridge demo")


def test_the_test_targets_add_the_toolchain_themselves(tmp_path: Path) -> None:
    for target in ("check", "lint", "unit"):
        text = dry_run(target, tmp_path)
        packages = apt_lists(text)
        assert {"chromium", "chromium-driver", "udev"} <= packages, (target, packages)
        assert "pip install -q -e '.[dev,bench]'" in text, target
