# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon process harness: a real `borescope-bridge run` child with its own notify socket.

Shared by every process-level test. It waits on events (an sd_notify message, a file, a status
field), never on fixed sleeps; the only time bounds are generous "within N seconds" limits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.control.client import request
from bridge.sim.server import Simulator
from support.paths import REPO
from support.waiting import DEADLINE_S


def clean_env(**extra: str) -> dict[str, str]:
    """The daemon's environment: no systemd variables of our own session leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "NOTIFY_SOCKET",
            "INVOCATION_ID",
            "JOURNAL_STREAM",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "STATE_DIRECTORY",
            "RUNTIME_DIRECTORY",
        )
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`borescope-bridge ARGS...` as a user runs it, in the daemon tests' clean environment
    (`env`: variables to set on top, such as a private XDG_RUNTIME_DIR)."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**(env or {})),
        check=False,
    )


class Daemon:
    """A `borescope-bridge run` child process with its own notify socket and directories."""

    def __init__(
        self,
        tmp: Path,
        sim: Simulator | None,
        *extra: str,
        device_ports: tuple[int, int] | None = None,
        snapshot_flag: bool = True,
        env: dict[str, str] | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.snapdir = tmp / "snaps"
        self.sock = str(tmp / "control.sock")
        self.log = tmp / "daemon.log"
        self.config = tmp / "config.toml"
        if not self.config.exists():
            self.config.write_text("# empty: the tests pass everything as flags\n")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_path = str(tmp / "notify.sock")
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        ports = device_ports or (sim.stream_port, sim.event_port)  # type: ignore[union-attr]
        self.argv = [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "--config",
            str(self.config),
            "--device-ip",
            "127.0.0.1",
            "--stream-port",
            str(ports[0]),
            "--event-port",
            str(ports[1]),
            "--camera",
            "none",
            "--control-socket",
            self.sock,
            *extra,
        ]
        if "--http" not in extra:  # a free port: never the service's 8031
            self.argv += ["--http", "127.0.0.1:0"]
        if snapshot_flag:
            self.argv += ["--snapshot-dir", str(self.snapdir)]
        self._log_fh = open(self.log, "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [*(wrap or []), *self.argv],
            stdout=subprocess.DEVNULL,
            stderr=self._log_fh,
            env=clean_env(
                **{
                    "NOTIFY_SOCKET": self.notify_path,
                    "XDG_STATE_HOME": str(tmp / "state"),  # the web page's token
                    # Default folders for what a user's own run keeps: the test's, never $HOME's.
                    "XDG_VIDEOS_DIR": str(tmp / "Videos"),
                    "XDG_PICTURES_DIR": str(tmp / "Pictures"),
                    **(env or {}),
                }
            ),
        )
        # Drain the notify socket all the time, as systemd does: a full queue blocks sd_notify.
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_notify_forever, daemon=True)
        self._reader.start()

    def _read_notify_forever(self) -> None:
        self.notify.settimeout(0.1)
        while not self._closing.is_set():
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode())

    def mark(self) -> int:
        """Position in the notify log: wait_notify(since=mark) ignores what came before."""
        with self._lock:
            return len(self.messages)

    def wait_notify(
        self,
        predicate: Callable[[str], bool],
        timeout: float = DEADLINE_S,
        what: str = "",
        since: int = 0,
    ) -> str:
        end = time.monotonic() + timeout
        seen = since
        exited_at: float | None = None
        while True:
            with self._lock:
                fresh = self.messages[seen:]
            for msg in fresh:
                if predicate(msg):
                    return msg
            seen += len(fresh)
            now = time.monotonic()
            if now > end:
                raise AssertionError(
                    f"no notify message {what}; got {self.messages}\nlog:\n{self.log.read_text()}"
                )
            if self.proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 1.0:  # let the reader pick up the last messages
                    raise AssertionError(
                        f"daemon exited {self.proc.returncode} before {what}"
                        f"\nlog:\n{self.log.read_text()}"
                    )
            time.sleep(0.02)

    def wait_ready(self) -> None:
        self.wait_notify(lambda m: "READY=1" in m, what="READY=1")

    def wait_streaming(self, since: int = 0) -> None:
        self.wait_notify(lambda m: "STATUS=streaming" in m, what="STATUS=streaming", since=since)

    def status(self) -> dict[str, Any]:
        reply = request(self.sock, {"cmd": "status"}, timeout=10)
        assert reply["ok"], reply
        return reply["status"]

    def snapshot(self, timeout: float = 10) -> dict[str, Any]:
        return request(self.sock, {"cmd": "snapshot", "timeout": timeout}, timeout=timeout + 5)

    def jpgs(self, directory: Path | None = None) -> list[Path]:
        d = directory or self.snapdir
        return sorted(d.glob("*.jpg")) if d.exists() else []

    def terminate(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._closing.set()
        self._reader.join(2)
        self._log_fh.close()
        self.notify.close()


def frames_of(sim: Simulator) -> set[bytes]:
    return set(sim.frames)


def split_recording(data: bytes, frames: list[bytes]) -> list[int]:
    """Indices into `frames` of the JPEGs concatenated in `data`; fails on any foreign byte."""
    by_head: dict[bytes, list[int]] = {}
    for i, f in enumerate(frames):
        by_head.setdefault(f[:64], []).append(i)
    out = []
    pos = 0
    while pos < len(data):
        for i in by_head.get(data[pos : pos + 64], []):
            f = frames[i]
            if data[pos : pos + len(f)] == f:
                out.append(i)
                pos += len(f)
                break
        else:
            raise AssertionError(f"recording has bytes at {pos} that are no sent frame")
    return out
