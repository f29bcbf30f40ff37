# SPDX-License-Identifier: GPL-3.0-or-later
"""Which framing a stream uses, told by its own datagrams. Pure, no I/O.

Framings A and B answer the same start packet on the same kind of port, so `auto` cannot know
in advance which one a scope speaks. Each datagram says it by its first bytes (``66`` or
``99 99 03 00``); the :class:`Detector` gives every (source, framing) pair its own reassembler
and the first pair that completes a well-formed JPEG wins. A frame, not a header, decides: a
stray datagram that merely starts with ``66`` cannot pass for a scope.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from bridge.core.framing_b import ReassemblerB
from bridge.core.models import Framing
from bridge.core.reassembly import Frame, Reassembler

MAX_CANDIDATES = 16  # (source, framing) pairs assembled at once; sources are the probe's targets
_B_START = b"\x99\x99\x03\x00"


def framing_of(datagram: bytes | bytearray | memoryview, length: int) -> Framing | None:
    """A or B by the first bytes, None for anything else (never raises)."""
    try:
        head = bytes(memoryview(datagram)[: min(4, length)])
    except (TypeError, ValueError):
        return None
    if head[:1] == b"\x66":
        return Framing.A
    if head == _B_START:
        return Framing.B
    return None


@dataclass(frozen=True)
class Detection:
    """The winner: its framing and source, the reassembler to keep using, its first frames."""

    framing: Framing
    source: Hashable
    reassembler: Reassembler
    frames: Sequence[Frame]


class Detector:
    """Feeds each candidate stream its own reassembler until one completes a frame."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.ignored = 0  # datagrams that look like neither framing
        self._candidates: dict[tuple[Hashable, Framing], Reassembler] = {}

    def feed(
        self,
        source: Hashable,
        datagram: bytes | bytearray | memoryview,
        now: float,
        length: int,
    ) -> Detection | None:
        """Take one datagram from ``source``; the detection once a frame completes."""
        kind = framing_of(datagram, length)
        if kind is None:
            self.ignored += 1
            return None
        key = (source, kind)
        r = self._candidates.get(key)
        if r is None:
            if len(self._candidates) >= MAX_CANDIDATES:
                self.ignored += 1
                return None
            cls = ReassemblerB if kind == Framing.B else Reassembler
            r = self._candidates[key] = cls(max_frame_bytes=self.max_frame_bytes)
        frames = r.feed(datagram, now, length)
        if frames:
            return Detection(kind, source, r, frames)
        return None

    def expire(self, now: float) -> None:
        """Let every candidate drop its stale frames (the probe's housekeeping tick)."""
        for r in self._candidates.values():
            r.expire(now)
