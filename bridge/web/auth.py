# SPDX-License-Identifier: GPL-3.0-or-later
"""The web page's access token and the rules each request is checked against (no I/O but the file).

Threat model: other local users, other servers on this host (another user's, or one that takes
the port while the daemon is down), and web pages open in the user's own browser (cross-site
requests, DNS rebinding to 127.0.0.1) must not see the borescope or take snapshots, on loopback
too. So every request but the static page carries a credential in a header or, for one GET, a
ticket in its URL (bridge.web.credentials); scripts send the token as ``X-Borescope-Token`` or
``Authorization: Bearer``. No cookie is set or accepted: browsers send cookies to every port
of a host. While listening on loopback, a ``Host`` other than 127.0.0.1 / localhost / [::1]
with our port is refused (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import secrets
import tempfile

log = logging.getLogger(__name__)

TOKEN_FILE = "http-token"
TOKEN_BYTES = 24  # 192 bits; token_urlsafe gives 32 characters
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22,128}")  # at least 128 bits of urlsafe base64
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "X-Borescope-Token"


def _read_token(path: str) -> str | None:
    """The token in `path`; None when there is no file, "" when it holds no valid token."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            token = fh.read().strip()
    except FileNotFoundError:
        return None
    return token if _TOKEN_RE.fullmatch(token) else ""


def _write_temporary(state_dir: str, token: str, mode: int) -> str:
    """A fsynced temporary file in `state_dir` holding `token`; its path."""
    os.makedirs(state_dir, mode=0o750, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".http-token-", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def load_or_create_token(state_dir: str, mode: int) -> str:
    """The token kept in `state_dir`, made on first start; OSError if impossible.

    Written to a temporary file, fsynced, then linked to its name: never half a token, and two
    daemons starting at once end up with the same one (the second link fails and it reads the
    first's). A damaged file is replaced.
    """
    path = os.path.join(state_dir, TOKEN_FILE)
    found = _read_token(path)
    if found:
        return found
    if found == "":
        log.warning("%s does not hold a valid token: making a new one", path)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = _write_temporary(state_dir, token, mode)
    try:
        if found is None:
            try:
                os.link(tmp, path)
            except FileExistsError:
                other = _read_token(path)
                if other:
                    return other
                os.replace(tmp, path)
            except OSError:  # a file system without hard links
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    log.info("made a new access token for the web page in %s", path)
    return token


def replace_token(state_dir: str, mode: int) -> str:
    """A new token, in place of the old one in `state_dir` at once (rename: never half a token,
    never none); OSError if it cannot be written, and then the old one stays."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = _write_temporary(state_dir, token, mode)
    try:
        os.replace(tmp, os.path.join(state_dir, TOKEN_FILE))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    log.info("made a new access token for the web page in %s", state_dir)
    return token


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("ascii"))


def header_token_ok(token: str, *, header: str | None, authorization: str | None) -> bool:
    """Does a request carry the token where scripts put it: the X-Borescope-Token header or
    ``Authorization: Bearer``?"""
    return token_ok(header, token) or token_ok(bearer(authorization), token)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def host_ok(host: str | None, port: int) -> bool:
    """Is this ``Host`` header one of the loopback names with our port? (DNS rebinding)"""
    if not host:
        return False
    name, port_text = host, ""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        name, rest = host[: end + 1], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return False
        port_text = rest[1:]
    elif ":" in host:
        name, _, port_text = host.rpartition(":")
    if name.lower() not in LOOPBACK_NAMES:
        return False
    if not port_text:
        return port == 80
    return port_text.isdigit() and int(port_text) == port
