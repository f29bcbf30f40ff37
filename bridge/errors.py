# SPDX-License-Identifier: GPL-3.0-or-later
"""The exception types callers act on, and the one rule that turns a failed write into advice."""

import errno
import os


class BridgeError(Exception):
    """Base class: a failure the user can fix, with the fix in the message."""


class ConfigError(BridgeError):
    """A configuration file or flag value is invalid; the message names the key and value."""


class CameraError(BridgeError):
    """The virtual camera cannot be opened or has gone away."""


class ControlError(BridgeError):
    """The running daemon's control socket cannot be reached or answered an error."""


def read_only_advice(path: str) -> str:
    """What to do about EROFS on `path`: under systemd the cause is almost always the sandbox."""
    if os.environ.get("INVOCATION_ID"):
        state = (os.environ.get("STATE_DIRECTORY") or "").split(":")[0] or "its state directory"
        return (
            f"the service's sandbox (ProtectSystem=strict) allows writing only to {state}; "
            f"to use {path}, add it in a drop-in: `sudo systemctl edit borescope-bridge@.service` "
            "(every scope's instance; `borescope-bridge.service` if you enabled that one), "
            f"then `[Service]` and `ReadWritePaths={path}`, and restart the service"
        )
    return f"the file system of {path} is mounted read-only; choose another place"


def write_error_advice(exc: OSError, what: str, path: str, flag: str, then: str = "") -> str:
    """`what` failed writing under `path`: the cause a user can act on, and the action.

    One rule for every file the daemon writes (snapshots, recordings), so a full disk, a
    permission problem and a read-only mount read the same wherever they happen. `flag` names
    the setting that chooses another place; `then` is what to do once space is free.
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {what} (free some space{then})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {what} (choose another {flag} or fix its owner/permissions)"
    if exc.errno == errno.EROFS:
        return f"read-only file system: {what}: {read_only_advice(path)} ({flag})"
    return f"{what}: {exc.strerror or exc}"
