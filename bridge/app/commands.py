# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket's commands (status, snapshot, url, code, new-token, record), answered
from the daemon's parts: a reply at once, or a future the owning thread completes, so the
control thread never waits for a frame, a file or the web thread."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from bridge.control.wire import DEFAULT_SNAPSHOT_TIMEOUT_S, MAX_SNAPSHOT_TIMEOUT_S

if TYPE_CHECKING:
    from bridge.app.daemon import Daemon


class ControlCommands:
    """One method per command; `handle` is what the control server calls."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def handle(self, msg: dict[str, Any]) -> dict[str, Any] | Future[dict[str, Any]]:
        """On the control thread: answers at once, or (a snapshot) with a future reply."""
        cmd = msg.get("cmd")
        if cmd == "status":
            return {"ok": True, "status": self.daemon.status()}
        if cmd == "snapshot":
            return self._control_snapshot(msg.get("timeout", DEFAULT_SNAPSHOT_TIMEOUT_S))
        if cmd == "url":
            return self.url_reply()
        if cmd in ("code", "new-token"):
            return self._credential_reply(cmd)
        if cmd == "record":
            return self.record_request(msg.get("action"), "control socket")
        return {
            "ok": False,
            "error": (
                f"unknown command {cmd!r} (known: status, snapshot, url, code, new-token, record)"
            ),
        }

    def record_request(self, action: Any, origin: str) -> dict[str, Any] | Future[dict[str, Any]]:
        """`record start|stop|status` on the control socket: a reply, or a future of one (the
        page calls `Feed.recordings`, the same object)."""
        if action == "start":
            return self.daemon.recordings.start(origin)
        if action == "stop":
            return self.daemon.recordings.stop(origin)
        if action == "status":
            return {"ok": True, "recording": self.daemon.recordings.status()}
        return {"ok": False, "error": f"record: unknown action {action!r} (start, stop, status)"}

    def _credential_reply(self, cmd: str) -> dict[str, Any] | Future[dict[str, Any]]:
        """`open` (a one-time code for the page's address) and `url --new-token` (a new token,
        every old credential refused): the web thread does it, the reply follows its future."""
        off = self._web_off()
        if off is not None:
            return off
        made = self.daemon.web.issue_code() if cmd == "code" else self.daemon.web.new_token()
        reply: Future[dict[str, Any]] = Future()
        reply.set_running_or_notify_cancel()

        def answer(done: Future[str]) -> None:
            error = done.exception()
            if error is not None:
                reply.set_result({"ok": False, "error": str(error)})
            elif cmd == "code":
                reply.set_result(
                    {
                        "ok": True,
                        "code": done.result(),
                        "host": self.daemon.web.host,
                        "port": self.daemon.web.port,
                    }
                )
            else:
                reply.set_result(self.url_reply())

        made.add_done_callback(answer)
        return reply

    def _web_off(self) -> dict[str, Any] | None:
        """Why there is no web page to ask, or None when there is one."""
        if self.daemon.web is None:
            if self.daemon.web_error:
                return {
                    "ok": False,
                    "error": f"the web page is not available: {self.daemon.web_error}",
                }
            return {
                "ok": False,
                "error": 'the web page is off (http = "off"); turn it on with '
                '--http 127.0.0.1:8031 or http = "127.0.0.1:8031" in the config file',
            }
        return None

    def url_reply(self) -> dict[str, Any]:
        """What `borescope-bridge url` prints from: the page's address with its token."""
        off = self._web_off()
        if off is not None:
            return off
        return {
            "ok": True,
            "url": self.daemon.web.url,
            "host": self.daemon.web.host,
            "port": self.daemon.web.port,
            "token": self.daemon.web.token,
            "token_file": self.daemon.web.token_file,
        }

    def _control_snapshot(self, timeout: Any) -> dict[str, Any] | Future[dict[str, Any]]:
        """`borescope-bridge snapshot`: the file's path, or why not, within `timeout` seconds.

        How many may wait at once is the snapshots' limit: beyond it the request is refused at
        once with the reason ("too many snapshots ... waiting"), holding nothing.
        """
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_SNAPSHOT_TIMEOUT_S
        ):
            return {
                "ok": False,
                "error": f"timeout must be a number of seconds above 0 and at most "
                f"{MAX_SNAPSHOT_TIMEOUT_S:g}, not {timeout!r}",
            }
        reply: Future[dict[str, Any]] = Future()
        reply.set_running_or_notify_cancel()

        def without_busy(answer: Future[dict[str, Any]]) -> None:
            control = dict(answer.result())
            control.pop("busy", None)
            control.pop("limited", None)
            reply.set_result(control)

        self.daemon.take_snapshot(timeout, "control").add_done_callback(without_busy)
        return reply
