# SPDX-License-Identifier: GPL-3.0-or-later
"""`make install` / `make uninstall` into a staging directory (DESTDIR), as a packager runs them.

Checks every installed path, that the staged venv carries no trace of the staging directory
(it must work once copied to /), that the installed command runs, that the user's config is
never overwritten, and that uninstall leaves nothing behind but an edited config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="make not installed"),
]

# Where each file of a default (PREFIX=/usr/local) install goes: the contract of issue 4.
LOCAL_PATHS = {
    "usr/local/bin/borescope-bridge",
    "usr/local/lib/borescope-bridge/bin/borescope-bridge",
    "usr/local/lib/borescope-bridge/pyvenv.cfg",
    "etc/systemd/system/borescope-bridge.service",
    "etc/systemd/system/borescope-bridge@.service",
    "etc/NetworkManager/dispatcher.d/90-borescope-bridge",
    "etc/networkd-dispatcher/routable.d/90-borescope-bridge",
    "etc/networkd-dispatcher/no-carrier.d/90-borescope-bridge",
    "etc/networkd-dispatcher/off.d/90-borescope-bridge",
    "etc/udev/rules.d/90-borescope-bridge.rules",
    "etc/modprobe.d/borescope-bridge.conf",
    "etc/modules-load.d/borescope-bridge.conf",
    "etc/sysctl.d/60-borescope-bridge.conf",
    "etc/sysusers.d/borescope-bridge.conf",
    "etc/borescope-bridge/config.toml",
    "usr/local/share/borescope-bridge/config.example.toml",
    "usr/local/share/borescope-bridge/50-borescope-bridge.network",
    "usr/local/share/man/man1/borescope-bridge.1",
    "usr/local/share/bash-completion/completions/borescope-bridge",
    "usr/local/share/zsh/site-functions/_borescope-bridge",
}
SOURCES = {
    "etc/udev/rules.d/90-borescope-bridge.rules": "udev/90-borescope-bridge.rules",
    "etc/modprobe.d/borescope-bridge.conf": "systemd/borescope-bridge.modprobe.conf",
    "etc/modules-load.d/borescope-bridge.conf": "systemd/borescope-bridge.modules-load.conf",
    "etc/sysctl.d/60-borescope-bridge.conf": "systemd/borescope-bridge.sysctl.conf",
    "etc/sysusers.d/borescope-bridge.conf": "systemd/borescope-bridge.sysusers.conf",
    "etc/borescope-bridge/config.toml": "config.example.toml",
    "etc/NetworkManager/dispatcher.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "etc/networkd-dispatcher/routable.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "etc/networkd-dispatcher/no-carrier.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "etc/networkd-dispatcher/off.d/90-borescope-bridge": "nm/90-borescope-bridge",
}


def make(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def files_under(root: Path) -> set[str]:
    """Every file and symlink (not directory) under root, relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    destdir = tmp_path_factory.mktemp("destdir")
    make("install", f"DESTDIR={destdir}")
    yield destdir


def test_every_path_installed(staged: Path) -> None:
    missing = {p for p in LOCAL_PATHS if not os.path.lexists(staged / p)}
    assert not missing
    for dest, src in SOURCES.items():
        assert (staged / dest).read_bytes() == (REPO / src).read_bytes(), dest


def test_command_on_path_points_into_the_venv(staged: Path) -> None:
    link = staged / "usr/local/bin/borescope-bridge"
    assert link.is_symlink()
    target = os.readlink(link)
    assert target == "/usr/local/lib/borescope-bridge/bin/borescope-bridge"
    assert (staged / target.lstrip("/")).is_file()


def test_unit_installed_with_final_execstart(staged: Path) -> None:
    text = (staged / "etc/systemd/system/borescope-bridge.service").read_text()
    assert "\nExecStart=/usr/local/bin/borescope-bridge run\n" in text
    committed = (REPO / "systemd/borescope-bridge.service").read_text()
    assert text == committed


def test_staged_tree_has_no_staging_paths(staged: Path) -> None:
    """Shebangs, pyvenv.cfg, activate scripts and byte-code name the final paths only."""
    proc = subprocess.run(
        ["grep", "-rlF", str(staged), str(staged)], capture_output=True, text=True, check=False
    )
    assert proc.stdout == "", proc.stdout
    venv = staged / "usr/local/lib/borescope-bridge"
    script = (venv / "bin/borescope-bridge").read_text()
    assert script.startswith("#!/usr/local/lib/borescope-bridge/bin/python")
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "home = " in cfg
    # The service runs as its own user: the interpreter must not live in a home directory.
    home = next(line for line in cfg.splitlines() if line.startswith("home = "))
    assert not home.split(" = ", 1)[1].startswith(("/root", "/home")), home


def test_installed_venv_runs(staged: Path, tmp_path: Path) -> None:
    """The staged venv imports the installed package (not the source tree) and its deps."""
    python = staged / "usr/local/lib/borescope-bridge/bin/python"
    code = (
        "import bridge, numpy, simplejpeg, systemd.daemon; "
        "print(bridge.__file__); print(bridge.__spec__.cached)"
    )
    proc = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.splitlines()[0]
    assert path.startswith(str(staged / "usr/local/lib/borescope-bridge/lib/")), path
    # The whole package tree went in (pyproject's package list finds every subpackage).
    installed = Path(path).parent
    source = {
        p.relative_to(REPO / "bridge").as_posix()
        for p in (REPO / "bridge").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = sorted(f for f in source if not (installed / f).is_file())
    assert not missing, missing


def test_installed_command_help(staged: Path, tmp_path: Path) -> None:
    venv = staged / "usr/local/lib/borescope-bridge"
    # Run the script with the staged interpreter: its shebang names the final path.
    proc = subprocess.run(
        [str(venv / "bin/python"), str(venv / "bin/borescope-bridge"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for sub in ("run", "snapshot", "status", "doctor"):
        assert sub in proc.stdout


def test_prefix_usr_for_distribution_packages(tmp_path_factory: pytest.TempPathFactory) -> None:
    destdir = tmp_path_factory.mktemp("prefix-usr")
    make("install", f"DESTDIR={destdir}", "PREFIX=/usr")
    files = files_under(destdir)
    for p in (
        "usr/bin/borescope-bridge",
        "usr/lib/systemd/system/borescope-bridge.service",
        "usr/lib/udev/rules.d/90-borescope-bridge.rules",
        "usr/lib/modprobe.d/borescope-bridge.conf",
        "usr/lib/modules-load.d/borescope-bridge.conf",
        "usr/lib/sysctl.d/60-borescope-bridge.conf",
        "usr/lib/sysusers.d/borescope-bridge.conf",
        "usr/share/borescope-bridge/config.example.toml",
        "etc/borescope-bridge/config.toml",
    ):
        assert p in files, p
    unit = (destdir / "usr/lib/systemd/system/borescope-bridge.service").read_text()
    assert "\nExecStart=/usr/bin/borescope-bridge run\n" in unit
    assert os.readlink(destdir / "usr/bin/borescope-bridge") == (
        "/usr/lib/borescope-bridge/bin/borescope-bridge"
    )
    make("uninstall", f"DESTDIR={destdir}", "PREFIX=/usr")
    assert files_under(destdir) == set()


def test_failed_reinstall_leaves_the_installed_venv_working(staged: Path, tmp_path: Path) -> None:
    """An offline `make install` (pip cannot reach an index) must not take the running
    service's code away: the new venv is built beside the live one and swapped in only when
    complete."""
    lib = staged / "usr/local/lib/borescope-bridge"
    marker = lib / "installed-before"
    marker.write_text("the live venv\n")
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "install",
            f"DESTDIR={staged}",
            "PIP_INSTALL_ARGS=--no-index --find-links /nonexistent",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "borescope-bridge was left as it was" in proc.stderr, proc.stderr
    assert marker.read_text() == "the live venv\n"
    beside = sorted(p.name for p in lib.parent.iterdir() if p.name.startswith("borescope"))
    assert beside == ["borescope-bridge"]
    run = subprocess.run(
        [str(lib / "bin/python"), "-c", "import bridge.app.daemon"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    marker.unlink()


def test_reinstall_keeps_the_users_config_and_uninstall_cleans_up(staged: Path) -> None:
    """Runs last in this module: it uninstalls the shared staged tree."""
    destdir = staged
    config = destdir / "etc/borescope-bridge/config.toml"
    config.write_text("rotate = 180\n")
    make("install", f"DESTDIR={destdir}")
    assert config.read_text() == "rotate = 180\n"
    assert files_under(destdir) >= LOCAL_PATHS
    # The venv was built as borescope-bridge.new and renamed: no trace of that path is left.
    lib = destdir / "usr/local/lib"
    assert sorted(p.name for p in lib.iterdir()) == ["borescope-bridge"]
    grep = subprocess.run(
        ["grep", "-rlI", "borescope-bridge.new", str(lib)], capture_output=True, check=False
    )
    assert grep.stdout == b"", grep.stdout

    # The user's edited config is kept; everything else goes.
    make("uninstall", f"DESTDIR={destdir}")
    assert files_under(destdir) == {"etc/borescope-bridge/config.toml"}

    # An untouched config (identical to the example) goes too.
    config.write_bytes((REPO / "config.example.toml").read_bytes())
    make("uninstall", f"DESTDIR={destdir}")
    assert files_under(destdir) == set()
