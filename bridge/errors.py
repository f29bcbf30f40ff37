# SPDX-License-Identifier: GPL-3.0-or-later
"""The few exception types callers act on; every message says what to do next."""

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
            f"to use {path}, add it in a drop-in: `sudo systemctl edit borescope-bridge`, "
            f"then `[Service]` and `ReadWritePaths={path}`, and restart the service"
        )
    return f"the file system of {path} is mounted read-only; choose another place"
