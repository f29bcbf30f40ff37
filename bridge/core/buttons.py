# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot-button events: RETCMD replies in, press counts out. Pure, no I/O.

The device never announces a press. It keeps a 16-bit counter that the button increments, and
returns it in every ``RETCMD`` reply to the client's ``SETCMD`` polls (~10 a second). The client
turns counter *steps* into presses:

* The first reply only sets the baseline: presses made before the bridge started are history.
* A step of k (modulo 2**16, so 65535 -> 0 is one press) with ``1 <= k <= max_step`` is k
  presses. Polls and replies are UDP and get lost, so a few presses can fall between two answered
  polls; each must still produce its own snapshot.
* Anything else is not a press: the counter fell back (the device rebooted and starts again from
  0) or jumped implausibly far. The tracker takes the new value as its baseline and reports
  nothing, so a reboot never causes a burst of snapshots.
* A reply must echo the counter of a poll still outstanding; anything else (a stray, a reply to
  a poll we gave up on, a reply that arrives after a newer poll's reply) is ignored. A reply
  retires its poll and every older one, so replies overtaken by newer ones are never used.
* The poll counter starts at a random value (``secrets``), not 0. The device echoes whatever
  counter it is sent, so nothing is lost, and a forged reply then has to hit one of the
  ``max_outstanding`` counters actually sent in the last few seconds, which a sender that cannot
  see our polls can only guess (1 in 2048 per datagram with the defaults). This is defence in
  depth; the session's interface check (bridge/device/link.py) is what keeps forged replies out.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass

from bridge.core.protocol import Reject, decode_retcmd, encode_setcmd

log = logging.getLogger(__name__)

MAX_STEP = 8  # most presses believed between two answered polls (~100 ms apart, some lost)
MAX_OUTSTANDING = 32  # polls remembered without an answer (3 s at 10 polls/s)
COUNTER_MOD = 0x10000


@dataclass(slots=True)
class ButtonStats:
    """Counters for the status output."""

    polls: int = 0
    replies: int = 0
    unmatched: int = 0
    rejected: int = 0
    rebaselines: int = 0
    presses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ButtonTracker:
    """Issues polls and turns their replies into presses; see the module docstring."""

    def __init__(
        self,
        max_step: int = MAX_STEP,
        max_outstanding: int = MAX_OUTSTANDING,
        first_counter: int | None = None,
    ) -> None:
        """`first_counter` is for tests that need a known start; by default it is random."""
        if not 1 <= max_step < COUNTER_MOD // 2 or max_outstanding < 1:
            raise ValueError("max_step must be 1..32767 and max_outstanding at least 1")
        if first_counter is not None and not 0 <= first_counter < COUNTER_MOD:
            raise ValueError("first_counter must be 0..65535")
        self.max_step = max_step
        self.max_outstanding = max_outstanding
        self.stats = ButtonStats()
        self._next = secrets.randbelow(COUNTER_MOD) if first_counter is None else first_counter
        self._outstanding: OrderedDict[int, None] = OrderedDict()  # poll counters, oldest first
        self._buttons: int | None = None

    @property
    def baseline(self) -> int | None:
        """The last button counter seen, or None before the first reply."""
        return self._buttons

    def next_poll(self) -> bytes:
        """A SETCMD datagram with the next counter; remembered until answered or crowded out."""
        counter = self._next
        self._next = (counter + 1) % COUNTER_MOD
        outstanding = self._outstanding
        outstanding.pop(counter, None)
        outstanding[counter] = None
        while len(outstanding) > self.max_outstanding:
            outstanding.popitem(last=False)
        self.stats.polls += 1
        return encode_setcmd(counter)

    def reset(self) -> None:
        """Forget the baseline, e.g. when the device was gone long enough to have rebooted."""
        self._buttons = None
        self._outstanding.clear()

    def on_reply(self, datagram: bytes | bytearray | memoryview) -> int:
        """Presses to act on: 0 for the baseline, unmatched or garbage replies and reboots."""
        reply = decode_retcmd(datagram)
        stats = self.stats
        if isinstance(reply, Reject):
            stats.rejected += 1
            return 0
        outstanding = self._outstanding
        if reply.counter not in outstanding:
            stats.unmatched += 1
            return 0
        while outstanding:
            counter, _ = outstanding.popitem(last=False)
            if counter == reply.counter:
                break
        stats.replies += 1
        previous = self._buttons
        self._buttons = reply.buttons
        if previous is None:
            log.debug("button counter baseline %d", reply.buttons)
            return 0
        step = (reply.buttons - previous) % COUNTER_MOD
        if step == 0:
            return 0
        if step <= self.max_step:
            stats.presses += step
            log.debug("button counter %d -> %d: %d press(es)", previous, reply.buttons, step)
            return step
        stats.rebaselines += 1
        log.info(
            "button counter jumped %d -> %d (device reboot?): new baseline, no snapshots",
            previous,
            reply.buttons,
        )
        return 0
