# SPDX-License-Identifier: GPL-3.0-or-later
"""Which connection a full control socket drops: the rule alone, on plain data.

At most ``MAX_CONNECTIONS`` connections are open at once. When a new one arrives and the
table is full, one connection that has not finished sending its request (or is not reading
its reply) is dropped: the oldest of the peer holding the most connections (counted by uid,
then by pid, from ``SO_PEERCRED``). The server reads that one once more first in case its
request has just arrived. A flood of slow clients that keep reconnecting so only ever evicts
itself, however fast it reconnects, while a well-behaved client, with one connection whose
request is complete the moment it is sent, goes on to its handler.

No sockets here: the server says who opened and closed, and asks for a candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int


class Entry(Protocol):
    """What the rule needs to know about one connection in the table."""

    @property
    def peer(self) -> Peer: ...

    @property
    def evictable(self) -> bool:
        """False while its request is with a handler: that one is never dropped."""
        ...


E = TypeVar("E", bound=Entry)


class Eviction:
    """Open connections per peer uid and pid, kept as they open and close.

    Kept rather than counted on every eviction: a flat-out flood makes the server ask for a
    candidate on nearly every accept.
    """

    def __init__(self) -> None:
        self._by_uid: Counter[int] = Counter()
        self._by_pid: Counter[int] = Counter()

    def opened(self, peer: Peer) -> None:
        self._by_uid[peer.uid] += 1
        self._by_pid[peer.pid] += 1

    def closed(self, peer: Peer) -> None:
        self._by_uid[peer.uid] -= 1
        self._by_pid[peer.pid] -= 1
        if self._by_pid[peer.pid] <= 0:
            del self._by_pid[peer.pid]
        if self._by_uid[peer.uid] <= 0:
            del self._by_uid[peer.uid]

    def held_by_pid(self, pid: int) -> int:
        return self._by_pid[pid]

    def held_by_uid(self, uid: int) -> int:
        return self._by_uid[uid]

    def candidate(self, table: Iterable[E]) -> E | None:
        """The oldest evictable entry of the peer that holds the most connections.

        `table` is in accept order, oldest first, so ties go to the oldest. None when every
        entry is with a handler.
        """
        best: E | None = None
        best_share = (0, 0)
        for entry in table:
            if not entry.evictable:
                continue
            peer = entry.peer
            share = (self._by_uid[peer.uid], self._by_pid[peer.pid])
            if best is None or share > best_share:
                best, best_share = entry, share
        return best
