# SPDX-License-Identifier: GPL-3.0-or-later
"""Who may ask what of the web server: the guard every request passes, and the routes that hand
out the page's credentials (bridge.web.credentials says what each one is and why).

Public, for anyone who passes the Host check: the static page (``/`` and its script and style
files: they hold no secret), ``GET /api/challenge``, ``POST /api/session`` (the proof is the
credential) and ``POST /api/code`` (the code is). Everything else needs the token in a header
(scripts), the page's session header, or for one GET a ticket in the URL; a ticket never
authorises a POST, so every state change carries a header, which no other site can set. A
stranger gets 401 before 404 or 405, so learns nothing of which paths and methods exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.web import auth
from bridge.web.credentials import (
    CODE_TTL_S,
    SESSION_HEADER,
    SESSION_IDLE_S,
    TICKET_TTL_S,
    Credentials,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PAGE_FILES = {
    "/app.js": "text/javascript",
    "/style.css": "text/css",
    "/credential.js": "text/javascript",
}
PUBLIC = frozenset(
    {("GET", "/"), ("GET", "/api/challenge"), ("POST", "/api/session"), ("POST", "/api/code")}
    | {("GET", path) for path in PAGE_FILES}
)
MAX_TICKET_PATH = 1024
UNAUTHORIZED_TEXT = (
    "This is the live view of borescope-bridge. It needs its access token: open the address "
    "that `borescope-bridge url` prints, or run `borescope-bridge open` (on a phone: "
    "`borescope-bridge url --lan --qr`)."
)
CODE_REFUSED_TEXT = (
    "This one-time address was used already or is more than "
    f"{CODE_TTL_S:g} s old: run `borescope-bridge open` again."
)
_HTML = (
    "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
    "<title>borescope-bridge: access token needed</title><h1>Access token needed</h1><p>{}</p>"
)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def refuse(request: web.Request, status: int, text: str) -> web.Response:
    """JSON for the API, a short page for a browser's 401, plain text otherwise."""
    if request.path.startswith("/api/"):
        return json_response({"ok": False, "error": text}, status)
    if status == 401:
        body = _HTML.format(re.sub(r"`([^`]*)`", r"<code>\1</code>", text))
        return web.Response(text=body, status=401, content_type="text/html", charset="utf-8")
    return web.Response(text=text + "\n", status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; HTTP 400 for anything else."""
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "send one JSON object"}),
            content_type="application/json",
        )
    return data


class Access:
    """The guard middleware and the credential routes of one web server (module docstring)."""

    def __init__(self, credentials: Credentials, loopback: bool) -> None:
        self.credentials = credentials
        self.loopback = loopback

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/challenge", self._challenge, allow_head=False)
        router.add_post("/api/session", self._session)
        router.add_post("/api/ticket", self._ticket)
        router.add_post("/api/code", self._code)

    def credential(self, request: web.Request) -> str | None:
        """Which credential admits this request: "token", "session", "ticket", or None."""
        h = request.headers
        creds = self.credentials
        if auth.header_token_ok(
            creds.token, header=h.get(auth.TOKEN_HEADER), authorization=h.get("Authorization")
        ):
            return "token"
        if SESSION_HEADER in h and creds.session_ok(h[SESSION_HEADER]):
            return "session"
        ticket = request.query.get("ticket")
        if request.method == "GET" and creds.use_ticket(ticket, request.rel_url.raw_path):
            return "ticket"
        return None

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host (DNS rebinding), credential, then method, for every request."""
        port = self.credentials.port
        if self.loopback and not auth.host_ok(request.headers.get("Host"), port):
            return refuse(
                request,
                403,
                f"refused: Host {request.headers.get('Host')!r} is not this machine's loopback "
                f"address (use http://127.0.0.1:{port}/)",
            )
        if (request.method, request.path) in PUBLIC:
            if request.path == "/":
                refused = self._page_address_refused(request)
                if refused is not None:
                    return refused
            return await handler(request)
        kind = self.credential(request)
        if kind is None:
            return refuse(request, 401, UNAUTHORIZED_TEXT)
        request["credential"] = kind
        error = request.match_info.http_exception
        if isinstance(error, web.HTTPMethodNotAllowed):
            raise error
        return await handler(request)

    def _page_address_refused(self, request: web.Request) -> web.Response | None:
        """The page's own address with a wrong ``token=`` or a dead ``code=``: say so now, not
        after the script finds out. A code is only looked at here; the page redeems it."""
        q = request.query
        if "token" in q:
            if not self.credentials.token_ok(q["token"]):
                return refuse(request, 401, UNAUTHORIZED_TEXT)
        elif "code" in q and not self.credentials.code_ok(q["code"]):
            return refuse(request, 401, CODE_REFUSED_TEXT)
        return None

    # ---- the credential routes --------------------------------------------------------------

    async def _challenge(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "nonce": self.credentials.challenge()})

    async def _session(self, request: web.Request) -> web.Response:
        data = await _body(request)
        nonce, proof = data.get("nonce"), data.get("proof")
        if not isinstance(nonce, str) or not isinstance(proof, str):
            return json_response({"ok": False, "error": "send nonce and proof"}, 400)
        if not self.credentials.nonce_fresh(nonce):
            return json_response(
                {"ok": False, "error": "unknown or expired nonce: GET /api/challenge again"}, 400
            )
        session = self.credentials.open_session(nonce, proof)
        if session is None:
            return json_response({"ok": False, "error": UNAUTHORIZED_TEXT}, 401)
        return json_response({"ok": True, "session": session, "idle_s": SESSION_IDLE_S})

    async def _ticket(self, request: web.Request) -> web.Response:
        data = await _body(request)
        path = data.get("path")
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or len(path) > MAX_TICKET_PATH
            or any(c in path for c in "?#\r\n")
        ):
            return json_response(
                {"ok": False, "error": "path must be an absolute path without a query"}, 400
            )
        ticket = self.credentials.ticket(path)
        return json_response({"ok": True, "ticket": ticket, "expires_s": TICKET_TTL_S})

    async def _code(self, request: web.Request) -> web.Response:
        data = await _body(request)
        code = data.get("code")
        token = self.credentials.redeem_code(code if isinstance(code, str) else None)
        if token is None:
            return json_response({"ok": False, "error": CODE_REFUSED_TEXT}, 401)
        return json_response({"ok": True, "token": token})
