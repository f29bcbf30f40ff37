# SPDX-License-Identifier: GPL-3.0-or-later
"""The free-space floor: snapshots and the recording never fill the disk they write to.

A file system with less than ``max(MIN_FREE_BYTES, MIN_FREE_FRACTION of its size)`` free
after the write gets no more files from us: a flood of snapshots (or a forgotten ``--record``)
must not take the last space that the system, the journal and other programs need. The check
asks the kernel (statvfs) right before each write, on the writer's own thread, since a hung
network file system may make it block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

MIN_FREE_BYTES = 64 * 1024 * 1024
MIN_FREE_FRACTION = 0.01

Statvfs = Callable[[str], Any]  # os.statvfs, or a test's fake with the same fields


def floor_bytes(total: int) -> int:
    """How much of a file system of `total` bytes is always left free."""
    return max(MIN_FREE_BYTES, int(total * MIN_FREE_FRACTION))


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def existing_ancestor(path: str) -> str:
    """`path` or its nearest existing parent (a snapshot directory is made on first use)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def mount_point(path: str) -> str:
    """The mount point of the file system `path` is on (where its device number changes)."""
    path = existing_ancestor(path)
    try:
        dev = os.stat(path).st_dev
        while (parent := os.path.dirname(path)) != path and os.stat(parent).st_dev == dev:
            path = parent
    except OSError:
        pass
    return path


def low_space(directory: str, need: int = 0, statvfs: Statvfs = os.statvfs) -> str | None:
    """Why writing `need` more bytes under `directory` is refused, or None if it is not.

    A failing statvfs is not a refusal: the write itself then says what is wrong.
    """
    where = existing_ancestor(directory)
    try:
        st = statvfs(where)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    floor = floor_bytes(st.f_blocks * st.f_frsize)
    if free - need >= floor:
        return None
    return (
        f"only {_mib(free)} free on the disk mounted on {mount_point(where)}, and the bridge "
        f"always leaves {_mib(floor)} free (the larger of {_mib(MIN_FREE_BYTES)} and "
        f"{MIN_FREE_FRACTION:.0%} of the disk)"
    )
