# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/fresh-machine, which `make test` runs the host suite under: it must really hide state.

A runner that silently showed the used machine's /run or /tmp would let the class of bug it
exists for (a test passing only thanks to leftovers, issue 9) through again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "fresh-machine"


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --mount")


def run_fresh(runner: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(runner), "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_unshare
def test_leftovers_under_run_tmp_and_var_tmp_are_invisible() -> None:
    marks = [Path("/run/bb-fresh-mark"), Path("/tmp/bb-fresh-mark"), Path("/var/tmp/bb-fresh-mark")]
    for m in marks:
        m.mkdir(exist_ok=True)
    try:
        proc = run_fresh(RUNNER, "ls -A /run /tmp /var/tmp; pwd")
        assert proc.returncode == 0, proc.stderr
        for m in marks:
            assert m.name not in proc.stdout, proc.stdout
        assert proc.stdout.splitlines()[-1] == str(REPO), "the command runs in the checkout"
        # /run holds only what boot itself makes (and mount's own bookkeeping).
        run_listing = proc.stdout.split("/tmp:")[0]
        assert "lock" in run_listing
        assert all(m.is_dir() for m in marks), "the host's own files are untouched"
    finally:
        for m in marks:
            m.rmdir()


@needs_unshare
def test_checkout_under_tmp_stays_reachable(tmp_path: Path) -> None:
    """CI may clone into /tmp: covering /tmp must not cover the checkout with it."""
    clone = tmp_path / "clone"
    (clone / "tests").mkdir(parents=True)
    shutil.copy2(RUNNER, clone / "tests" / "fresh-machine")
    (clone / "marker").write_text("ours\n")
    (tmp_path / "sibling").write_text("not ours")
    proc = run_fresh(clone / "tests" / "fresh-machine", "cat marker; ls -A ..; ls -A /tmp")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "ours"
    assert "sibling" not in lines, "only the checkout is put back, not what lies beside it"


@needs_unshare
def test_exit_status_is_the_commands() -> None:
    assert run_fresh(RUNNER, "exit 3").returncode == 3
