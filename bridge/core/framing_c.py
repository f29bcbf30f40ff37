# SPDX-License-Identifier: GPL-3.0-or-later
"""Framing C: JPEGs between ``BoundaryS`` and ``BoundaryE`` on TCP 7060. Pure, no I/O.

Older DEPSTECH (WF028) and Jetion scopes need no start packet: a client connects to TCP 7060
and the scope writes, for every frame (little-endian)::

    "BoundaryS"  32-byte header  JPEG (length from the header)  "BoundaryE"

The header holds four unknown bytes, the JPEG length (u32 at 4), three u32 and two u16 of
unknown use, and width and height (u32 at 24 and 28; often wrong, so never trusted). The
scope inverts the JPEG's middle byte (``jpeg[len // 2]``); :class:`StreamC` inverts it back,
so every frame it returns is the scope's real picture.

TCP bytes arrive in arbitrary pieces, so the parser keeps what it has not used yet, bounded
by the largest frame it accepts. Anything that does not fit (bytes before a ``BoundaryS``, a
frame without its ``BoundaryE``, a length over the bound) is counted and skipped up to the next
``BoundaryS``; the same counters as framing A's reassembler say what happened.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from bridge.core.protocol import Reject
from bridge.core.reassembly import MAX_FRAME_BYTES, Frame, ReassemblyStats

PORT = 7060
START = b"BoundaryS"
END = b"BoundaryE"
HEADER_LEN = 32
HEADER = struct.Struct("<4sIIIIHHII")  # unknown, length, 3 unknown, 2 unknown, width, height
assert HEADER.size == HEADER_LEN
_PREFIX = len(START) + HEADER_LEN


def encode_frame(frame_no: int, jpeg: bytes, size: tuple[int, int] = (0, 0)) -> bytes:
    """One frame as the scope writes it, middle byte inverted (for the simulator and tests)."""
    if not jpeg:
        raise ValueError("cannot send an empty frame")
    wire = bytearray(jpeg)
    wire[len(wire) // 2] ^= 0xFF
    header = HEADER.pack(
        b"\0\0\1\0", len(jpeg), frame_no & 0xFFFFFFFF, 0, 0, 0, 0, size[0], size[1]
    )
    return START + header + bytes(wire) + END


class StreamC:
    """Turns the TCP byte stream into frames; same ``feed``/``expire``/``stats`` as A and B."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 4:
            raise ValueError("frames need at least 4 bytes")
        self.max_frame_bytes = max_frame_bytes
        self.stats = ReassemblyStats()
        self._buf = bytearray()
        self._ids = 0
        self._skipping = False  # inside a run of unusable bytes: counted once

    @property
    def in_flight(self) -> int:
        """1 while part of a frame is buffered."""
        return 1 if self._buf else 0

    @property
    def buffer_bytes(self) -> int:
        return len(self._buf)

    @property
    def memory_bound(self) -> int:
        """The buffer never holds more than one frame plus its framing and one read."""
        return self.max_frame_bytes + _PREFIX + len(END) + 65536

    def reset(self) -> None:
        """A new connection: what the old one left unfinished is dropped."""
        if self._buf:
            self.stats.incomplete += 1
        self._buf.clear()
        self._skipping = False

    def expire(self, now: float) -> Sequence[Frame]:
        """TCP does not lose pieces, so nothing waits to expire."""
        return ()

    def feed(
        self, data: bytes | bytearray | memoryview, now: float, length: int | None = None
    ) -> Sequence[Frame]:
        """Take the next bytes of the stream; return the frames they complete. Never raises."""
        stats = self.stats
        stats.packets += 1
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = memoryview(view.tobytes())
        except (TypeError, ValueError, BufferError):
            self._reject(Reject.NOT_BYTES)
            return ()
        if length is not None:
            if type(length) is not int or length < 0:
                self._reject(Reject.NOT_BYTES)
                return ()
            view = view[:length]
        buf = self._buf
        buf += view
        out: list[Frame] = []
        pos = 0
        while True:
            start = buf.find(START, pos)
            if start < 0:
                # Keep a tail that may be the beginning of a marker split across reads.
                keep = len(START) - 1
                if len(buf) - pos > keep:
                    self._skip()
                    pos = len(buf) - keep
                break
            if start > pos:
                self._skip()
            pos = start
            if len(buf) - pos < _PREFIX:
                break
            size = HEADER.unpack_from(buf, pos + len(START))[1]
            if size == 0 or size > self.max_frame_bytes:
                stats.fragments += 1
                self._reject(Reject.ZERO_FRAME_SIZE if size == 0 else Reject.FRAME_TOO_LARGE)
                self._skipping = True  # what follows, up to the next marker, is this frame
                pos += len(START)
                continue
            end = pos + _PREFIX + size
            if len(buf) < end + len(END):
                break
            stats.fragments += 1
            self._skipping = False
            if buf[end : end + len(END)] != END:
                stats.corrupt += 1
                self._skipping = True
                pos += len(START)
                continue
            jpeg = bytearray(buf[pos + _PREFIX : end])
            jpeg[size // 2] ^= 0xFF
            pos = end + len(END)
            if size < 4 or jpeg[:2] != b"\xff\xd8" or jpeg[-2:] != b"\xff\xd9":
                stats.corrupt += 1
                continue
            stats.frames += 1
            out.append(Frame(self._ids & 0xFF, bytes(jpeg), now))
            self._ids += 1
        if pos:
            del buf[:pos]
        return out

    def _skip(self) -> None:
        if not self._skipping:
            self._skipping = True
            self._reject(Reject.BAD_MAGIC)

    def _reject(self, reason: Reject) -> None:
        rejected = self.stats.rejected
        rejected[reason.value] = rejected.get(reason.value, 0) + 1
