# SPDX-License-Identifier: GPL-3.0-or-later
"""The link state machine of one borescope session: what state it is in and when to give up.

Pure on purpose: the session feeds it events with the time they happened (a datagram from the
device, a complete frame, sends failing or working again, a housekeeping tick) and acts on what it
answers, so every rule below can be tested with stepped time instead of real seconds.

States (the session logs each change once, never per packet):
  starting → waiting for network (no direct route to the device, so nothing is sent to it; or
                                  sends fail: DHCP has not finished, no route yet)
           → waiting for device (sends work, nobody answers)
           → streaming (a frame within the last STALL_S)
           → stalled (the device answered before but no frame for STALL_S)

Exits: "no-device" when no first contact came within `wait_s` of the start, "gone" when the
device has been silent for `linger_s` after contact; 0 means forever for either. Both may be
changed while running (a reload sets them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

STALL_S = 1.0  # no frame for this long while streaming = stalled
CONTACT_LOST_S = 2.0  # no packet at all for this long = device gone ("waiting for device")

NO_DEVICE = "no-device"
GONE = "gone"


class LinkState(StrEnum):
    """The session's state; the values are what logs, status and the web page show."""

    STARTING = "starting"
    WAITING_NETWORK = "waiting for network"
    WAITING_DEVICE = "waiting for device"
    STREAMING = "streaming"
    STALLED = "stalled"


@dataclass(frozen=True, slots=True)
class Change:
    """One state change, for the session to announce (listener first, then the log)."""

    old: LinkState
    new: LinkState


@dataclass(frozen=True, slots=True)
class Tick:
    """What a housekeeping tick found: a state change, an exit reason, either or neither."""

    change: Change | None = None
    exit: str | None = None


class LinkMachine:
    """States and exit rules of one session, driven by the `now` each event passes in."""

    def __init__(self, *, now: float, wait_s: float = 30.0, linger_s: float = 600.0) -> None:
        self.wait_s = wait_s
        self.linger_s = linger_s
        self.state = LinkState.STARTING
        self.started_at = now
        self.first_contact_at: float | None = None
        self.last_contact_at: float | None = None
        self.last_frame_at: float | None = None
        self.network_down = False
        # The kernel's route to the device is direct (on-link, no gateway); until the session
        # says otherwise it is assumed, as sends failing is what reports trouble then.
        self.direct_route = True

    def start(self, now: float) -> None:
        """The loop begins: `wait_s` counts from here, not from construction."""
        self.started_at = now

    @property
    def first_frame_seen(self) -> bool:
        return self.last_frame_at is not None

    def contact(self, now: float) -> bool:
        """A genuine datagram from the device; True for the very first one."""
        first = self.first_contact_at is None
        if first:
            self.first_contact_at = now
        self.last_contact_at = now
        return first

    def frame(self, now: float) -> Change | None:
        """A complete frame: streaming at once, without waiting for the next tick."""
        self.last_frame_at = now
        if self.state != LinkState.STREAMING:
            return self._move(LinkState.STREAMING)
        return None

    def network(self, down: bool) -> bool:
        """Sends fail (`down`) or work again; True when that is news."""
        changed = down != self.network_down
        self.network_down = down
        return changed

    def route(self, direct: bool) -> bool:
        """Whether the route to the device is direct; True when that is news.

        The session sends nothing while it is not (a route via a gateway leads to a stranger's
        host, issue 18); shown as "waiting for network" until the device can be reached.
        """
        changed = direct != self.direct_route
        self.direct_route = direct
        return changed

    @property
    def may_send(self) -> bool:
        """Heartbeats and polls go out only over a direct route."""
        return self.direct_route

    def tick(self, now: float) -> Tick:
        """Re-derive the state from the timestamps, then check the exit rules."""
        return Tick(self._update(now), self._exit_due(now))

    def _update(self, now: float) -> Change | None:
        if self.last_frame_at is not None and now - self.last_frame_at < STALL_S:
            new = LinkState.STREAMING
        elif self.last_contact_at is not None and now - self.last_contact_at < CONTACT_LOST_S:
            new = LinkState.STALLED if self.first_frame_seen else LinkState.WAITING_DEVICE
        elif self.network_down or not self.direct_route:
            new = LinkState.WAITING_NETWORK
        else:
            new = LinkState.WAITING_DEVICE
        return self._move(new) if new != self.state else None

    def _move(self, new: LinkState) -> Change:
        change = Change(self.state, new)
        self.state = new
        return change

    def _exit_due(self, now: float) -> str | None:
        if self.last_contact_at is None:
            if self.wait_s > 0 and now - self.started_at >= self.wait_s:
                return NO_DEVICE
            return None
        if self.linger_s > 0 and now - self.last_contact_at >= self.linger_s:
            return GONE
        return None
