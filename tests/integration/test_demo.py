# SPDX-License-Identifier: GPL-3.0-or-later
"""The newcomer's path (issue 22): `make demo`, then every command it prints, as printed.

The demo is started the way `make demo` starts it: the venv's `borescope-bridge` script, with
a PATH that does not contain the venv, so a printed bare `borescope-bridge` would fail with
"command not found". Each printed command line is then run through a shell in a directory
other than the checkout, with nothing added: no --socket, no PATH.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import clean_env, run_cli

from bridge.web.urls import lan_urls

VENV_SCRIPT = Path(sys.executable).parent / "borescope-bridge"
PLAIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.skipif(
    not VENV_SCRIPT.is_file(), reason=f"{VENV_SCRIPT} missing: run the tests from the venv"
)


class Demo:
    """A running `borescope-bridge demo`, its printed lines, and the user's environment."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        """A demo as a user with a private runtime directory and home under `tmp`, or (`env`)
        a second demo in another demo's session."""
        self.runtime = tmp / "runtime"
        self.home = tmp / "home"
        if env is None:
            self.runtime.mkdir(mode=0o700)
            self.home.mkdir()
            env = clean_env(XDG_RUNTIME_DIR=str(self.runtime), HOME=str(self.home))
            env["PATH"] = PLAIN_PATH
        self.env = env
        self.proc = subprocess.Popen(
            [str(VENV_SCRIPT), "demo", "--camera", "none", "--resolution", "640x480",
             "--fps", "10", "--duration", "120", "--snapshot-dir", str(tmp / "shots"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=tmp,
        )  # fmt: skip
        self.lines: list[str] = []

    def read_until(self, prefix: str) -> str:
        """Everything printed up to and including the first line starting with `prefix`."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(prefix):
                return "".join(self.lines)
        raise AssertionError("the demo ended early:\n" + "".join(self.lines))

    def printed(self, label: str) -> str:
        """The command printed after `label:` (such as "take a snapshot")."""
        for line in self.lines:
            m = re.match(rf"\s*{re.escape(label)}:\s+(.*)$", line)
            if m:
                return m.group(1).strip()
        raise AssertionError(f"no {label!r} line in:\n" + "".join(self.lines))

    def shell(self, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=cwd,
            check=False,
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def demo_factory(tmp_path: Path) -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for d in started:
        d.close()


def start(started: list[Demo], tmp: Path, *args: str, env: dict[str, str] | None = None) -> Demo:
    d = Demo(tmp, *args, env=env)
    started.append(d)
    return d


def test_every_printed_command_runs_as_printed(demo_factory: list[Demo], tmp_path: Path) -> None:
    demo = start(demo_factory, tmp_path)
    demo.read_until("[demo] streaming")
    elsewhere = tmp_path / "home"  # a new terminal opens in the home directory
    snapshot = demo.printed("take a snapshot")
    status = demo.printed("status")
    url = re.search(r"or: (.*)\)", "".join(demo.lines))
    assert url, demo.lines
    for command in (snapshot, status, url.group(1)):
        assert "--socket" not in command, command  # found without it
        assert not command.startswith("borescope-bridge "), "not on this PATH: " + command
    r = demo.shell(snapshot, elsewhere)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).parent == tmp_path / "shots"
    r = demo.shell(status, elsewhere)
    assert r.returncode == 0, r.stderr
    assert "state:" in r.stdout and "streaming" in r.stdout
    r = demo.shell(url.group(1), elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("http://127.0.0.1:") and "token=" in r.stdout
    # The simulated button, as printed: a real press, a second snapshot
    press = demo.printed("press the (simulated) borescope button")
    assert demo.shell(press, elsewhere).returncode == 0
    assert demo.stop() == 0


def test_without_a_daemon_the_error_says_how_to_start_one(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    r = run_cli("status", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 1
    assert "nothing is running" in r.stderr and " demo`" in r.stderr, r.stderr
    assert "make demo" in r.stderr


def test_a_running_demo_is_never_suggested_again(demo_factory: list[Demo], tmp_path: Path) -> None:
    demo = start(demo_factory, tmp_path)
    demo.read_until("[demo] streaming")
    r = run_cli("status", "--socket", str(tmp_path / "typo.sock"), env=demo.env)
    assert r.returncode == 1
    assert "a demo is running" in r.stderr, r.stderr
    assert str(demo.runtime / "borescope-bridge" / "demo.sock") in r.stderr
    assert " demo`" not in r.stderr
    # A phone cannot reach a loopback demo: the advice is the demo's, not the service's
    r = run_cli("url", "--lan", env=demo.env)
    assert r.returncode == 1
    assert "demo --lan" in r.stderr and "systemctl" not in r.stderr, r.stderr
    r = run_cli("url", "--qr", env=demo.env)
    assert r.returncode == 0, r.stderr
    assert "works on this machine only" in r.stderr and "url --lan --qr" in r.stderr
    assert demo.stop() == 0


def test_a_leftover_socket_does_not_hide_the_live_demo(
    demo_factory: list[Demo], tmp_path: Path
) -> None:
    """A user's `run` killed with SIGKILL leaves its socket file: the live demo still wins."""
    demo = start(demo_factory, tmp_path)
    demo.read_until("[demo] streaming")
    leftover = demo.runtime / "borescope-bridge" / "control.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(leftover))  # bound, never listening: as a killed daemon leaves it
    r = run_cli("status", env=demo.env)
    assert r.returncode == 0, r.stderr
    assert "streaming" in r.stdout
    assert demo.stop() == 0


def test_demo_lan_prints_the_phone_address_and_its_code(
    demo_factory: list[Demo], tmp_path: Path
) -> None:
    demo = start(demo_factory, tmp_path, "--lan")
    text = demo.read_until("[demo] streaming")
    page = re.search(r"the web page:\s+http://127\.0\.0\.1:(\d+)/", text)
    assert page, text
    port = int(page.group(1))
    expected = lan_urls("0.0.0.0", port, "TOKEN")
    if not expected:
        assert "no network address besides loopback" in text
    else:
        phone = demo.printed("for a phone")
        host = expected[0].split("/")[2]
        assert phone.startswith(f"http://{host}/?token="), phone
        assert "\u2588\u2588" in text  # the QR code's blocks
        assert "plain HTTP" in text
        r = run_cli("url", "--lan", env=demo.env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == phone
    assert demo.stop() == 0


def test_a_second_demo_takes_a_socket_of_its_own(demo_factory: list[Demo], tmp_path: Path) -> None:
    first = start(demo_factory, tmp_path)
    first.read_until("[demo] streaming")
    (tmp_path / "second").mkdir()
    second = start(demo_factory, tmp_path / "second", env=first.env)
    second.read_until("[demo] streaming")
    status = second.printed("status")
    assert "--socket" in status, status  # the well-known place is the first one's
    r = second.shell(status, tmp_path)
    assert r.returncode == 0, r.stderr
    assert second.stop() == 0
    # and the first one is still found without --socket
    r = first.shell(first.printed("status"), tmp_path)
    assert r.returncode == 0, r.stderr
    assert first.stop() == 0


def test_beside_another_running_daemon_the_demo_prints_its_socket(
    demo_factory: list[Demo], tmp_path: Path
) -> None:
    """A user's own `run` is live: without --socket the clients could not tell the two apart,
    so the demo's printed commands carry it (and they still run as printed)."""
    from bridge.control.server import ControlServer

    runtime = tmp_path / "runtime"
    (runtime / "borescope-bridge").mkdir(parents=True, mode=0o700)
    runtime.chmod(0o700)
    (tmp_path / "home").mkdir()
    env = clean_env(XDG_RUNTIME_DIR=str(runtime), HOME=str(tmp_path / "home"))
    env["PATH"] = PLAIN_PATH
    users_run = ControlServer(
        str(runtime / "borescope-bridge" / "control.sock"), lambda msg: {"ok": True}
    )
    users_run.start()
    try:
        demo = start(demo_factory, tmp_path, env=env)
        demo.read_until("[demo] streaming")
        status = demo.printed("status")
        assert f"--socket {runtime / 'borescope-bridge' / 'demo.sock'}" in status, status
        r = demo.shell(status, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "streaming" in r.stdout
        assert demo.stop() == 0
    finally:
        users_run.stop()
