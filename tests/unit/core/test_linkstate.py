# SPDX-License-Identifier: GPL-3.0-or-later
"""LinkMachine: every state change and both exit rules, with stepped time instead of sleeps."""

from __future__ import annotations

import pytest

from bridge.core.linkstate import (
    CONTACT_LOST_S,
    GONE,
    NO_DEVICE,
    STALL_S,
    Change,
    LinkMachine,
    LinkState,
    Tick,
)

T0 = 1000.0
EPS = 1e-6


def machine(wait_s: float = 0.0, linger_s: float = 0.0, now: float = T0) -> LinkMachine:
    return LinkMachine(now=now, wait_s=wait_s, linger_s=linger_s)


def test_state_values_are_what_logs_and_status_show() -> None:
    assert [s.value for s in LinkState] == [
        "starting",
        "waiting for network",
        "waiting for device",
        "streaming",
        "stalled",
    ]
    assert LinkState.STALLED == "stalled" and f"{LinkState.WAITING_DEVICE}" == "waiting for device"


def test_first_tick_without_an_answer_is_waiting_for_device() -> None:
    m = machine()
    assert m.state == LinkState.STARTING
    assert m.tick(T0) == Tick(Change(LinkState.STARTING, LinkState.WAITING_DEVICE))
    assert m.tick(T0 + 0.1) == Tick()  # no change, announced once


def test_failing_sends_are_waiting_for_network_until_they_work() -> None:
    m = machine()
    assert m.network(down=True) is True
    assert m.network(down=True) is False  # not news twice
    assert m.tick(T0).change == Change(LinkState.STARTING, LinkState.WAITING_NETWORK)
    assert m.network(down=False) is True
    assert m.network(down=False) is False
    assert m.tick(T0 + 0.1).change == Change(LinkState.WAITING_NETWORK, LinkState.WAITING_DEVICE)


def test_contact_is_first_once_and_alone_is_not_streaming() -> None:
    m = machine()
    assert m.contact(T0 + 1) is True
    assert m.contact(T0 + 2) is False
    assert (m.first_contact_at, m.last_contact_at) == (T0 + 1, T0 + 2)
    assert m.tick(T0 + 2.5).change == Change(LinkState.STARTING, LinkState.WAITING_DEVICE)
    assert not m.first_frame_seen


def test_a_frame_streams_at_once_and_only_the_first_is_a_change() -> None:
    m = machine()
    m.tick(T0)
    m.contact(T0 + 1)
    assert m.frame(T0 + 1) == Change(LinkState.WAITING_DEVICE, LinkState.STREAMING)
    assert m.frame(T0 + 1.04) is None
    assert m.tick(T0 + 1.04 + STALL_S - EPS) == Tick()
    assert m.first_frame_seen


def test_no_frame_for_stall_s_while_the_device_answers_is_stalled_then_resumes() -> None:
    m = machine()
    m.contact(T0)
    m.frame(T0)
    m.contact(T0 + 0.9)  # button polls still answered
    assert m.tick(T0 + STALL_S - EPS).change is None
    assert m.tick(T0 + STALL_S).change == Change(LinkState.STREAMING, LinkState.STALLED)
    m.contact(T0 + 1.5)
    assert m.frame(T0 + 1.5) == Change(LinkState.STALLED, LinkState.STREAMING)


def test_silence_for_contact_lost_s_is_waiting_for_device_or_network() -> None:
    m = machine()
    m.contact(T0)
    m.frame(T0)
    assert m.tick(T0 + STALL_S).change == Change(LinkState.STREAMING, LinkState.STALLED)
    assert m.tick(T0 + CONTACT_LOST_S - EPS).change is None
    assert m.tick(T0 + CONTACT_LOST_S).change == Change(LinkState.STALLED, LinkState.WAITING_DEVICE)
    m.network(down=True)  # the adapter was unplugged
    assert m.tick(T0 + 3).change == Change(LinkState.WAITING_DEVICE, LinkState.WAITING_NETWORK)


def test_a_recent_frame_outranks_failing_sends() -> None:
    m = machine()
    m.network(down=True)
    m.contact(T0)
    m.frame(T0)
    assert m.tick(T0 + 0.5) == Tick()
    assert m.state == LinkState.STREAMING


def test_no_first_contact_within_wait_s_is_no_device() -> None:
    m = machine(wait_s=5)
    m.start(T0 + 2)  # the loop starts later than the session was built: wait_s counts from here
    assert m.tick(T0 + 6.9).exit is None
    assert m.tick(T0 + 7).exit == NO_DEVICE == "no-device"


def test_contact_before_wait_s_cancels_no_device() -> None:
    m = machine(wait_s=5)
    m.contact(T0 + 4)
    assert m.tick(T0 + 5).exit is None
    assert m.tick(T0 + 50).exit is None  # linger 0: forever


def test_wait_zero_is_forever() -> None:
    m = machine(wait_s=0)
    assert m.tick(T0 + 1e6).exit is None


def test_silence_for_linger_s_after_contact_is_gone() -> None:
    m = machine(wait_s=5, linger_s=10)
    m.contact(T0 + 1)
    m.frame(T0 + 1)
    assert m.tick(T0 + 1 + 10 - EPS).exit is None
    tick = m.tick(T0 + 11)
    assert tick.exit == GONE == "gone"
    assert tick.change is None  # already waiting for device at the previous tick


def test_any_contact_restarts_the_linger_count() -> None:
    m = machine(linger_s=10)
    m.contact(T0)
    m.contact(T0 + 9)
    assert m.tick(T0 + 18).exit is None
    assert m.tick(T0 + 19).exit == GONE


def test_linger_zero_is_forever() -> None:
    m = machine(linger_s=0)
    m.contact(T0)
    assert m.tick(T0 + 1e6).exit is None


def test_linger_changed_while_running_applies_at_the_next_tick() -> None:
    m = machine(linger_s=600)
    m.contact(T0)
    assert m.tick(T0 + 30).exit is None
    m.linger_s = 0  # a reload: forever
    assert m.tick(T0 + 700).exit is None
    m.linger_s = 20  # a reload: already silent longer than that
    assert m.tick(T0 + 701).exit == GONE


def test_wait_changed_while_running_applies_at_the_next_tick() -> None:
    m = machine(wait_s=0)
    assert m.tick(T0 + 100).exit is None
    m.wait_s = 30
    assert m.tick(T0 + 100).exit == NO_DEVICE


def test_a_clock_that_starts_at_zero_still_counts_linger() -> None:
    m = machine(linger_s=1, now=0.0)
    m.contact(0.0)
    assert m.tick(0.5).exit is None
    assert m.tick(1.0).exit == GONE


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (time, event) in order; the states announced along the way
        (
            [(0.0, "tick"), (0.2, "contact"), (0.3, "frame"), (0.4, "tick"), (1.3, "tick")],
            ["waiting for device", "streaming", "stalled"],
        ),
        (
            [
                (0.0, "down"),
                (0.1, "tick"),
                (0.5, "up"),
                (0.6, "contact"),
                (0.6, "frame"),
                (1.5, "contact"),
                (1.6, "tick"),
                (3.6, "tick"),
                (3.7, "frame"),
            ],
            # sends work again and a frame comes before any tick: straight to streaming
            ["waiting for network", "streaming", "stalled", "waiting for device", "streaming"],
        ),
    ],
)
def test_sequences(events: list[tuple[float, str]], expected: list[str]) -> None:
    m = machine()
    seen: list[str] = []
    for t, what in events:
        change: Change | None = None
        if what == "tick":
            change = m.tick(T0 + t).change
        elif what == "contact":
            m.contact(T0 + t)
        elif what == "frame":
            change = m.frame(T0 + t)
        else:
            m.network(down=what == "down")
        if change is not None:
            assert change.old == (seen[-1] if seen else LinkState.STARTING)
            seen.append(change.new)
    assert seen == expected


def test_no_direct_route_is_waiting_for_network_and_sends_nothing() -> None:
    """Issue 18: a route via a gateway leads to a stranger's host; nothing goes there."""
    m = machine(wait_s=3)
    assert m.may_send
    assert m.route(direct=False) is True
    assert m.route(direct=False) is False  # not news twice
    assert not m.may_send
    assert m.tick(T0).change == Change(LinkState.STARTING, LinkState.WAITING_NETWORK)
    assert m.tick(T0 + 1).change is None
    assert m.route(direct=True) is True
    assert m.may_send
    assert m.tick(T0 + 1.1).change == Change(LinkState.WAITING_NETWORK, LinkState.WAITING_DEVICE)


def test_wait_still_ends_it_while_no_direct_route_appears() -> None:
    m = machine(wait_s=3)
    m.route(direct=False)
    assert m.tick(T0 + 3 - EPS) == Tick(Change(LinkState.STARTING, LinkState.WAITING_NETWORK))
    assert m.tick(T0 + 3).exit == NO_DEVICE
