# SPDX-License-Identifier: GPL-3.0-or-later
"""Session's side of the link states, without sockets: what it logs and tells the listener.

The rules themselves are LinkMachine's (tests/unit/core/test_linkstate.py); these check that the
session turns its answers into the same log lines and listener calls as ever, and that the
reload path (wait_s/linger_s set on the session) reaches the machine. Time is a stepped clock.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from bridge.core.buttons import ButtonTracker
from bridge.core.linkstate import LinkState
from bridge.core.protocol import HEARTBEAT
from bridge.core.reassembly import Reassembler
from bridge.device import session as session_mod
from bridge.device.link import DeviceLink, Route
from bridge.device.session import Session

T0 = 500.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Listener:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self.frames: list[Any] = []

    def on_frame(self, frame: Any, now: float) -> None:
        self.frames.append(frame)

    def on_presses(self, count: int, now: float) -> None:
        pass

    def on_key(self, code: int, now: float) -> None:
        pass

    def on_state(self, old: str, new: str, now: float) -> None:
        self.changes.append((old, new))

    def on_tick(self, now: float) -> None:
        pass


class Unroutable:
    """Stands in for a socket while DHCP has not given the interface an address."""

    def sendto(self, data: bytes, *flags_addr: Any) -> int:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")


def session(clock: Clock, listener: Listener, **kw: Any) -> Session:
    return Session(
        device_ip="192.168.10.123",
        stream_port=8030,
        event_port=50000,
        reassembler=Reassembler(),
        tracker=ButtonTracker(),
        listener=listener,
        clock=clock,
        **kw,
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_stall_and_resume_are_announced_to_the_listener_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, listener = Clock(), Listener()
    s = session(clock, listener, wait_s=0, linger_s=0)
    with caplog.at_level("INFO", logger="bridge.device.session"):
        assert s._step(T0) is None
        s._contact(T0 + 0.1)
        s._contact(T0 + 0.2)
        s._deliver(["f1"], T0 + 0.2)  # type: ignore[list-item]
        s._contact(T0 + 0.9)  # polls answered, no frames
        assert s._step(T0 + 1.2) is None
        s._deliver(["f2"], T0 + 1.5)  # type: ignore[list-item]
    assert listener.changes == [
        ("starting", "waiting for device"),
        ("waiting for device", "streaming"),
        ("streaming", "stalled"),
        ("stalled", "streaming"),
    ]
    assert listener.frames == ["f1", "f2"]
    assert messages(caplog) == [
        ("INFO", "waiting for device at 192.168.10.123"),
        ("INFO", "the borescope at 192.168.10.123 answers"),
        ("INFO", "streaming from 192.168.10.123"),
        ("WARNING", "stream from 192.168.10.123 stalled: no frame for 1 s"),
        ("INFO", "streaming from 192.168.10.123"),
    ]
    clock.t = T0 + 1.75
    stats = s.stats()
    assert stats["state"] == "streaming" and type(stats["state"]) is str
    assert (stats["last_frame_age_s"], stats["last_contact_age_s"]) == (0.25, 0.85)


def test_no_first_contact_within_wait_ends_with_no_device(caplog: pytest.LogCaptureFixture) -> None:
    s = session(Clock(), Listener(), wait_s=0.5, linger_s=0)
    with caplog.at_level("INFO", logger="bridge.device.session"):
        assert s._step(T0 + 0.49) is None
        assert s._step(T0 + 0.5) == "no-device"
    assert messages(caplog)[-1] == (
        "WARNING",
        "no borescope answers at 192.168.10.123 (waited 0.5 s); exiting",
    )


def test_silence_for_linger_after_contact_ends_with_gone(caplog: pytest.LogCaptureFixture) -> None:
    listener = Listener()
    s = session(Clock(), listener, wait_s=0.5, linger_s=3)
    with caplog.at_level("INFO", logger="bridge.device.session"):
        s._contact(T0 + 0.3)
        s._deliver(["f"], T0 + 0.3)  # type: ignore[list-item]
        assert s._step(T0 + 1.3) is None  # stalled
        assert s._step(T0 + 2.3) is None  # contact lost
        assert s._step(T0 + 3.29) is None
        assert s._step(T0 + 3.3) == "gone"
    assert listener.changes[-1] == ("stalled", "waiting for device")
    assert messages(caplog)[-2:] == [
        (
            "INFO",
            "waiting for device at 192.168.10.123 (gone; exiting after 3 s without it, --linger)",
        ),
        ("INFO", "the borescope at 192.168.10.123 has been gone for 3 s; exiting"),
    ]


def test_linger_set_on_the_session_reaches_the_rules() -> None:
    """What a reload does (the daemon sets session.linger_s / session.wait_s)."""
    s = session(Clock(), Listener(), wait_s=0, linger_s=600)
    s._contact(T0)
    assert s._step(T0 + 60) is None
    s.linger_s = 30
    s.wait_s = 5
    assert (s.linger_s, s.wait_s) == (30, 5)
    assert s._step(T0 + 60) == "gone"


def test_unreachable_network_is_a_waiting_state_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = Listener()
    s = session(Clock(), listener)
    with caplog.at_level("WARNING"):
        for _ in range(5):
            s._send(Unroutable(), HEARTBEAT, ("192.168.10.123", 8030), "heartbeat")  # type: ignore[arg-type]
        s._step(T0)
    assert s.state == LinkState.WAITING_NETWORK == session_mod.WAITING_NETWORK
    assert listener.changes == [("starting", "waiting for network")]
    assert s.send_errors == 5
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []


class Recording:
    """Stands in for a socket: remembers every sendto as (flags, address)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Any]] = []

    def sendto(self, data: bytes, flags: int, addr: Any) -> int:
        self.sent.append((flags, addr))
        return len(data)


class Table:
    """The kernel's routing table as the test sets it: device_ip -> Route."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def __call__(self, ip: str, oif: int | None = None) -> Route:
        return self.route


def test_nothing_is_sent_until_the_route_is_direct_then_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18: via the LAN's gateway the device's address is a stranger's host."""
    clock, listener = Clock(), Listener()
    table = Table(Route(4, "192.0.2.1"))
    link = DeviceLink("192.168.10.123", route=table, index_to_name=lambda i: f"if{i}")
    s = session(clock, listener, link=link, wait_s=30, linger_s=0)
    stream, event = Recording(), Recording()
    s._stream, s._event = stream, event  # type: ignore[assignment]
    link.resolve(T0)
    with caplog.at_level("INFO", logger="bridge.device.session"):
        s.machine.start(T0)
        s._next_hb = s._next_poll = s._next_tick = T0
        s._check_route()
        for step in range(100):  # ten seconds of loop, stepped
            clock.t = T0 + step * 0.1
            assert s._timers(clock.t) is None
        assert stream.sent == event.sent == []
        assert s.state == LinkState.WAITING_NETWORK
        table.route = Route(7, None)  # the borescope's adapter appeared
        clock.t = T0 + 10.0
        s._timers(clock.t)  # the tick sees it
        clock.t = T0 + 10.01
        s._timers(clock.t)  # and the sends go at once, not at their next interval
    assert stream.sent == [(socket.MSG_DONTROUTE, ("192.168.10.123", 8030))]
    assert event.sent == [(socket.MSG_DONTROUTE, ("192.168.10.123", 50000))]
    texts = [m for _, m in messages(caplog)]
    no_link = [m for m in texts if m.startswith("no direct link to 192.168.10.123: ")]
    assert len(no_link) == 1 and "is the borescope plugged in?" in no_link[0]
    assert "gateway 192.0.2.1" in no_link[0]
    assert "waiting for network: no route to 192.168.10.123 yet (interface up? DHCP done?)" in texts
    assert "a direct link to 192.168.10.123 via if7: contacting it" in texts
    assert listener.changes == [
        ("starting", "waiting for network"),
        ("waiting for network", "waiting for device"),
    ]


def test_wait_ends_it_when_no_direct_route_ever_appears(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    link = DeviceLink("192.168.10.123", route=Table(Route(4, "192.0.2.1")))
    s = session(clock, Listener(), link=link, wait_s=3, linger_s=0)
    stream, event = Recording(), Recording()
    s._stream, s._event = stream, event  # type: ignore[assignment]
    link.resolve(T0)
    s.machine.start(T0)
    s._next_hb = s._next_poll = s._next_tick = T0
    reasons = []
    with caplog.at_level("INFO", logger="bridge.device.session"):
        for step in range(40):
            clock.t = T0 + step * 0.1
            reasons.append(s._timers(clock.t))
    assert reasons.index("no-device") == 30
    assert stream.sent == event.sent == []
    assert messages(caplog)[-1] == (
        "WARNING",
        "no borescope answers at 192.168.10.123 (waited 3 s); exiting",
    )
