# SPDX-License-Identifier: GPL-3.0-or-later
"""The page's snapshot files: only our names, only regular files, never through a symlink.

Called on the web server's executor threads: a hung disk blocks one of those, never its loop.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from bridge.capture.names import SNAPSHOT_NAME


def list_snapshots(directory: str) -> list[dict[str, Any]]:
    """Our snapshot files (regular files with our name pattern), newest first."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not SNAPSHOT_NAME.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append({"name": entry.name, "bytes": st.st_size, "time": st.st_mtime})
    out.sort(key=lambda e: (e["time"], e["name"]), reverse=True)
    return out


def open_ours(directory: str, name: str, pattern: re.Pattern[str]) -> int | None:
    """A read fd for `name` if the daemon makes such names (`pattern`) and it is a regular file
    in `directory`, opened without following a symlink; else None."""
    if not pattern.fullmatch(name):
        return None
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def read_snapshot(directory: str, name: str) -> bytes | None:
    """The file's bytes if `name` is ours and a regular file (no symlink followed), else None."""
    fd = open_ours(directory, name, SNAPSHOT_NAME)
    if fd is None:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
