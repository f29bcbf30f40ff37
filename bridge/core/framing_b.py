# SPDX-License-Identifier: GPL-3.0-or-later
"""Framing B: the ``99 99 03 00`` stream chunk with a 51-byte header. Pure, no I/O.

The Spade, the DEPSTECH WF070 and the Nidage answer the same start packet as the J103 on the
same kind of port, but each chunk of a JPEG comes behind a 51-byte header (little-endian):

====  ====  ==========================================================================
  0     2   magic ``99 99``
  2     2   type, 3 = stream chunk
  4     4   sequence
  8     4   orientation (accelerometer) word
 12     4   length of what follows the first 24 bytes
 16     4   0 means this device inverts one byte per frame (see below)
 20     4   unknown
 24     1   frame kind
 25     4   frame id
 29     4   JPEG length
 33     2   chunk index, counted from 1
 35     2   0, and the chunk count on the last chunk (a published client reads it so); 1 is
            also taken as "last"
 37     2   payload length
 39     4   frame number: the key of the inverted byte's position
 43   2+2   width, height
 47     4   unknown
====  ====  ==========================================================================

Chunks carry 1390 bytes but the last. Some firmware (the WF070) inverts one byte of every JPEG
at ``(((n ^ L) + (L | 1)) ^ L) mod L`` for frame number ``n`` and JPEG length ``L``; the
reassembler inverts it back before it checks the JPEG, so everything downstream sees the scope's
real picture. The published WF070 client's current version and a Bebird description agree on it
(``L | 1`` is ``L + (~L & 1)``); an older version of that client used ``+ L`` and got every
frame of even length wrong, which running it against the simulator showed.

The geometry is translated into framing A's terms (START/MIDDLE/END, 0-based index, 8-bit id)
and handed to the shared :class:`~bridge.core.reassembly.Reassembler`, so ordering, expiry,
bounds and counters are exactly framing A's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from bridge.core.protocol import FLAG_END, FLAG_MIDDLE, FLAG_START, Reject, _length
from bridge.core.reassembly import Frame, Reassembler, flat_view

HEADER_LEN = 51
MAGIC = 0x9999
TYPE_CHUNK = 3
CHUNK_SIZE = 1390  # what the WF070 and the Nidage send
MAX_CHUNKS = 0xFFFF

# magic, type, seq, orientation, length, invert flag, unknown, kind, frame id, jpeg length,
# chunk index, last, payload length, frame number, width, height, unknown
HEADER = struct.Struct("<HHIIIIIBIIHHHIHHI")
assert HEADER.size == HEADER_LEN
_UNPACK = HEADER.unpack_from
# The hot path reads only what reassembly needs: magic+type as one word, the invert flag, frame
# id, JPEG length, chunk index, last mark, payload length, frame number.
_FAST = struct.Struct("<I12xI5xIIHHHI")
_FAST_UNPACK = _FAST.unpack_from
_MAGIC_TYPE = MAGIC | TYPE_CHUNK << 16


def flip_position(frame_no: int, length: int) -> int:
    """Where the WF070 inverts a byte of a ``length``-byte JPEG with frame number ``frame_no``."""
    if length <= 0:
        return -1
    return (((frame_no ^ length) + (length | 1)) ^ length) % length


def unpack_chunk(
    datagram: bytes | bytearray | memoryview, length: int | None = None
) -> tuple[int, int, int, int, int, int] | Reject:
    """``(flag, frame_id, total, index, size, flip)`` in framing A's terms, or why not."""
    n = _length(datagram, length)
    if n < 0:
        return Reject.NOT_BYTES
    if n < HEADER_LEN:
        return Reject.TOO_SHORT
    try:
        f = _UNPACK(datagram, 0)
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    magic, kind, _seq, _orient, _len, invert, _u1, _fk, fid, total, chunk, last, size = f[:13]
    frame_no = f[13]
    if magic != MAGIC:
        return Reject.BAD_MAGIC
    if kind != TYPE_CHUNK:
        return Reject.UNKNOWN_COMMAND
    if chunk == 0:
        return Reject.BAD_START
    if total == 0:
        return Reject.ZERO_FRAME_SIZE
    payload = n - HEADER_LEN
    if payload < size:
        return Reject.TRUNCATED
    if payload > size:
        return Reject.TRAILING_BYTES
    index = chunk - 1
    if last == 1 or last == chunk:
        flag = FLAG_END
    elif index == 0:
        flag = FLAG_START
    else:
        flag = FLAG_MIDDLE
    flip = flip_position(frame_no, total) if invert == 0 else -1
    return flag, fid & 0xFF, total, index, size, flip


class ReassemblerB(Reassembler):
    """The shared reassembler fed framing-B chunks; same counters, same guarantees.

    ``inverted`` says whether the last valid chunk announced an inverted byte (None: none yet),
    which is how the WF070 is told from the Spade on the same port.
    """

    inverted: bool | None = None

    def feed(
        self, datagram: bytes | bytearray | memoryview, now: float, length: int | None = None
    ) -> Sequence[Frame]:
        """Take one chunk datagram; return the frames it completes, oldest first. Never raises."""
        self.stats.packets += 1
        kind = type(datagram)
        if (kind is bytes or kind is bytearray) and (length is None or type(length) is int):
            # Fast path: the checks of unpack_chunk, inlined; a failure takes the slow path,
            # which names the reason.
            n = len(datagram)
            if length is not None and 0 <= length < n:
                n = length
            try:
                head, invert, fid, total, chunk, last, size, frame_no = _FAST_UNPACK(datagram)
            except struct.error:
                head = -1
            if head == _MAGIC_TYPE and chunk and total and n - HEADER_LEN == size:
                index = chunk - 1
                if last == 1 or last == chunk:
                    flag = FLAG_END
                else:
                    flag = FLAG_START if index == 0 else FLAG_MIDDLE
                fid &= 0xFF
                flip = -1
                if not invert and self._by_id[fid] is None:  # only a frame's first chunk sets it
                    flip = (((frame_no ^ total) + (total | 1)) ^ total) % total
                    self.inverted = True
                elif invert:
                    self.inverted = False
                return self.fragment(flag, fid, total, index, size, datagram, HEADER_LEN, now, flip)
        if kind is not bytes and kind is not bytearray:
            view = flat_view(datagram)
            if view is None:
                self._reject(Reject.NOT_BYTES)
                return ()
            datagram = view
        r = unpack_chunk(datagram, length)
        if type(r) is not tuple:
            self._reject(r)  # type: ignore[arg-type]
            return ()
        flag, fid, total, index, size, flip = r
        self.inverted = flip >= 0
        return self.fragment(flag, fid, total, index, size, datagram, HEADER_LEN, now, flip)


def encode_chunk(
    *,
    frame_id: int,
    total: int,
    chunk: int,
    last: int,
    payload: bytes,
    frame_no: int = 0,
    inverted: bool = False,
    seq: int = 0,
    width: int = 0,
    height: int = 0,
) -> bytes:
    """One chunk datagram as the device sends it (for the simulator and tests)."""
    if not 1 <= chunk <= MAX_CHUNKS:
        raise ValueError(f"chunk index {chunk} out of range 1..{MAX_CHUNKS}")
    if len(payload) > 0xFFFF:
        raise ValueError("chunk payload does not fit in 16 bits")
    header = HEADER.pack(
        MAGIC,
        TYPE_CHUNK,
        seq & 0xFFFFFFFF,
        0,
        HEADER_LEN - 24 + len(payload),
        0 if inverted else 1,
        0,
        1,
        frame_id & 0xFFFFFFFF,
        total,
        chunk,
        last,
        len(payload),
        frame_no & 0xFFFFFFFF,
        width,
        height,
        frame_no & 0xFFFFFFFF,
    )
    return header + payload


def chunk_jpeg(
    frame_no: int,
    jpeg: bytes,
    *,
    inverted: bool = False,
    chunk_size: int = CHUNK_SIZE,
    size: tuple[int, int] = (0, 0),
) -> list[bytes]:
    """Cut a frame into chunk datagrams; with ``inverted`` the wire JPEG has its byte flipped."""
    if not jpeg:
        raise ValueError("cannot chunk an empty frame")
    if not 0 < chunk_size <= 0xFFFF:
        raise ValueError(f"chunk size {chunk_size} out of range")
    total = len(jpeg)
    wire = bytearray(jpeg)
    if inverted:
        wire[flip_position(frame_no, total)] ^= 0xFF
    count = -(-total // chunk_size)
    if count > MAX_CHUNKS:
        raise ValueError(f"a {total}-byte frame needs more than {MAX_CHUNKS} chunks")
    view = memoryview(wire)
    return [
        encode_chunk(
            frame_id=frame_no,
            total=total,
            chunk=i + 1,
            last=count if i == count - 1 else 0,
            payload=bytes(view[i * chunk_size : (i + 1) * chunk_size]),
            frame_no=frame_no,
            inverted=inverted,
            seq=frame_no * 1000 + i,
            width=size[0],
            height=size[1],
        )
        for i in range(count)
    ]
