# SPDX-License-Identifier: GPL-3.0-or-later
"""Button tracking: baseline, multi-step, 16-bit wrap, reboot, unmatched replies."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.buttons import ButtonTracker
from bridge.core.protocol import decode_setcmd, encode_retcmd


def answer(tracker: ButtonTracker, buttons: int) -> int:
    """Poll once and feed the device's reply with this button counter."""
    counter = decode_setcmd(tracker.next_poll())
    assert isinstance(counter, int)
    return tracker.on_reply(encode_retcmd(counter, buttons))


def test_first_reply_is_baseline() -> None:
    t = ButtonTracker()
    assert answer(t, 41) == 0
    assert t.baseline == 41
    assert answer(t, 41) == 0
    assert answer(t, 42) == 1
    assert t.stats.presses == 1


def test_multi_step_is_several_presses() -> None:
    t = ButtonTracker()
    answer(t, 10)
    assert answer(t, 13) == 3
    assert answer(t, 21) == 8  # max_step presses is still believed
    assert t.stats.presses == 11


def test_counter_wrap_is_one_press() -> None:
    t = ButtonTracker()
    answer(t, 65535)
    assert answer(t, 0) == 1
    assert answer(t, 2) == 2


def test_reboot_rebaselines_without_snapshots() -> None:
    t = ButtonTracker()
    answer(t, 120)
    assert answer(t, 0) == 0  # fell back to 0: reboot
    assert t.stats.rebaselines == 1
    assert answer(t, 1) == 1  # presses after the reboot count again
    assert answer(t, 5000) == 0  # implausible jump
    assert t.stats.rebaselines == 2
    assert t.stats.presses == 1


def test_unmatched_and_garbage_replies_are_ignored() -> None:
    t = ButtonTracker()
    answer(t, 5)
    poll = decode_setcmd(t.next_poll())
    assert isinstance(poll, int)
    assert t.on_reply(encode_retcmd((poll + 100) & 0xFFFF, 7)) == 0
    assert t.on_reply(b"RETCMD garbage") == 0
    assert t.on_reply(encode_retcmd(poll, 7)) == 2
    assert t.on_reply(encode_retcmd(poll, 9)) == 0  # a poll is answered once
    s = t.stats
    assert (s.unmatched, s.rejected, s.presses) == (2, 1, 2)


def test_lost_replies_still_count_every_press() -> None:
    t = ButtonTracker()
    answer(t, 0)
    for _ in range(3):
        t.next_poll()  # these replies are lost
    assert answer(t, 3) == 3


def test_overtaken_reply_is_ignored() -> None:
    t = ButtonTracker()
    answer(t, 0)
    old = decode_setcmd(t.next_poll())
    new = decode_setcmd(t.next_poll())
    assert isinstance(old, int) and isinstance(new, int)
    assert t.on_reply(encode_retcmd(new, 2)) == 2
    # The older poll's reply arrives late with the older counter: not a reboot, not a press.
    assert t.on_reply(encode_retcmd(old, 1)) == 0
    assert t.stats.rebaselines == 0
    assert t.stats.unmatched == 1


def test_outstanding_polls_are_bounded() -> None:
    t = ButtonTracker(max_outstanding=4)
    answer(t, 0)
    first = decode_setcmd(t.next_poll())
    assert isinstance(first, int)
    for _ in range(4):
        t.next_poll()
    assert t.on_reply(encode_retcmd(first, 1)) == 0  # crowded out, forgotten
    assert t.stats.unmatched == 1


def test_poll_counter_wraps() -> None:
    t = ButtonTracker(first_counter=65534)
    seen = [decode_setcmd(t.next_poll()) for _ in range(4)]
    assert seen == [65534, 65535, 0, 1]
    assert answer(t, 3) == 0  # baseline even after the wrap


def test_poll_counter_counts_up_from_a_random_start() -> None:
    """Incremented per request as the seed says, from wherever it started, wrapping at 2**16."""
    t = ButtonTracker()
    seen = [decode_setcmd(t.next_poll()) for _ in range(65538)]
    assert isinstance(seen[0], int)
    assert seen == [(seen[0] + k) % 65536 for k in range(65538)]


def test_poll_counter_start_is_not_guessable() -> None:
    # 16 independent 16-bit draws all equal: probability 2**-240.
    starts = {decode_setcmd(ButtonTracker().next_poll()) for _ in range(16)}
    assert len(starts) > 1
    assert starts != {0}


def test_first_counter_is_checked() -> None:
    with pytest.raises(ValueError, match="first_counter"):
        ButtonTracker(first_counter=65536)


def test_reset_forgets_baseline() -> None:
    t = ButtonTracker()
    answer(t, 3)
    t.reset()
    assert answer(t, 4) == 0
    assert t.baseline == 4


@given(st.integers(0, 0xFFFF), st.lists(st.integers(0, 8), max_size=30))
def test_presses_across_wrap(start: int, steps: list[int]) -> None:
    t = ButtonTracker()
    answer(t, start)
    value = start
    for k in steps:
        value = (value + k) & 0xFFFF
        assert answer(t, value) == k
    assert t.stats.presses == sum(steps)
    assert t.stats.rebaselines == 0


@given(st.integers(0, 0xFFFF), st.integers(9, 0xFFFF))
def test_big_steps_are_never_presses(start: int, step: int) -> None:
    t = ButtonTracker()
    answer(t, start)
    assert answer(t, (start + step) & 0xFFFF) == 0
    assert t.stats.rebaselines == 1


@given(st.lists(st.binary(max_size=30), max_size=20))
def test_any_bytes_never_raise(datagrams: list[bytes]) -> None:
    t = ButtonTracker()
    t.next_poll()
    assert sum(t.on_reply(d) for d in datagrams) == 0


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 80),
    st.lists(st.integers(0, 0xFFFF), max_size=60),
    st.integers(1, 8),
)
def test_only_counters_recently_sent_are_believed(
    first: int, polls: int, forged: list[int], step: int
) -> None:
    """A reply echoing any counter but one of the last max_outstanding polls is never a press."""
    t = ButtonTracker(first_counter=first)
    answer(t, 100)
    sent = [decode_setcmd(t.next_poll()) for _ in range(polls)]
    recent = set(sent[-t.max_outstanding :]) if polls else set()
    refused = 0
    for c in forged:
        if c not in recent:
            assert t.on_reply(encode_retcmd(c, 100 + step)) == 0
            refused += 1
    assert t.baseline == 100
    assert t.stats.unmatched == refused
    assert answer(t, 100 + step) == step  # the real device is still believed
