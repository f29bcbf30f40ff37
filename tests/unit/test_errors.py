# SPDX-License-Identifier: GPL-3.0-or-later
"""The one rule that turns a failed write into a cause and an action."""

import errno

import pytest

from bridge.errors import write_error_advice


@pytest.mark.parametrize(
    ("code", "cause", "action"),
    [
        (errno.ENOSPC, "disk full: ", "(free some space, then retry)"),
        (errno.EDQUOT, "disk full: ", "(free some space, then retry)"),
        (errno.EACCES, "permission denied: ", "choose another --out or fix its owner"),
        (errno.EPERM, "permission denied: ", "choose another --out or fix its owner"),
        (errno.EROFS, "read-only file system: ", "mounted read-only; choose another place"),
    ],
)
def test_each_cause_names_what_to_do(
    code: int, cause: str, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)  # not under systemd
    text = write_error_advice(OSError(code, "x"), "saving /d/f", "/d", "--out", ", then retry")
    assert text.startswith(cause + "saving /d/f"), text
    assert action in text, text


def test_read_only_under_systemd_points_at_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "1")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/borescope-bridge")
    text = write_error_advice(OSError(errno.EROFS, "x"), "saving /mnt/f", "/mnt", "--out")
    assert "ReadWritePaths=/mnt" in text and text.endswith("(--out)"), text


def test_another_error_keeps_the_systems_words() -> None:
    text = write_error_advice(OSError(errno.EIO, "Input/output error"), "saving /d/f", "/d", "-o")
    assert text == "saving /d/f: Input/output error"
