# SPDX-License-Identifier: GPL-3.0-or-later
"""What the network-namespace tests share: `ip`, status and stopping (the child's environment is
support.daemon.clean_env, as for every daemon the tests start).

The namespaces themselves are each test's own fixtures (their shapes differ); these are the
small steps every one of them repeats.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@contextlib.contextmanager
def scope_links(count: int, prefix: str = "bbm") -> Iterator[ScopeNet]:
    """A PC namespace with `count` links, each 192.168.10.100/24, each to its own scope namespace
    at 192.168.10.123/24: several borescopes of the same model on several USB adapters.

    Names carry a random tag, so parallel runs never collide; everything is removed afterwards.
    Skips the test where namespaces cannot be created.
    """
    import pytest

    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' command not found")
    tag = secrets.token_hex(3)
    net = ScopeNet(pc=f"{prefix}-pc-{tag}")
    probe = ip("netns", "add", net.pc, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    try:
        ip("-n", net.pc, "link", "set", "lo", "up")
        for k in range(count):
            scope, pc_if, scope_if = (
                f"{prefix}-s{k}-{tag}",
                f"{prefix}{k}p{tag}",
                f"{prefix}{k}s{tag}",
            )
            ip("netns", "add", scope)
            net.scopes.append(scope)
            net.interfaces.append(pc_if)
            ip("link", "add", pc_if, "netns", net.pc, "type", "veth",
               "peer", "name", scope_if, "netns", scope)  # fmt: skip
            for ns, ifname, address in ((net.pc, pc_if, "192.168.10.100/24"),
                                        (scope, scope_if, "192.168.10.123/24")):  # fmt: skip
                ip("-n", ns, "addr", "add", address, "dev", ifname)
                ip("-n", ns, "link", "set", ifname, "up")
            ip("-n", scope, "link", "set", "lo", "up")
        yield net
    finally:
        for ns in [*net.scopes, net.pc]:
            ip("netns", "del", ns, check=False)


@dataclass
class ScopeNet:
    """The namespaces of scope_links: the PC, and per link its interface and scope namespace."""

    pc: str
    interfaces: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
