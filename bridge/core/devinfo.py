# SPDX-License-Identifier: GPL-3.0-or-later
"""What the daemon reads from a scope besides pictures and buttons: its resolution list.

Only what the sources agree on is asked (``Model.resolutions`` in bridge.core.models), only
with the read encoder of bridge.core.control (which refuses every opcode that could change the
scope), once per contact and a few times more while no answer comes. Replies are matched by
opcode and sequence number; anything else is counted and left to the button tracker, and no
input raises.

The battery read (0x9999 op 0x1017) is not asked: the published readings disagree on what its
word means (an iTiMO word 0x05000F10 read as 65 %, a Spade client that prints the simulator's
100 as 1 %), so no model has a percentage this program could report truthfully.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.core.control import (
    HEAD_LEN,
    OP_GET_RESOLUTIONS,
    RETCMD,
    decode_command,
    decode_resolutions,
    encode_request,
)
from bridge.core.protocol import Reject

TRIES = 3  # UDP may lose a query or its answer; a scope that never answers is asked no more
RETRY_S = 1.0
SEQ_BASE = 0x0900_0000  # far from the button poll's 16-bit sequence numbers


@dataclass(frozen=True, slots=True)
class Resolution:
    """One entry of the list; ``fps`` is None where the reply leaves it out."""

    width: int
    height: int
    fps: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {"width": self.width, "height": self.height, "fps": self.fps}


def parse_resolutions(datagram: bytes | bytearray | memoryview) -> tuple[Resolution, ...] | None:
    """The list in a RETCMD to get-resolutions, or None for anything else; never raises."""
    cmd = decode_command(datagram)
    if isinstance(cmd, Reject) or cmd.magic != RETCMD or cmd.op != OP_GET_RESOLUTIONS:
        return None
    entries = decode_resolutions(bytes(datagram)[HEAD_LEN:])
    if isinstance(entries, Reject):
        return None
    if any(w == 0 or h == 0 for w, h, _fps in entries):
        return None
    return tuple(Resolution(w, h, fps) for w, h, fps in entries)


@dataclass(slots=True)
class InfoQuery:
    """The reads for one scope: when to ask, what came back; reset on each new contact."""

    ask_resolutions: bool
    resolutions: tuple[Resolution, ...] | None = None
    queries_sent: int = 0
    replies: int = 0
    rejected: int = 0  # get-resolutions replies that could not be read or were not ours
    _tries: int = 0
    _next_at: float = 0.0
    _seqs: set[int] = field(default_factory=set)

    def reset(self) -> None:
        """Forget the answers: the scope went away and whatever comes back is asked anew."""
        self.resolutions = None
        self._tries = 0
        self._next_at = 0.0
        self._seqs.clear()

    def due(self, now: float) -> bytes | None:
        """The request to send now, if one is due."""
        if not self.ask_resolutions or self.resolutions is not None:
            return None
        if self._tries >= TRIES or now < self._next_at:
            return None
        seq = SEQ_BASE + self.queries_sent % 0x10000
        self._tries += 1
        self._next_at = now + RETRY_S
        self.queries_sent += 1
        self._seqs.add(seq)
        return encode_request(seq, OP_GET_RESOLUTIONS)

    def on_reply(self, datagram: bytes | bytearray | memoryview) -> bool:
        """True if this was a get-resolutions reply (kept or counted), False for others."""
        cmd = decode_command(datagram)
        if isinstance(cmd, Reject) or cmd.magic != RETCMD or cmd.op != OP_GET_RESOLUTIONS:
            return False
        parsed = parse_resolutions(datagram)
        if cmd.seq not in self._seqs or parsed is None:
            self.rejected += 1
            return True
        self._seqs.clear()
        self.replies += 1
        self.resolutions = parsed
        return True

    def as_dicts(self) -> list[dict[str, int | None]] | None:
        """The list as `status --json` prints it; None while not known."""
        return None if self.resolutions is None else [r.as_dict() for r in self.resolutions]
