# SPDX-License-Identifier: GPL-3.0-or-later
"""The few exception types callers act on; every message says what to do next."""


class BridgeError(Exception):
    """Base class: a failure the user can fix, with the fix in the message."""


class ConfigError(BridgeError):
    """A configuration file or flag value is invalid; the message names the key and value."""


class CameraError(BridgeError):
    """The virtual camera cannot be opened or has gone away."""


class ControlError(BridgeError):
    """The running daemon's control socket cannot be reached or answered an error."""
