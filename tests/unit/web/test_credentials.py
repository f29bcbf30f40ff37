# SPDX-License-Identifier: GPL-3.0-or-later
"""The page's credentials as pure rules, on a clock the test moves: a session only for a right
proof of a fresh nonce of this process for our port; tickets once, for one path, briefly;
codes once within 60 s; bounded counts; a new token forgets everything."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from bridge.web import credentials as cr
from bridge.web.credentials import Credentials, session_proof

TOKEN = "T" * 32
PORT = 8031


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Credentials, Clock]:
    clock = Clock()
    return Credentials(TOKEN, PORT, clock), clock


def test_proof_is_hmac_sha256_of_context_port_and_nonce() -> None:
    expected = hmac.new(
        TOKEN.encode(), b"borescope-bridge session v1\n8031\nN", hashlib.sha256
    ).hexdigest()
    assert session_proof(TOKEN, PORT, "N") == expected


def test_session_needs_a_right_proof_of_a_fresh_nonce_once() -> None:
    c, clock = make()
    nonce = c.challenge()
    assert c.open_session(nonce, session_proof("U" * 32, PORT, nonce)) is None  # wrong token
    assert c.open_session(nonce, session_proof(TOKEN, PORT + 1, nonce)) is None  # other port
    session = c.open_session(nonce, session_proof(TOKEN, PORT, nonce))
    assert session and c.session_ok(session)
    # The same proof again (a replay) gets nothing.
    assert c.open_session(nonce, session_proof(TOKEN, PORT, nonce)) is None
    assert not c.nonce_fresh(nonce)
    # A nonce answered too late.
    late = c.challenge()
    clock.now += cr.NONCE_TTL_S
    assert c.open_session(late, session_proof(TOKEN, PORT, late)) is None


def test_nonces_of_another_process_or_forged_are_refused() -> None:
    c, _clock = make()
    other, _ = make()  # another daemon (a restart): another signing key
    theirs = other.challenge()
    assert not c.nonce_fresh(theirs)
    assert c.open_session(theirs, session_proof(TOKEN, PORT, theirs)) is None
    ms, rand, _sig = c.challenge().split(".")
    for forged in (f"{ms}.{rand}.{'0' * 32}", f"{ms}.{rand}", "", "a.b.c", f"{ms}.x.y.z"):
        assert c.open_session(forged, session_proof(TOKEN, PORT, forged)) is None, forged


def test_session_lives_while_used_and_not_beyond() -> None:
    c, clock = make()
    nonce = c.challenge()
    session = c.open_session(nonce, session_proof(TOKEN, PORT, nonce))
    assert session
    for _ in range(5):
        clock.now += cr.SESSION_IDLE_S - 1
        assert c.session_ok(session)
    clock.now += cr.SESSION_IDLE_S
    assert not c.session_ok(session)


def test_tickets_once_for_their_path_and_briefly() -> None:
    c, clock = make()
    t = c.ticket("/stream.mjpeg")
    assert not c.use_ticket(t, "/api/status")  # another path: refused, and the ticket is gone
    assert not c.use_ticket(t, "/stream.mjpeg")
    t = c.ticket("/stream.mjpeg")
    assert c.use_ticket(t, "/stream.mjpeg")
    assert not c.use_ticket(t, "/stream.mjpeg")  # once
    t = c.ticket("/frame.jpg")
    clock.now += cr.TICKET_TTL_S
    assert not c.use_ticket(t, "/frame.jpg")


def test_codes_once_within_60_s() -> None:
    c, clock = make()
    code = c.code()
    assert c.code_ok(code) and c.code_ok(code)  # looking does not use it
    assert c.redeem_code(code) == TOKEN
    assert c.redeem_code(code) is None and not c.code_ok(code)
    code = c.code()
    clock.now += cr.CODE_TTL_S - 0.001
    assert c.code_ok(code)
    clock.now += 0.001
    assert c.redeem_code(code) is None


def test_counts_are_bounded_the_oldest_making_room() -> None:
    c, _clock = make()
    codes = [c.code() for _ in range(cr.MAX_CODES + 3)]
    assert len(c.codes) == cr.MAX_CODES
    assert c.redeem_code(codes[0]) is None  # the oldest went
    assert c.redeem_code(codes[-1]) == TOKEN
    tickets = [c.ticket("/frame.jpg") for _ in range(cr.MAX_TICKETS + 1)]
    assert len(c.tickets) == cr.MAX_TICKETS
    assert not c.use_ticket(tickets[0], "/frame.jpg")
    assert c.use_ticket(tickets[-1], "/frame.jpg")


def test_a_new_token_forgets_every_credential() -> None:
    c, _clock = make()
    nonce = c.challenge()
    session = c.open_session(nonce, session_proof(TOKEN, PORT, nonce))
    ticket, code, pending = c.ticket("/frame.jpg"), c.code(), c.challenge()
    c.rotate("N" * 32)
    assert not c.token_ok(TOKEN) and c.token_ok("N" * 32)
    assert not c.session_ok(session)
    assert not c.use_ticket(ticket, "/frame.jpg")
    assert c.redeem_code(code) is None
    assert c.open_session(pending, session_proof("N" * 32, PORT, pending)) is None
    fresh = c.challenge()
    assert c.open_session(fresh, session_proof(TOKEN, PORT, fresh)) is None  # the old token
    assert c.open_session(fresh, session_proof("N" * 32, PORT, fresh))


@given(st.text(max_size=300))
def test_nothing_unissued_is_accepted(guess: str) -> None:
    c, _clock = make()
    c.ticket("/frame.jpg")
    c.code()
    assert not c.use_ticket(guess, "/frame.jpg")
    assert c.redeem_code(guess) is None
    assert not c.session_ok(guess)
    assert c.open_session(guess, guess) is None
    assert not c.nonce_fresh(guess)
