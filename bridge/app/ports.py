# SPDX-License-Identifier: GPL-3.0-or-later
"""The web port of an instance (`run --interface IF`): stable per interface, never another's.

A single daemon keeps 8031. Instances for several scopes each need their own port, and the same
one at every start (a bookmark, a phone's saved address). The registry file ``web-ports.json`` in
the state directory remembers which interface has which port. The first interface ever gets 8031,
so one scope under the template unit keeps the single daemon's address; every later one gets a
port derived from its name (CRC-32 into INSTANCE_PORTS), or the next free one when that is already
another interface's. The file is read and written under an flock, so instances starting together
never pick the same port. Where it cannot be kept, the derived port is used as it is (stable
without it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import zlib

log = logging.getLogger(__name__)

REGISTRY_FILE = "web-ports.json"
FIRST_PORT = 8031  # the single daemon's: the first instance ever keeps it
INSTANCE_PORTS = range(8032, 8132)  # every later one


def derived_port(interface: str) -> int:
    """The interface's first choice: the same on every machine and at every start."""
    return INSTANCE_PORTS[zlib.crc32(interface.encode()) % len(INSTANCE_PORTS)]


def choose(interface: str, taken: dict[str, int]) -> int:
    """The port for `interface` given the registry `taken` (interface -> port); pure."""
    if interface in taken:
        return taken[interface]
    if not taken:
        return FIRST_PORT
    used = set(taken.values())
    first = derived_port(interface)
    n = len(INSTANCE_PORTS)
    start = INSTANCE_PORTS.index(first)
    for k in range(n):
        port = INSTANCE_PORTS[(start + k) % n]
        if port not in used:
            return port
    return first  # every port remembered: share the first choice, a bind error will say so


def instance_port(interface: str, state_dir: str) -> int:
    """The web port of the instance for `interface`, remembered in `state_dir`."""
    path = os.path.join(state_dir, REGISTRY_FILE)
    try:
        os.makedirs(state_dir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        log.debug("cannot keep %s (%s): using the derived port", path, exc.strerror)
        return derived_port(interface)
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        taken: dict[str, int] = {}
        with contextlib.suppress(ValueError):
            data = json.loads(fh.read() or "{}")
            if isinstance(data, dict):
                taken = {
                    k: v
                    for k, v in data.items()
                    if isinstance(k, str)
                    and isinstance(v, int)
                    and (v in INSTANCE_PORTS or v == FIRST_PORT)
                }
        port = choose(interface, taken)
        if taken.get(interface) != port:
            taken[interface] = port
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(taken, indent=1, sort_keys=True) + "\n")
    return port
