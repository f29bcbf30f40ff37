# SPDX-License-Identifier: GPL-3.0-or-later
"""The socket directory against another local user (issue 10, item 3): the /tmp fallback is
made private and checked, and planted directories or sockets are refused by the daemon and the
clients alike."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_for

import bridge.app.daemon
import bridge.capture.recorder
import bridge.cli.demo
import bridge.cli.main

# Loaded before any fork: the children below run as other users, who may not be able to read
# this interpreter's standard library (under /root in some setups), only what is imported.
import bridge.core.buttons
import bridge.core.reassembly
import bridge.device.session
import bridge.pixels.decode
from bridge.control.sockdir import check_private_dir
from bridge.errors import ControlError


def test_a_private_dir_of_ours_passes_and_an_open_one_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    check_private_dir(str(private), (os.geteuid(),), "do this")
    private.chmod(0o755)
    with pytest.raises(ControlError, match=f"chmod 700 {private}"):
        check_private_dir(str(private), (os.geteuid(),), "do this")


def test_a_symlink_or_a_file_is_never_taken_for_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ControlError, match="symbolic link"):
        check_private_dir(str(link), (os.geteuid(),), "do this")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ControlError, match="not a directory"):
        check_private_dir(str(plain), (os.geteuid(),), "do this")
    with pytest.raises(ControlError, match="does not exist: do this"):
        check_private_dir(str(tmp_path / "missing"), (os.geteuid(),), "do this")


def test_a_directory_of_someone_else_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    mine.chmod(0o700)
    with pytest.raises(ControlError, match="not to you"):
        check_private_dir(str(mine), (os.geteuid() + 1,), "do this")


VICTIM_UID = 54321  # a uid without an account: nothing in /etc changes, nobody else owns files
ATTACKER_UID = 65534  # nobody


def spawn_as(uid: int, fn: Any, out: Path, env: dict[str, str | None] | None = None) -> int:
    """Run `fn()` in a forked child as `uid` (no groups); its stdout+stderr go to `out`."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        rc = 99
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for k, v in (env or {}).items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            rc = int(fn() or 0)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(rc)
    os.close(fd)
    return pid


def reap(pid: int, timeout: float = 30) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout} s")


def run_as(uid: int, argv: list[str], out: Path, env: dict[str, str | None]) -> tuple[int, str]:
    rc = reap(spawn_as(uid, lambda: bridge.cli.main.main(argv), out, env))
    return rc, out.read_text()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A fresh sticky, world-writable directory: what /tmp is, without touching /tmp's names."""
    if os.geteuid() != 0:
        pytest.skip("playing two local users needs root")
    base = Path(tempfile.mkdtemp(prefix="borescope-test-", dir="/tmp"))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def victim_env(base: Path) -> dict[str, str | None]:
    return {
        "TMPDIR": str(base),
        "XDG_RUNTIME_DIR": None,
        "RUNTIME_DIRECTORY": None,
        "STATE_DIRECTORY": None,
        "INVOCATION_ID": None,
        "NOTIFY_SOCKET": None,
        "HOME": str(base),
    }


def victim_run_argv(base: Path, port: int) -> list[str]:
    config = base / "config.toml"
    config.write_text("# empty: everything is a flag\n")
    config.chmod(0o644)
    return [
        "run",
        "--config",
        str(config),
        "--device-ip",
        "127.0.0.1",
        "--stream-port",
        str(port),
        "--event-port",
        str(port),
        "--wait",
        "0",
        "--camera",
        "none",
        "--snapshot-dir",
        str(base / "victim-snaps"),
        "--http",
        "off",
    ]


def quiet_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_fallback_dir_is_created_private_and_used(shared_tmp: Path) -> None:
    from bridge.app.config import fallback_control_socket

    env = victim_env(shared_tmp)
    expected = shared_tmp / f"borescope-bridge-{VICTIM_UID}" / "control.sock"
    quiet, port = quiet_port()
    argv = victim_run_argv(shared_tmp, port)
    with quiet:
        daemon = spawn_as(VICTIM_UID, lambda: bridge.cli.main.main(argv), shared_tmp / "d.log", env)
        try:
            wait_for(lambda: expected.exists(), what="the daemon's socket")
            st = os.lstat(expected.parent)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == VICTIM_UID
            assert stat.S_IMODE(st.st_mode) == 0o700

            def victim_status() -> dict[str, Any]:
                rc, out = run_as(
                    VICTIM_UID,
                    ["status", "--json", "--socket", str(expected)],
                    shared_tmp / "c.log",
                    env,
                )
                assert rc == 0, out
                reply: dict[str, Any] = json.loads(out)
                return reply

            # The socket is served before the loop's first turn: "starting" until then.
            wait_for(lambda: victim_status()["state"] == "waiting for device", what="its state")
        finally:
            os.kill(daemon, 15)
            assert reap(daemon) == 0, (shared_tmp / "d.log").read_text()
    # What the victim's processes compute for themselves is that same path.
    got = shared_tmp / "computed"
    rc = reap(
        spawn_as(VICTIM_UID, lambda: print(fallback_control_socket()), got, env),
    )
    assert rc == 0 and got.read_text().strip() == str(expected)


IMPOSTOR_REPLY = b'{"ok": true, "path": "https://evil.example/x.jpg"}\n'


def impostor(directory: Path, marker: Path, name: str = "control.sock") -> int:
    """The attacker's fake daemon: answers every client with a URL to open."""
    if not directory.exists():
        directory.mkdir()
        directory.chmod(0o777)
    path = directory / name
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    path.chmod(0o777)
    s.listen(8)
    (directory / f"{name}.ready").touch()
    while True:
        conn, _ = s.accept()
        marker.touch()
        with conn:
            conn.sendall(IMPOSTOR_REPLY)


@pytest.mark.parametrize("how", ["owned-by-attacker", "symlink-to-attacker"])
def test_a_directory_planted_by_another_user_is_refused(shared_tmp: Path, how: str) -> None:
    env = victim_env(shared_tmp)
    planted = shared_tmp / f"borescope-bridge-{VICTIM_UID}"
    target = planted if how == "owned-by-attacker" else shared_tmp / "attacker-dir"
    marker = shared_tmp / "attacker-was-contacted"
    attacker = spawn_as(ATTACKER_UID, lambda: impostor(target, marker), shared_tmp / "a.log")
    try:
        wait_for(lambda: (target / "control.sock.ready").exists(), what="the impostor")
        if how == "symlink-to-attacker":
            # Planted by the attacker too (a symlink in a sticky directory belongs to them).
            reap(spawn_as(ATTACKER_UID, lambda: planted.symlink_to(target), shared_tmp / "l.log"))
            assert planted.is_symlink() and os.lstat(planted).st_uid == ATTACKER_UID
        before = sorted(os.listdir(target))

        # The daemon refuses to put its socket there.
        quiet, port = quiet_port()
        with quiet:
            rc, out = run_as(
                VICTIM_UID, victim_run_argv(shared_tmp, port), shared_tmp / "d.log", env
            )
        assert rc == 1, out
        assert str(planted) in out and "Traceback" not in out
        if how == "symlink-to-attacker":
            assert "symbolic link" in out
        else:
            assert "belongs to" in out and "uid 65534" in out
        assert "XDG_RUNTIME_DIR" in out  # what to do instead
        assert sorted(os.listdir(target)) == before  # nothing created or chmod-ed in there
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o777

        # The clients refuse to talk to what sits there, before connecting.
        for cmd in (["snapshot"], ["status"]):
            rc, out = run_as(
                VICTIM_UID,
                [*cmd, "--socket", str(planted / "control.sock")],
                shared_tmp / "c.log",
                env,
            )
            assert rc == 1, out
            assert "evil.example" not in out and str(planted) in out
        assert not marker.exists(), "a client connected to the impostor"
    finally:
        os.kill(attacker, 9)
        os.waitpid(attacker, 0)


def test_our_own_directory_with_an_open_mode_is_refused(shared_tmp: Path) -> None:
    env = victim_env(shared_tmp)
    planted = shared_tmp / f"borescope-bridge-{VICTIM_UID}"
    reap(spawn_as(VICTIM_UID, lambda: os.mkdir(planted, 0o755), shared_tmp / "m.log"))
    planted.chmod(0o755)
    quiet, port = quiet_port()
    with quiet:
        rc, out = run_as(VICTIM_UID, victim_run_argv(shared_tmp, port), shared_tmp / "d.log", env)
    assert rc == 1, out
    assert f"chmod 700 {planted}" in out
    assert os.listdir(planted) == []


def test_a_socket_planted_right_in_a_shared_directory_is_refused(shared_tmp: Path) -> None:
    marker = shared_tmp / "attacker-was-contacted"
    planted = shared_tmp / "borescope.sock"
    attacker = spawn_as(
        ATTACKER_UID, lambda: impostor(shared_tmp, marker, planted.name), shared_tmp / "a.log"
    )
    try:
        wait_for(lambda: (shared_tmp / "borescope.sock.ready").exists(), what="the impostor")
        rc, out = run_as(
            VICTIM_UID,
            ["snapshot", "--socket", str(planted)],
            shared_tmp / "c.log",
            victim_env(shared_tmp),
        )
        assert rc == 1 and "evil.example" not in out and "not to you" in out, out
        assert not marker.exists()
    finally:
        os.kill(attacker, 9)
        os.waitpid(attacker, 0)
