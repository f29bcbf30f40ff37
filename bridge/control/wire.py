# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket's wire format and the limits a client sees.

Protocol: the client sends one JSON object on one line (``{"cmd": "status"}`` or
``{"cmd": "snapshot", "timeout": 5}``), the daemon answers one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``) and closes.

Every malformed request (not UTF-8, not JSON, not an object, nested too deeply, too long,
incomplete at its deadline) is answered ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

# A request is one short JSON line; anything longer is refused, not buffered.
MAX_REQUEST_BYTES = 4096
# The client reads at most this much of a reply (status is about 2 KiB).
MAX_REPLY_BYTES = 256 * 1024
# Open connections at once; each costs one fd and at most MAX_REQUEST_BYTES of memory.
MAX_CONNECTIONS = 64
# From accept to the request's newline, however slowly the bytes come.
REQUEST_DEADLINE_S = 2.0
# From the handler's answer to the last byte of it handed to the kernel.
REPLY_DEADLINE_S = 2.0
# A snapshot waits for the next complete frame; a live stream delivers one within 1/30 s.
DEFAULT_SNAPSHOT_TIMEOUT_S = 5.0
# `snapshot --timeout` and the request's "timeout": seconds, more than 0, at most this.
MAX_SNAPSHOT_TIMEOUT_S = 300.0

NOT_RUNNING_HINT = (
    "is borescope-bridge running? Start it with `borescope-bridge run` "
    "(or try `borescope-bridge demo`), or check the service with "
    "`systemctl status 'borescope-bridge*'`"
)


def parse_request(line: bytes) -> dict[str, Any] | str:
    """One request line to its object, or the sentence that says why it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "request is not UTF-8 text"
    try:
        msg = json.loads(text)
    except RecursionError:
        return "request is nested too deeply"
    except ValueError:
        return "request is not JSON (send one JSON object on one line)"
    if not isinstance(msg, dict):
        return "request is not a JSON object"
    return msg


def encode_reply(reply: dict[str, Any]) -> bytes:
    """One reply line; raises TypeError/ValueError for what JSON cannot carry."""
    return json.dumps(reply).encode() + b"\n"
