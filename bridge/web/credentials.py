# SPDX-License-Identifier: GPL-3.0-or-later
"""What the web page authenticates with, besides the token: sessions, tickets, one-time codes.

No credential is ambient: the browser holds no cookie, so nothing it sends on its own, to us or
to another server on this host, opens the page. The page keeps the long-lived token in its
origin's storage and never sends it after the first load, because while the daemon is down
another program may listen on its port and receive whatever the open tab sends:

- **Session** (``X-Borescope-Session``): what the page sends with every ``fetch``. It is got
  by proving knowledge of the token without sending it: the daemon hands out a nonce
  (``challenge``), the page answers HMAC-SHA256(token, "borescope-bridge session v1", our
  port, nonce). Nonces are signed with a key this process made, so they die with it: a
  squatter that collects proofs while the daemon is down holds nothing that a later daemon
  accepts, and binding the port stops a relay to a daemon on another port. A session lasts
  while it is used (``SESSION_IDLE_S``) and dies with the process.
- **Ticket** (``?ticket=``): for a URL the page cannot add a header to (``<img src>``,
  ``EventSource``, a download link). One GET of the one path it was made for, within
  ``TICKET_TTL_S``; never a POST.
- **Code** (``?code=``): what `borescope-bridge open` puts on the browser's command line
  instead of the token. Exchanged once, within ``CODE_TTL_S``, for the token.

Every secret is compared in constant time: a presented value is hashed and compared with
every kept entry's hash by ``hmac.compare_digest``, without stopping at a match, so the time
says nothing about any kept secret. Counts are bounded; the oldest entry makes room.
The clock is passed in (monotonic seconds), so tests move time instead of sleeping. Used on
the web server's event loop thread only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bridge.web import auth

SESSION_HEADER = "X-Borescope-Session"
PROOF_CONTEXT = "borescope-bridge session v1"
NONCE_TTL_S = 30.0  # from challenge to the proof that answers it
SESSION_IDLE_S = 600.0  # a session unused this long is forgotten (the page re-proves at once)
TICKET_TTL_S = 30.0  # from the ticket to the request that uses it
CODE_TTL_S = 60.0  # from `borescope-bridge open` to the page redeeming its code
MAX_SESSIONS = 64
MAX_TICKETS = 256
MAX_CODES = 8
MAX_USED_NONCES = 256  # nonces already answered, kept until they expire (no replay)
SECRET_BYTES = 18  # 144 bits; token_urlsafe gives 24 characters
MAX_SECRET_CHARS = 256  # anything longer presented as a secret is refused unread


def session_proof(token: str, port: int, nonce: str) -> str:
    """The proof a page sends for `nonce`: what only a holder of `token` can compute."""
    message = f"{PROOF_CONTEXT}\n{port}\n{nonce}".encode()
    return hmac.new(token.encode("ascii"), message, hashlib.sha256).hexdigest()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "replace")).digest()


@dataclass
class _Entry:
    expires: float
    path: str = ""  # a ticket's path


class _Vault:
    """Bounded secrets with an expiry each, looked up in constant time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[bytes, _Entry] = {}  # insertion order: the first is the oldest

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: _Entry, now: float) -> str:
        self.prune(now)
        while len(self._entries) >= self.limit:
            del self._entries[next(iter(self._entries))]
        secret = secrets.token_urlsafe(SECRET_BYTES)
        self._entries[_digest(secret)] = entry
        return secret

    def find(self, given: str | None, now: float) -> tuple[bytes, _Entry] | None:
        """The live entry for `given`, if any; every kept hash is compared, match or not."""
        if not given or len(given) > MAX_SECRET_CHARS:
            return None
        wanted = _digest(given)
        found: bytes | None = None
        for key in self._entries:
            if hmac.compare_digest(key, wanted):
                found = key
        if found is None:
            return None
        entry = self._entries[found]
        if now >= entry.expires:
            del self._entries[found]
            return None
        return found, entry

    def remove(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def prune(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now >= e.expires]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


class Credentials:
    """The token and every credential derived from it, for one web server (module docstring)."""

    def __init__(self, token: str, port: int, clock: Callable[[], float]) -> None:
        self.token = token
        self.port = port
        self.clock = clock
        self._key = secrets.token_bytes(32)  # signs this process's nonces: they die with it
        self._used_nonces: dict[str, float] = {}
        self.sessions = _Vault(MAX_SESSIONS)
        self.tickets = _Vault(MAX_TICKETS)
        self.codes = _Vault(MAX_CODES)

    def token_ok(self, given: str | None) -> bool:
        return auth.token_ok(given, self.token)

    def rotate(self, token: str) -> None:
        """A new token: every session, ticket and code of the old one is forgotten."""
        self.token = token
        self._key = secrets.token_bytes(32)
        self._used_nonces.clear()
        self.sessions.clear()
        self.tickets.clear()
        self.codes.clear()

    # ---- sessions -----------------------------------------------------------------------------

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def challenge(self) -> str:
        """A nonce for a session proof: the issue time, randomness, and our signature."""
        body = f"{int(self.clock() * 1000)}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def nonce_fresh(self, nonce: str) -> bool:
        """One of this process's nonces, younger than NONCE_TTL_S, not answered yet?"""
        return self._nonce_fresh(nonce, self.clock())

    def _nonce_fresh(self, nonce: str, now: float) -> bool:
        if len(nonce) > MAX_SECRET_CHARS or nonce.count(".") != 2:
            return False
        body, _, signature = nonce.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return False
        issued_ms = body.partition(".")[0]
        if not issued_ms.isdigit():
            return False
        age_s = now - int(issued_ms) / 1000
        return 0 <= age_s < NONCE_TTL_S and nonce not in self._used_nonces

    def open_session(self, nonce: str, proof: str) -> str | None:
        """A new session for a right proof of a fresh nonce of ours; None otherwise."""
        now = self.clock()
        for used in [n for n, t in self._used_nonces.items() if now >= t]:
            del self._used_nonces[used]
        if not self._nonce_fresh(nonce, now) or len(self._used_nonces) >= MAX_USED_NONCES:
            return None
        expected = session_proof(self.token, self.port, nonce)
        if not hmac.compare_digest(proof.encode("utf-8", "replace"), expected.encode()):
            return None
        self._used_nonces[nonce] = now + NONCE_TTL_S
        return self.sessions.add(_Entry(now + SESSION_IDLE_S), now)

    def session_ok(self, given: str | None) -> bool:
        """A live session; using it keeps it alive for another SESSION_IDLE_S."""
        now = self.clock()
        hit = self.sessions.find(given, now)
        if hit is None:
            return False
        hit[1].expires = now + SESSION_IDLE_S
        return True

    # ---- tickets ------------------------------------------------------------------------------

    def ticket(self, path: str) -> str:
        """A ticket for one GET of `path` (the raw path, as the request line will carry it)."""
        now = self.clock()
        return self.tickets.add(_Entry(now + TICKET_TTL_S, path), now)

    def use_ticket(self, given: str | None, path: str) -> bool:
        """Is `given` a live ticket for `path`? Presented once, it is gone either way."""
        hit = self.tickets.find(given, self.clock())
        if hit is None:
            return False
        key, entry = hit
        self.tickets.remove(key)
        return hmac.compare_digest(entry.path.encode(), path.encode())

    # ---- one-time codes -------------------------------------------------------------------------

    def code(self) -> str:
        now = self.clock()
        return self.codes.add(_Entry(now + CODE_TTL_S), now)

    def code_ok(self, given: str | None) -> bool:
        """Would `given` be redeemed now? (The page's address is checked; only the page's
        request redeems it.)"""
        return self.codes.find(given, self.clock()) is not None

    def redeem_code(self, given: str | None) -> str | None:
        """The token for a live code, which is then gone; None for anything else."""
        hit = self.codes.find(given, self.clock())
        if hit is None:
            return None
        self.codes.remove(hit[0])
        return self.token
