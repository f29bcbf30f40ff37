# SPDX-License-Identifier: GPL-3.0-or-later
"""Wire format: the seed document's bytes as golden tables, and decoders that never raise."""

import pathlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core import protocol
from bridge.core.protocol import (
    FLAG_END,
    FLAG_MIDDLE,
    FLAG_START,
    FragmentHeader,
    Reject,
    RetCmd,
    decode_control,
    decode_fragment_header,
    decode_retcmd,
    decode_setcmd,
    encode_fragment,
    encode_retcmd,
    encode_setcmd,
    fragment_jpeg,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# Byte strings exactly as written in the seed document.
SEED_HEARTBEAT = hexbytes("99 99 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
SEED_STOP = hexbytes("99 99 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
SEED_SETCMD_TAIL = hexbytes("00 00 90 00 04 00 00 00 00 00")
SEED_RETCMD_PATTERN = hexbytes("00 00 90 00 04 00")


def test_constants_match_seed() -> None:
    assert protocol.DEVICE_IP == "192.168.10.123"
    assert (protocol.STREAM_PORT, protocol.EVENT_PORT) == (8030, 50000)
    assert protocol.HEARTBEAT == SEED_HEARTBEAT
    assert protocol.STOP == SEED_STOP
    assert len(protocol.HEARTBEAT) == len(protocol.STOP) == 24
    assert protocol.FRAGMENT_HEADER_LEN == 24
    assert protocol.FRAGMENT_HEADER.size == 24
    assert (FLAG_START, FLAG_END, FLAG_MIDDLE) == (1, 2, 3)


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (SEED_HEARTBEAT, "heartbeat"),
        (SEED_STOP, "stop"),
        (bytearray(SEED_HEARTBEAT), "heartbeat"),
        (memoryview(SEED_STOP), "stop"),
        (SEED_HEARTBEAT[:23], Reject.BAD_LENGTH),
        (SEED_HEARTBEAT + b"\0", Reject.BAD_LENGTH),
        (b"\x98" + SEED_HEARTBEAT[1:], Reject.BAD_MAGIC),
        (hexbytes("99 99 03 00") + bytes(20), Reject.UNKNOWN_COMMAND),
        (SEED_HEARTBEAT[:-1] + b"\x01", Reject.UNKNOWN_COMMAND),
        (b"", Reject.BAD_LENGTH),
    ],
)
def test_decode_control(datagram: bytes, expected: object) -> None:
    assert decode_control(datagram) == expected


def test_setcmd_golden() -> None:
    # Bytes 0-5 "SETCMD", 6-7 counter little-endian, 8-17 the fixed tail.
    assert encode_setcmd(0x1234) == b"SETCMD" + hexbytes("34 12") + SEED_SETCMD_TAIL
    assert len(encode_setcmd(0)) == 18
    assert encode_setcmd(0x10000) == encode_setcmd(0)
    assert decode_setcmd(b"SETCMD" + hexbytes("34 12") + SEED_SETCMD_TAIL) == 0x1234


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"SETCMD\x01\x00" + SEED_SETCMD_TAIL[:-1], Reject.BAD_LENGTH),
        (b"SETCMX\x01\x00" + SEED_SETCMD_TAIL, Reject.BAD_MAGIC),
        (b"SETCMD\x01\x00" + SEED_SETCMD_TAIL[:-1] + b"\x01", Reject.BAD_TAIL),
    ],
)
def test_setcmd_rejects(datagram: bytes, reason: Reject) -> None:
    assert decode_setcmd(datagram) is reason


def test_retcmd_golden() -> None:
    # 0-5 "RETCMD", 6-7 echoed counter, 8-13 fixed pattern, 14-17 reserved, 18-19 buttons.
    wire = b"RETCMD" + hexbytes("05 00") + SEED_RETCMD_PATTERN + hexbytes("aa bb cc dd 03 01")
    assert decode_retcmd(wire) == RetCmd(counter=5, buttons=0x0103, reserved=hexbytes("aabbccdd"))
    assert encode_retcmd(5, 0x0103, hexbytes("aabbccdd")) == wire
    assert encode_retcmd(1, 2) == b"RETCMD\x01\x00" + SEED_RETCMD_PATTERN + bytes(4) + b"\x02\x00"


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (encode_retcmd(1, 2)[:19], Reject.BAD_LENGTH),
        (b"RETCMX" + encode_retcmd(1, 2)[6:], Reject.BAD_MAGIC),
        (encode_retcmd(1, 2)[:9] + b"\x01" + encode_retcmd(1, 2)[10:], Reject.BAD_TAIL),
        (encode_setcmd(1), Reject.BAD_LENGTH),
    ],
)
def test_retcmd_rejects(datagram: bytes, reason: Reject) -> None:
    assert decode_retcmd(datagram) is reason


def test_fragment_header_golden() -> None:
    payload = b"\xff\xd8abc"
    wire = (
        hexbytes("66 01 01 2a")  # magic, START, fixed 0x01, frame id 42
        + struct.pack("<I", 123456)  # total frame size at 4
        + bytes(4)
        + hexbytes("00 00")  # index 0 at 12
        + hexbytes("05 00")  # fragment size 5 at 14
        + bytes(8)
        + payload
    )
    assert encode_fragment(FLAG_START, 42, 123456, 0, payload) == wire
    assert decode_fragment_header(wire) == FragmentHeader(FLAG_START, 42, 123456, 0, 5)
    # A recv_into buffer longer than the datagram: `length` says how much is real.
    buf = bytearray(2048)
    buf[: len(wire)] = wire
    assert decode_fragment_header(buf, len(wire)) == FragmentHeader(FLAG_START, 42, 123456, 0, 5)
    assert decode_fragment_header(memoryview(buf), len(wire)).frame_size == 123456  # type: ignore[union-attr]


def _header(magic=0x66, flag=FLAG_MIDDLE, version=1, fid=1, total=100, index=1, size=3) -> bytes:
    return protocol.FRAGMENT_HEADER.pack(magic, flag, version, fid, total, index, size)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", Reject.TOO_SHORT),
        (_header()[:23], Reject.TOO_SHORT),
        (_header(magic=0x65) + b"abc", Reject.BAD_MAGIC),
        (_header(version=2) + b"abc", Reject.BAD_VERSION),
        (_header(flag=0) + b"abc", Reject.BAD_FLAG),
        (_header(flag=4) + b"abc", Reject.BAD_FLAG),
        (_header(flag=FLAG_START, index=1) + b"abc", Reject.BAD_START),
        (_header(flag=FLAG_MIDDLE, index=0) + b"abc", Reject.BAD_START),
        (_header(total=0) + b"abc", Reject.ZERO_FRAME_SIZE),
        (_header() + b"ab", Reject.TRUNCATED),
        (_header() + b"abcd", Reject.TRAILING_BYTES),
        (SEED_HEARTBEAT, Reject.BAD_MAGIC),
    ],
)
def test_fragment_rejects(datagram: bytes, reason: Reject) -> None:
    assert decode_fragment_header(datagram) is reason


def test_reject_values_are_counter_keys() -> None:
    values = [r.value for r in Reject]
    assert len(set(values)) == len(values)
    assert all(v.isidentifier() and v == v.lower() for v in values)


@pytest.mark.parametrize("size", [1, 1400, 4095, 4096, 4097])
def test_fragment_jpeg_roundtrip(size: int) -> None:
    jpeg = bytes(i & 0xFF for i in range(size))
    datagrams = fragment_jpeg(200, jpeg, 1024)
    decoded = [decode_fragment_header(d) for d in datagrams]
    assert all(isinstance(h, FragmentHeader) for h in decoded), decoded
    headers = [h for h in decoded if isinstance(h, FragmentHeader)]
    assert [h.index for h in headers] == list(range(len(datagrams)))
    assert headers[-1].flag == FLAG_END
    if len(datagrams) > 1:
        assert headers[0].flag == FLAG_START
        assert {h.flag for h in headers[1:-1]} <= {FLAG_MIDDLE}
        assert {h.size for h in headers[:-1]} == {1024}
    assert b"".join(d[24:] for d in datagrams) == jpeg
    assert {h.frame_size for h in headers} == {size}


def test_encoders_refuse_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_fragment(4, 0, 10, 0, b"x")
    with pytest.raises(ValueError):
        encode_fragment(FLAG_START, 256, 10, 0, b"x")
    with pytest.raises(ValueError):
        fragment_jpeg(0, b"")
    with pytest.raises(ValueError):
        encode_retcmd(0, 0, b"\0")


# Annotated: inferred, these signatures join to the bare `function`, which mypy cannot check.
DECODERS: list[Callable[[bytes | bytearray | memoryview], object]] = [
    decode_control,
    decode_setcmd,
    decode_retcmd,
    decode_fragment_header,
]


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_reject(data: bytes) -> None:
    for decode in DECODERS:
        result = decode(data)
        if isinstance(result, Reject):
            assert result.value in {r.value for r in Reject}
    # Fed byte by byte, as a fuzzer would (h11's afl invariant).
    for i in range(len(data) + 1):
        for decode in DECODERS:
            decode(data[:i])


@given(st.sampled_from([None, 0, 3.5, "SETCMD", object(), [1, 2, 3]]))
def test_non_bytes_never_raise(value: object) -> None:
    for decode in DECODERS:
        assert isinstance(decode(value), Reject)  # type: ignore[arg-type]


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=4, max_size=4))
def test_command_roundtrip(counter: int, buttons: int, reserved: bytes) -> None:
    assert decode_setcmd(encode_setcmd(counter)) == counter
    assert decode_retcmd(encode_retcmd(counter, buttons, reserved)) == RetCmd(
        counter, buttons, reserved
    )


@given(
    st.sampled_from([FLAG_START, FLAG_MIDDLE, FLAG_END]),
    st.integers(0, 255),
    st.integers(1, 0xFFFFFFFF),
    st.integers(1, 0xFFFF),
    st.binary(max_size=64),
)
def test_fragment_roundtrip(flag: int, fid: int, total: int, index: int, payload: bytes) -> None:
    if flag == FLAG_START:
        index = 0
    header = decode_fragment_header(encode_fragment(flag, fid, total, index, payload))
    assert header == FragmentHeader(flag, fid, total, index, len(payload))


def test_protocol_has_no_socket_import() -> None:
    source = pathlib.Path(protocol.__file__).read_text(encoding="utf-8")
    assert "import socket" not in source
