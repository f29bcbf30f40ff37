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

SDK 2.x scopes (``Buttons.KEYS`` in bridge.core.models) answer the same poll with a key code
instead: 0 none, 1 photo, 2 video, 3 zoom in, 4 zoom out. Whether a held key is reported once or
in every reply is not known, so a key counts when the value changes to it (a code followed by
the same code is one press). Code 1 is a press like the J103's; the others are kept for
:meth:`ButtonTracker.take_keys`. Their polls carry a 1- or 4-byte payload and their replies come
in the looser forms of bridge.core.control.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass

from bridge.core.control import KEY_NONE, KEY_PHOTO, decode_key_reply, encode_key_poll
from bridge.core.models import Buttons
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
    keys: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ButtonTracker:
    """Issues polls and turns their replies into presses; see the module docstring."""

    def __init__(
        self,
        max_step: int = MAX_STEP,
        max_outstanding: int = MAX_OUTSTANDING,
        first_counter: int | None = None,
        mode: Buttons = Buttons.COUNTER,
        payload_len: int = 4,
    ) -> None:
        """`first_counter` is for tests that need a known start; by default it is random.

        ``mode`` and ``payload_len`` come from the model table (the J103: counter, 4).
        """
        if payload_len not in (1, 4):
            raise ValueError("the GetRemoteKey payload is 1 or 4 bytes")
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
        self.mode = mode
        self.payload_len = payload_len
        self._keys: list[int] = []

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
        if self.mode == Buttons.COUNTER and self.payload_len == 4:
            return encode_setcmd(counter)
        return encode_key_poll(counter, self.payload_len)

    def take_keys(self) -> list[int]:
        """Key codes other than photo (2 video, 3/4 zoom, unknown ones) seen since the last call."""
        keys, self._keys = self._keys, []
        return keys

    def reset(self) -> None:
        """Forget the baseline, e.g. when the device was gone long enough to have rebooted."""
        self._buttons = None
        self._outstanding.clear()

    def on_reply(self, datagram: bytes | bytearray | memoryview) -> int:
        """Presses to act on: 0 for the baseline, unmatched or garbage replies and reboots."""
        stats = self.stats
        if self.mode == Buttons.KEYS:
            key_reply = decode_key_reply(datagram)
            if isinstance(key_reply, Reject):
                stats.rejected += 1
                return 0
            if not self._retire(key_reply.seq & 0xFFFF):
                return 0
            return self._key(key_reply.value, key_reply.raw)
        reply = decode_retcmd(datagram)
        if isinstance(reply, Reject):
            stats.rejected += 1
            return 0
        if not self._retire(reply.counter):
            return 0
        previous = self._buttons
        self._buttons = reply.buttons
        if previous is None:
            log.debug(
                "button counter baseline %d (reserved bytes %s)",
                reply.buttons,
                reply.reserved.hex(),
            )
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

    def _retire(self, counter: int) -> bool:
        """Match a reply to an outstanding poll and retire it and every older one."""
        outstanding = self._outstanding
        if counter not in outstanding:
            self.stats.unmatched += 1
            return False
        while outstanding:
            sent, _ = outstanding.popitem(last=False)
            if sent == counter:
                break
        self.stats.replies += 1
        return True

    def _key(self, value: int, raw: bytes) -> int:
        """A key code: counted when it changes to a key; photo is a press, the rest are kept."""
        previous = self._buttons
        self._buttons = value
        if previous is None:
            # Like the counter's baseline: a key shown before we asked is history.
            log.debug("first key reply %s (value %d)", raw.hex(), value)
            return 0
        if value in (KEY_NONE, previous):
            return 0
        self.stats.keys += 1
        if value == KEY_PHOTO:
            self.stats.presses += 1
            return 1
        self._keys.append(value)
        return 0
