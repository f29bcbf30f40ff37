# SPDX-License-Identifier: GPL-3.0-or-later
"""Which faults the simulator injects, decided by a seeded random.Random and nothing else.

Pure: no sockets, no clock. Every decision draws from the generator in a fixed order, so a
seed replays the same faults. The kinds:

* ``loss``: a datagram is not sent. ``duplicate``: it is sent twice, back to back.
  ``reorder``: it is held back and sent after 1-3 later datagrams (possibly of the next frame).
* ``corrupt``: per *frame*, not per datagram. A flipped bit inside the entropy-coded data cannot
  be detected without decoding, so the corruption is one the wire checks must catch: the SOI or
  the EOI marker is damaged (one each at random). Each corrupted frame therefore ends up counted
  as corrupt by the reassembler, or as incomplete if it also lost a fragment; never shown.
* ``foreign``: per datagram, a forged copy (same header, garbage payload) is sent first from
  another address. Per poll reply the same rate sends a forged RETCMD with a jump in the button
  counter. A bridge that does not filter by source address shows garbage or takes phantom
  snapshots.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from bridge.core.protocol import FRAGMENT_HEADER_LEN

REORDER_MAX_DELAY = 3  # a reordered datagram goes out after 1..3 later ones
FAULT_NAMES = ("loss", "duplicate", "reorder", "corrupt", "foreign")


@dataclass(frozen=True)
class FaultRates:
    """The probability of each fault, 0..1; all zero injects nothing and draws nothing."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    foreign: float = 0.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} rate must be between 0 and 1, not {rate}")


class Action(enum.Enum):
    """What happens to one datagram of the stream."""

    SEND = "send"
    TWICE = "twice"
    LOSE = "lose"
    HOLD = "hold"


@dataclass(frozen=True)
class DatagramFate:
    """The decision for one datagram: a forged copy to send first, if any, then the action."""

    action: Action
    forged: bytes | None = None
    delay: int = 0  # for HOLD: how many later datagrams go out before this one


def corrupt_frame(jpeg: bytes, rates: FaultRates, rng: random.Random) -> bytes | None:
    """A copy of ``jpeg`` with its SOI or EOI marker damaged, or None to send it intact."""
    if not (rates.corrupt and rng.random() < rates.corrupt):
        return None
    damaged = bytearray(jpeg)
    if rng.random() < 0.5:
        damaged[1] ^= 0xFF  # SOI FF D8 -> FF 27
    else:
        damaged[-1] ^= 0xFF  # EOI FF D9 -> FF 26
    return bytes(damaged)


def datagram_fate(datagram: bytes, rates: FaultRates, rng: random.Random) -> DatagramFate:
    """Decide the faults of one stream datagram (a fragment with its header)."""
    forged = None
    if rates.foreign and rng.random() < rates.foreign:
        payload = rng.randbytes(len(datagram) - FRAGMENT_HEADER_LEN)
        forged = datagram[:FRAGMENT_HEADER_LEN] + payload
    if rates.loss and rng.random() < rates.loss:
        return DatagramFate(Action.LOSE, forged)
    if rates.reorder and rng.random() < rates.reorder:
        return DatagramFate(Action.HOLD, forged, rng.randint(1, REORDER_MAX_DELAY))
    if rates.duplicate and rng.random() < rates.duplicate:
        return DatagramFate(Action.TWICE, forged)
    return DatagramFate(Action.SEND, forged)


def forge_reply(rates: FaultRates, rng: random.Random) -> bool:
    """Whether a forged button reply precedes the real one."""
    return bool(rates.foreign and rng.random() < rates.foreign)


class HeldBack:
    """Datagrams held back by reordering, each released after its count of later datagrams."""

    def __init__(self) -> None:
        self._items: list[tuple[bytes, int]] = []

    def __len__(self) -> int:
        return len(self._items)

    def hold(self, datagram: bytes, delay: int) -> None:
        self._items.append((datagram, delay))

    def passed(self) -> list[bytes]:
        """One later datagram went out: the held ones whose count ran out, oldest first."""
        released = []
        keep = []
        for datagram, delay in self._items:
            if delay <= 1:
                released.append(datagram)
            else:
                keep.append((datagram, delay - 1))
        self._items = keep
        return released

    def drain(self) -> list[bytes]:
        """Everything still held, oldest first; nothing is held afterwards."""
        items, self._items = self._items, []
        return [datagram for datagram, _ in items]
