# SPDX-License-Identifier: GPL-3.0-or-later
"""The control channel (UDP 50000) in its general form: SETCMD requests, RETCMD replies.

The J103's button poll is one instance of a command format the Molink SDK uses for every
device of the family: ``SETCMD``, a u32 sequence number, a u16 opcode, a u16 payload length and
the payload, all little-endian. The reply starts ``RETCMD``, the echoed sequence number and the
opcode; what follows differs between firmware: the J103 answers a button poll with 20 bytes
whose length field says 4 (``04 00``), the Nidage with 20 bytes whose length field says 0, and
GET replies carry a length and a payload. So the decoder here checks only what every form shares
and keeps the rest verbatim; :func:`bridge.core.protocol.decode_retcmd` stays the J103's strict
form.

Only reads are ever encoded as requests (:data:`READ_OPCODES`): the same channel can rename the
scope's WiFi network, change or clear its password, reboot it or, in the 0x9999 form, flash its
firmware, and this program has no business doing any of that.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bridge.core.protocol import Reject, _length

SETCMD = b"SETCMD"
RETCMD = b"RETCMD"

OP_SET_SSID = 0x01
OP_SET_PASSWORD = 0x02
OP_CLEAR_PASSWORD = 0x03
OP_REBOOT = 0x04
OP_SET_RESOLUTION = 0x08
OP_GET_RESOLUTIONS = 0x09
OP_GET_REMOTE_KEY = 0x90

# What a request may ask: the button poll and the resolution list. Nothing that changes the scope.
READ_OPCODES = frozenset({OP_GET_REMOTE_KEY, OP_GET_RESOLUTIONS})

# SDK 2.x key codes of GetRemoteKey (REMOTE_VALUE_* in the SDK); 0 means no key.
KEY_NONE = 0
KEY_PHOTO = 1
KEY_VIDEO = 2
KEY_ZOOM_IN = 3
KEY_ZOOM_OUT = 4
KEY_NAMES = {
    KEY_PHOTO: "photo",
    KEY_VIDEO: "video",
    KEY_ZOOM_IN: "zoom in",
    KEY_ZOOM_OUT: "zoom out",
}

# The other command format on the same port: 24 bytes, magic 0x9999, op u16, seq u32, param u32,
# length u32, 8 zero bytes; the reply echoes magic and op and answers in `param`.
CMD9999 = struct.Struct("<HHIII8x")
MAGIC_9999 = 0x9999
OP9999_VERSION = 0x1002
OP9999_GET_PWM = 0x1015
OP9999_BATTERY = 0x1017
READ_OPS_9999 = frozenset({OP9999_VERSION, OP9999_GET_PWM, OP9999_BATTERY})

HEAD_LEN = 12  # magic, seq, opcode: what every request and reply has
_HEAD = struct.Struct("<6sIH")
_U16 = struct.Struct("<H")
_RES = struct.Struct("<HHB")
REPLY_LEN = 20  # the J103's and the Nidage's button reply


@dataclass(frozen=True, slots=True)
class Command:
    """One SETCMD or RETCMD; ``length`` is the length field (None if the datagram has none)."""

    magic: bytes
    seq: int
    op: int
    length: int | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class KeyReply:
    """A GetRemoteKey reply: the echoed sequence and the value (a counter or a key code)."""

    seq: int
    value: int
    raw: bytes


def encode_request(seq: int, op: int, payload: bytes = b"") -> bytes:
    """A SETCMD for a read; any opcode that could change the scope raises ValueError."""
    if op not in READ_OPCODES:
        raise ValueError(f"opcode {op:#x} is not a read: borescope-bridge never sends it")
    if not 0 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"sequence {seq} does not fit in 32 bits")
    if len(payload) > 0xFFFF:
        raise ValueError("payload too long for a 16-bit length")
    return _HEAD.pack(SETCMD, seq, op) + _U16.pack(len(payload)) + payload


def encode_key_poll(seq: int, payload_len: int) -> bytes:
    """GetRemoteKey with a zero payload of 4 bytes (J103, Spade, iTiMO) or 1 (Jetion, WF070).

    With 4 bytes and a 16-bit ``seq`` it is byte for byte the J103's SETCMD.
    """
    if payload_len not in (1, 4):
        raise ValueError(f"GetRemoteKey payload is 1 or 4 bytes, not {payload_len}")
    return encode_request(seq & 0xFFFF, OP_GET_REMOTE_KEY, bytes(payload_len))


def encode_reply(seq: int, op: int, body: bytes = b"") -> bytes:
    """A RETCMD: echoed sequence and opcode, then ``body`` as the firmware sends it."""
    return _HEAD.pack(RETCMD, seq & 0xFFFFFFFF, op & 0xFFFF) + body


def decode_command(datagram: bytes | bytearray | memoryview) -> Command | Reject:
    """Either form; never raises. A length field longer than what follows is ``truncated``."""
    n = _length(datagram, None)
    if n < 0:
        return Reject.NOT_BYTES
    if n < HEAD_LEN:
        return Reject.TOO_SHORT
    try:
        data = bytes(datagram)
        magic, seq, op = _HEAD.unpack_from(data)
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    if magic not in (SETCMD, RETCMD):
        return Reject.BAD_MAGIC
    if n < HEAD_LEN + 2:
        return Command(magic, seq, op, None, data[HEAD_LEN:])
    (length,) = _U16.unpack_from(data, HEAD_LEN)
    payload = data[HEAD_LEN + 2 :]
    if magic == SETCMD and length != len(payload):
        return Reject.TRUNCATED if length > len(payload) else Reject.TRAILING_BYTES
    return Command(magic, seq, op, length, payload)


def decode_key_reply(datagram: bytes | bytearray | memoryview) -> KeyReply | Reject:
    """A RETCMD to GetRemoteKey in any known form; never raises.

    Where the value sits is known only for the J103 (a counter in bytes 18-19) and the Nidage
    (20 bytes, all zero while no key is pressed); SDK 2.x key codes are read from the same place.
    A shorter reply carries it in its last byte.
    """
    cmd = decode_command(datagram)
    if isinstance(cmd, Reject):
        return cmd
    if cmd.magic != RETCMD:
        return Reject.BAD_MAGIC
    if cmd.op != OP_GET_REMOTE_KEY:
        return Reject.UNKNOWN_COMMAND
    raw = bytes(datagram)
    if len(raw) >= REPLY_LEN:
        if len(raw) > REPLY_LEN:
            return Reject.TRAILING_BYTES
        (value,) = _U16.unpack_from(raw, REPLY_LEN - 2)
    elif cmd.payload:
        value = cmd.payload[-1]
    else:
        value = 0
    return KeyReply(cmd.seq, int(value), raw)


def decode_resolutions(payload: bytes) -> list[tuple[int, int, int | None]] | Reject:
    """The list of a get-resolutions reply: a count, then (width u16, height u16, fps u8) each.

    The one published reply (DEPSTECH WF070) has one byte before the count and its last entry
    lacks the frame rate (the capture was written down by hand), so the count is looked for in
    the first bytes and a last entry of four bytes is kept with ``fps`` None.
    """
    for start in range(4):
        if start >= len(payload):
            break
        count = payload[start]
        rest = len(payload) - start - 1
        if count and rest in (count * _RES.size, count * _RES.size - 1):
            out: list[tuple[int, int, int | None]] = []
            pos = start + 1
            for _ in range(count):
                if pos + _RES.size <= len(payload):
                    w, h, fps = _RES.unpack_from(payload, pos)
                    out.append((w, h, fps))
                else:
                    w, h = struct.unpack_from("<HH", payload, pos)
                    out.append((w, h, None))
                pos += _RES.size
            return out
    return Reject.BAD_LENGTH


def encode_9999(op: int, seq: int, param: int = 0) -> bytes:
    """A 0x9999 command or reply (the simulator answers the reads; the daemon sends none)."""
    return CMD9999.pack(MAGIC_9999, op & 0xFFFF, seq & 0xFFFFFFFF, param & 0xFFFFFFFF, 0)


def decode_9999(datagram: bytes | bytearray | memoryview) -> tuple[int, int, int] | Reject:
    """``(op, seq, param)`` of a 24-byte 0x9999 command or reply; never raises."""
    n = _length(datagram, None)
    if n < 0:
        return Reject.NOT_BYTES
    if n < CMD9999.size:
        return Reject.TOO_SHORT
    try:
        magic, op, seq, param, _length_field = CMD9999.unpack_from(bytes(datagram))
    except (TypeError, ValueError, struct.error):
        return Reject.NOT_BYTES
    if magic != MAGIC_9999:
        return Reject.BAD_MAGIC
    return op, seq, param
