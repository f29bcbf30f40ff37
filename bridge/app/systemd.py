# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd glue: sd_notify (READY/STATUS/WATCHDOG/RELOADING/STOPPING) and journal logging.

Everything here is inert outside systemd: without NOTIFY_SOCKET no message is sent,
and without a journal stream logs go to stderr. The notifications are our own sd_notify(3)
(one datagram to the socket NOTIFY_SOCKET names), so they never depend on systemd-python,
which is only the optional journal handler; tests bind their own socket and read what arrives.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 2.0  # routine STATUS= refreshes (fps, counters); state changes go at once


def _sd_notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify(3) datagram to $NOTIFY_SOCKET; False when unset or undeliverable.

    The protocol is one AF_UNIX datagram; an address starting with "@" is in the abstract
    namespace (its first byte becomes NUL). Non-blocking: a full socket drops the message
    rather than stall the loop thread.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(message.encode(), target)
    except OSError:
        return False
    return True


class Notifier:
    """Sends sd_notify messages when NOTIFY_SOCKET is set; a no-op otherwise.

    `environ` decides whether to send and the watchdog interval; each message goes to the
    NOTIFY_SOCKET of the process environment at the time it is sent.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.watchdog_interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if self.enabled and usec and (not pid or pid == str(os.getpid())):
            try:
                # Ping at half the timeout, as sd_watchdog_enabled(3) recommends.
                self.watchdog_interval_s = int(usec) / 1e6 / 2
            except ValueError:
                self.watchdog_interval_s = None
        self._last_status: str | None = None
        self._last_status_at = 0.0
        self._last_watchdog = 0.0

    def send(self, message: str) -> None:
        if self.enabled and not _sd_notify(message):
            log.debug("sd_notify(%r) failed", message)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str, force: bool = False) -> None:
        """Update STATUS= when it changed: at once when `force` (a state change), else at most
        every STATUS_INTERVAL_S, so a live fps figure does not flood systemd (or fill a slow
        reader's notify socket, where the rest would be dropped)."""
        if status == self._last_status:
            return
        now = time.monotonic()
        if force or now - self._last_status_at >= STATUS_INTERVAL_S:
            self._last_status = status
            self._last_status_at = now
            self.send(f"STATUS={status}")

    def watchdog(self, now: float) -> None:
        """Call from the main loop only, and only while the other threads that matter progress
        (the daemon checks the camera thread): a stuck loop or camera stops the pings."""
        if self.watchdog_interval_s is None:
            return
        if now - self._last_watchdog >= self.watchdog_interval_s:
            self._last_watchdog = now
            self.send("WATCHDOG=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping")


class StructuredFields(logging.Filter):
    """Adds BORESCOPE_* fields from a shared dict to every record (the journal indexes them)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, "" if value is None else str(value))
        return True


def under_journal(environ: dict[str, str] | None = None) -> bool:
    """True when stderr goes to the journal (JOURNAL_STREAM matches) or systemd started us."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM")
    if stream:
        try:
            dev, ino = (int(x) for x in stream.split(":"))
            st = os.fstat(sys.stderr.fileno())
            if (st.st_dev, st.st_ino) == (dev, ino):
                return True
        except (ValueError, OSError, AttributeError):
            pass
    return bool(env.get("INVOCATION_ID")) and not stream


def setup_logging(verbose: int = 0, fields: dict[str, Any] | None = None) -> None:
    """Choose the handler once, at the composition root: journal under systemd, else stderr."""
    level = logging.DEBUG if verbose > 0 else logging.INFO
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(level)
    handler: logging.Handler | None = None
    if under_journal():
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER="borescope-bridge")
            handler.setFormatter(logging.Formatter("%(message)s"))
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("borescope-bridge: %(levelname)s: %(message)s"))
    if fields is not None:
        handler.addFilter(StructuredFields(fields))
    root.addHandler(handler)
