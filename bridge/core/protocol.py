# SPDX-License-Identifier: GPL-3.0-or-later
"""The borescope's UDP wire format: bytes in, values out, no sockets.

The J103/J106/J108-OTG borescope is a USB Ethernet gadget (RTL8152) at 192.168.10.123 with two UDP
ports. On the stream port the client sends a 24-byte heartbeat every ~0.5 s and the device answers
from the same port with JPEG frames cut into fragments, each behind a 24-byte header. On the event
port the client polls with ``SETCMD`` and the device answers ``RETCMD`` carrying a counter that
the snapshot button increments.

Every decoder accepts any byte string and never raises: a packet that does not fit is returned as
a :class:`Reject` whose ``.value`` is a short key callers count, so a misbehaving device shows up
in the status counters instead of as a traceback. Encoders are for the simulator and the client's
own requests; they raise ``ValueError`` on out-of-range arguments because that is a programming
error, not input.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Literal

DEVICE_IP = "192.168.10.123"
STREAM_PORT = 8030
EVENT_PORT = 50000

CONTROL_LEN = 24
HEARTBEAT = bytes.fromhex("99990100") + bytes(20)
STOP = bytes.fromhex("99990200") + bytes(20)
_CONTROL_MAGIC = b"\x99\x99"

FRAGMENT_HEADER_LEN = 24
FRAGMENT_MAGIC = 0x66
# Byte 2 is the Molink SDK's video-format code (1 MJPEG, 2/3 H.264 I/P, 4 YUYV). Only MJPEG is
# decoded here; the others are refused by name rather than passed on as garbage JPEG.
FORMAT_MJPEG = 0x01
FRAGMENT_VERSION = FORMAT_MJPEG  # the name this byte had before it was understood
FLAG_START, FLAG_END, FLAG_MIDDLE = 1, 2, 3
MAX_FRAGMENT_INDEX = 0xFFFF
MAX_FRAGMENT_PAYLOAD = 0xFFFF
MAX_FRAME_ID = 0xFF

# magic, flag, format, frame id, u32 total size, 4 bytes width/height (or zeros: not read),
# u16 index, u16 size, 8 reserved (accelerometer word and 4 unknown bytes)
FRAGMENT_HEADER = struct.Struct("<BBBBI4xHH8x")

SETCMD_LEN = 18
SETCMD_MAGIC = b"SETCMD"
SETCMD_TAIL = bytes.fromhex("00009000040000000000")
_SETCMD = struct.Struct("<6sH10s")

RETCMD_LEN = 20
RETCMD_MAGIC = b"RETCMD"
RETCMD_PATTERN = bytes.fromhex("000090000400")
_RETCMD = struct.Struct("<6sH6s4sH")


class Reject(enum.StrEnum):
    """Why a datagram was not accepted; ``.value`` is the counter key (a str and an Enum)."""

    TOO_SHORT = "too_short"
    BAD_LENGTH = "bad_length"
    BAD_MAGIC = "bad_magic"
    UNSUPPORTED_FORMAT = "unsupported_video_format"
    BAD_VERSION = "unsupported_video_format"  # the old name of the same reason
    BAD_FLAG = "bad_flag"
    BAD_START = "bad_start"
    ZERO_FRAME_SIZE = "zero_frame_size"
    TRUNCATED = "truncated"
    TRAILING_BYTES = "trailing_bytes"
    BAD_TAIL = "bad_tail"
    UNKNOWN_COMMAND = "unknown_command"
    NOT_BYTES = "not_bytes"
    # Decided by the reassembler rather than the header alone.
    FRAME_TOO_LARGE = "frame_too_large"
    LATE = "late"
    WINDOW_FULL = "window_full"


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    """One decoded fragment header; ``size`` payload bytes follow it in the datagram."""

    flag: int
    frame_id: int
    frame_size: int
    index: int
    size: int


@dataclass(frozen=True, slots=True)
class RetCmd:
    """The device's answer to a poll: the echoed poll counter and the button counter."""

    counter: int
    buttons: int
    reserved: bytes


def _length(datagram: object, length: int | None) -> int:
    """Usable length of a buffer, honouring a ``recv_into`` byte count; -1 if not a buffer."""
    if isinstance(datagram, memoryview):
        n = datagram.nbytes
    else:
        try:
            n = len(datagram)  # type: ignore[arg-type]
        except TypeError:
            return -1
    if length is not None:
        if not isinstance(length, int) or length < 0:
            return -1
        n = min(n, length)
    return n


def unpack_fragment(
    datagram: bytes | bytearray | memoryview, length: int | None = None
) -> tuple[int, int, int, int, int] | Reject:
    """Validate a fragment header and return ``(flag, frame_id, frame_size, index, size)``.

    The tuple form is what the reassembler's hot path uses (no object per fragment beyond the
    tuple ``struct`` builds anyway). A START fragment must be index 0 and index 0 must be START,
    or END for a frame that fits one fragment; the payload must be exactly ``size`` bytes.
    """
    n = _length(datagram, length)
    if n < 0:
        return Reject.NOT_BYTES
    if n < FRAGMENT_HEADER_LEN:
        return Reject.TOO_SHORT
    try:
        magic, flag, version, frame_id, total, index, size = FRAGMENT_HEADER.unpack_from(
            datagram,
            0,
        )
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    if magic != FRAGMENT_MAGIC:
        return Reject.BAD_MAGIC
    if version != FRAGMENT_VERSION:
        return Reject.UNSUPPORTED_FORMAT
    if flag == FLAG_START:
        if index != 0:
            return Reject.BAD_START
    elif flag == FLAG_MIDDLE:
        if index == 0:
            return Reject.BAD_START
    elif flag != FLAG_END:
        return Reject.BAD_FLAG
    if total == 0:
        return Reject.ZERO_FRAME_SIZE
    payload = n - FRAGMENT_HEADER_LEN
    if payload < size:
        return Reject.TRUNCATED
    if payload > size:
        return Reject.TRAILING_BYTES
    return flag, frame_id, total, index, size


def decode_fragment_header(
    datagram: bytes | bytearray | memoryview, length: int | None = None
) -> FragmentHeader | Reject:
    """Decode a stream datagram's header, or say why it is not a valid fragment."""
    r = unpack_fragment(datagram, length)
    if isinstance(r, Reject):
        return r
    return FragmentHeader(*r)


def encode_fragment(flag: int, frame_id: int, frame_size: int, index: int, payload: bytes) -> bytes:
    """One stream datagram: header plus payload, reserved bytes zero."""
    if flag not in (FLAG_START, FLAG_END, FLAG_MIDDLE):
        raise ValueError(f"fragment flag must be 1, 2 or 3, not {flag}")
    if not 0 <= frame_id <= MAX_FRAME_ID:
        raise ValueError(f"frame id {frame_id} does not fit in 8 bits")
    if not 0 <= index <= MAX_FRAGMENT_INDEX:
        raise ValueError(f"fragment index {index} does not fit in 16 bits")
    if len(payload) > MAX_FRAGMENT_PAYLOAD:
        raise ValueError(f"fragment payload of {len(payload)} bytes does not fit in 16 bits")
    if not 0 < frame_size <= 0xFFFFFFFF:
        raise ValueError(f"frame size {frame_size} out of range")
    header = FRAGMENT_HEADER.pack(
        FRAGMENT_MAGIC, flag, FRAGMENT_VERSION, frame_id, frame_size, index, len(payload)
    )
    return header + payload


def fragment_jpeg(frame_id: int, jpeg: bytes, fragment_size: int = 1400) -> list[bytes]:
    """Cut a whole frame into datagrams as the device does.

    Every fragment but the last carries exactly ``fragment_size`` bytes; the reassembler relies on
    that to place fragments that arrive before their predecessors. A frame that fits in one
    fragment is sent as a single END fragment with index 0.
    """
    if not jpeg:
        raise ValueError("cannot fragment an empty frame")
    if not 0 < fragment_size <= MAX_FRAGMENT_PAYLOAD:
        raise ValueError(f"fragment size {fragment_size} out of range 1..{MAX_FRAGMENT_PAYLOAD}")
    total = len(jpeg)
    count = -(-total // fragment_size)
    if count - 1 > MAX_FRAGMENT_INDEX:
        raise ValueError(f"a {total}-byte frame needs more than 65536 fragments")
    view = memoryview(jpeg)
    out = []
    for index in range(count):
        if index == count - 1:
            flag = FLAG_END
        elif index == 0:
            flag = FLAG_START
        else:
            flag = FLAG_MIDDLE
        chunk = bytes(view[index * fragment_size : (index + 1) * fragment_size])
        out.append(encode_fragment(flag, frame_id, total, index, chunk))
    return out


def encode_setcmd(counter: int) -> bytes:
    """The 18-byte button poll; the counter is taken modulo 2**16 like the device's."""
    return _SETCMD.pack(SETCMD_MAGIC, counter & 0xFFFF, SETCMD_TAIL)


def decode_setcmd(datagram: bytes | bytearray | memoryview) -> int | Reject:
    """The poll counter of a SETCMD (what the device receives on the event port)."""
    n = _length(datagram, None)
    if n < 0:
        return Reject.NOT_BYTES
    if n != SETCMD_LEN:
        return Reject.BAD_LENGTH
    try:
        magic, counter, tail = _SETCMD.unpack_from(datagram)
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    if magic != SETCMD_MAGIC:
        return Reject.BAD_MAGIC
    if tail != SETCMD_TAIL:
        return Reject.BAD_TAIL
    return int(counter)


def encode_retcmd(counter: int, buttons: int, reserved: bytes = b"\0\0\0\0") -> bytes:
    """The 20-byte reply: echoed poll counter, fixed pattern, reserved, button counter."""
    if len(reserved) != 4:
        raise ValueError("RETCMD reserved field is exactly 4 bytes")
    return _RETCMD.pack(RETCMD_MAGIC, counter & 0xFFFF, RETCMD_PATTERN, reserved, buttons & 0xFFFF)


def decode_retcmd(datagram: bytes | bytearray | memoryview) -> RetCmd | Reject:
    """A device reply; the reserved bytes are kept verbatim because their meaning is unknown."""
    n = _length(datagram, None)
    if n < 0:
        return Reject.NOT_BYTES
    if n != RETCMD_LEN:
        return Reject.BAD_LENGTH
    try:
        magic, counter, pattern, reserved, buttons = _RETCMD.unpack_from(datagram)
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    if magic != RETCMD_MAGIC:
        return Reject.BAD_MAGIC
    if pattern != RETCMD_PATTERN:
        return Reject.BAD_TAIL
    return RetCmd(int(counter), int(buttons), bytes(reserved))


def decode_control(
    datagram: bytes | bytearray | memoryview,
) -> Literal["heartbeat", "stop"] | Reject:
    """What the device receives on the stream port: only the two exact 24-byte commands."""
    n = _length(datagram, None)
    if n < 0:
        return Reject.NOT_BYTES
    if n != CONTROL_LEN:
        return Reject.BAD_LENGTH
    try:
        data = bytes(datagram)
    except (TypeError, ValueError):
        return Reject.NOT_BYTES
    if data[:2] != _CONTROL_MAGIC:
        return Reject.BAD_MAGIC
    if data == HEARTBEAT:
        return "heartbeat"
    if data == STOP:
        return "stop"
    return Reject.UNKNOWN_COMMAND
