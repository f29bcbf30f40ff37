# SPDX-License-Identifier: GPL-3.0-or-later
"""What the network-namespace tests share: `ip`, status and stopping (the child's environment is
support.daemon.clean_env, as for every daemon the tests start).

The namespaces themselves are each test's own fixtures (their shapes differ); these are the
small steps every one of them repeats.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from bridge.control.client import request


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run iproute2's `ip`; raises on failure unless `check` is False."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def status(sock: str) -> dict[str, Any] | None:
    """The daemon's status over its control socket; None while it cannot answer."""
    try:
        return request(sock, {"cmd": "status"}, timeout=5)["status"]
    except Exception:
        return None


def stop(proc: subprocess.Popen[Any]) -> int:
    """SIGTERM, then SIGKILL if it does not go; the exit status (-9 when killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
