# SPDX-License-Identifier: GPL-3.0-or-later
"""The stream socket's receive buffer: ask for a large one and report what the kernel granted.

A frame arrives as a burst of datagrams faster than one thread can always drain them; what the
buffer cannot hold is lost, and a lost fragment costs the whole frame. Unprivileged processes are
capped by net.core.rmem_max, which is why the result is reported (status, doctor) and not assumed.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux value; Python does not export it


@dataclass
class ReceiveBuffer:
    """What SO_RCVBUF the kernel granted; `capped` when net.core.rmem_max cut the request."""

    requested: int = 0
    effective: int = 0
    capped: bool = False
    rmem_max: int | None = None


def read_rmem_max() -> int | None:
    try:
        with open("/proc/sys/net/core/rmem_max") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def set_receive_buffer(s: socket.socket, want: int, rb: ReceiveBuffer, quiet: bool = False) -> None:
    """Ask for `want` bytes on `s` and record the outcome in `rb`; warn when capped unless quiet."""
    rb.requested = want
    rb.rmem_max = read_rmem_max()
    try:
        # Privileged processes may exceed net.core.rmem_max; everyone else is capped by it.
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
    except OSError:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
        except OSError as exc:
            log.warning("cannot set the receive buffer to %d bytes: %s", want, exc.strerror)
    rb.effective = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # The kernel doubles the value it grants (bookkeeping overhead).
    rb.capped = rb.effective < 2 * want
    if rb.capped and not quiet:
        log.warning(
            "receive buffer capped at %d bytes by net.core.rmem_max (wanted %d): large "
            "frames may be lost; raise it with `sudo sysctl -w net.core.rmem_max=%d` "
            "(make install ships a sysctl.d file for this)",
            rb.effective // 2,
            want,
            want,
        )
