# SPDX-License-Identifier: GPL-3.0-or-later
"""Which daemons run here, one per borescope: found by their control sockets, named by interface.

With several scopes there is one instance per interface (`run --interface IF`, the template
unit borescope-bridge@IF), each with its own control socket. The client commands address one
with --interface IF; without it, the only one that runs (as with a single scope). The web page
lists the others from here too. `candidates` is where sockets may be (bridge.app.paths), so this
module needs no knowledge of the directories.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from bridge.control.client import request
from bridge.control.wire import NOT_RUNNING_HINT
from bridge.errors import ControlError

ASK_TIMEOUT_S = 2.0  # per instance; a live daemon answers status at once


@dataclass(frozen=True)
class Instance:
    """A running daemon: its control socket, its interface (None: the kernel's routing) and the
    status it answered with; `error` when it is there but cannot be asked (another user's)."""

    control_socket: str
    interface: str | None
    status: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.interface or "(no --interface)"


def existing_sockets(candidates: list[str]) -> list[str]:
    """The candidates that are sockets (or that this user may not even look at)."""
    out = []
    for p in candidates:
        try:
            if stat.S_ISSOCK(os.stat(p).st_mode):
                out.append(p)
        except PermissionError:
            out.append(p)
        except OSError:
            continue
    return out


def find_instances(candidates: list[str], timeout: float = ASK_TIMEOUT_S) -> list[Instance]:
    """Every daemon that answers on one of `candidates`; sockets left by a crash are skipped."""
    found = []
    for path in existing_sockets(candidates):
        try:
            reply = request(path, {"cmd": "status"}, timeout=timeout)
        except ControlError as exc:
            if not os.access(path, os.W_OK):
                found.append(Instance(path, None, error=str(exc)))
            continue
        status = reply.get("status")
        if isinstance(status, dict):
            iface = status.get("interface")
            found.append(Instance(path, iface if isinstance(iface, str) else None, status))
    return found


def pick(instances: list[Instance], interface: str | None) -> Instance:
    """The instance a client command means: the one for `interface`, else the only one."""
    names = ", ".join(f"{i.name} ({i.control_socket})" for i in instances)
    if interface:
        for inst in instances:
            if inst.interface == interface:
                return inst
        running = f" (running: {names})" if instances else ""
        raise ControlError(
            f"no borescope-bridge instance for {interface} is running{running}: start it with "
            f"`sudo systemctl start borescope-bridge@{interface}` or "
            f"`borescope-bridge run --interface {interface}`"
        )
    if len(instances) == 1:
        return instances[0]
    if instances:
        raise ControlError(
            f"several borescope-bridge instances are running: {names}; pick one with "
            "--interface IF (or --socket PATH)"
        )
    raise ControlError(f"no borescope-bridge daemon answers: {NOT_RUNNING_HINT}")
