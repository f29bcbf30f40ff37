# SPDX-License-Identifier: GPL-3.0-or-later
"""The general SETCMD/RETCMD channel: golden bytes from the published dumps; never raises."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core import control
from bridge.core.buttons import ButtonTracker
from bridge.core.control import (
    OP_GET_REMOTE_KEY,
    OP_GET_RESOLUTIONS,
    Command,
    KeyReply,
    decode_command,
    decode_key_reply,
    decode_resolutions,
    encode_key_poll,
    encode_reply,
    encode_request,
)
from bridge.core.models import Buttons
from bridge.core.protocol import HEARTBEAT, Reject, encode_retcmd, encode_setcmd


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# Typed in from the sources named in /work/shared/notes/protocol-family.md section 2.
NIDAGE_START = hexbytes("99 99 01 00") + bytes(20)  # mentalburden: nidage-packet-start.png
NIDAGE_SETCMD_09 = hexbytes("53 45 54 43 4d 44 d4 04 00 00 09 00 00 00")  # ...-setcmd.png
NIDAGE_RETCMD_90 = b"RETCMD" + hexbytes("d5 04 00 00 90 00") + bytes(8)  # ...-retcmd.png
WF070_KEY_POLL = hexbytes("534554434d44 00140000 90000100 00")  # depstech_settings.py
WF070_GET_RES = hexbytes("534554434d44 01000000 09000000")
WF070_SET_RES = hexbytes("534554434d44 00000000 08000500 c003 d002 14")
WF070_RES_REPLY = hexbytes(
    "524554434d4401000000 09000010 00 03 0005 d002 14 c003 d002 14 8002 e001"
)
SPADE_KEY_POLL = b"SETCMD" + hexbytes("ff ff 00 00 90 00 04 00 00 00 00 00")  # spade_mirror.py


def test_the_start_packet_is_the_j103_heartbeat() -> None:
    assert NIDAGE_START == HEARTBEAT


def test_key_polls_golden() -> None:
    assert encode_key_poll(0x1400, 1) == WF070_KEY_POLL
    assert encode_key_poll(0xFFFF, 4) == SPADE_KEY_POLL
    for seq in (0, 1, 0x1234, 0xFFFF):
        assert encode_key_poll(seq, 4) == encode_setcmd(seq)  # the J103's bytes, unchanged
    assert decode_command(WF070_KEY_POLL) == Command(b"SETCMD", 0x1400, 0x90, 1, b"\0")


def test_read_requests_golden_and_writes_refused() -> None:
    assert encode_request(1, OP_GET_RESOLUTIONS) == WF070_GET_RES
    assert decode_command(NIDAGE_SETCMD_09) == Command(b"SETCMD", 0x4D4, 0x09, 0, b"")
    cmd = decode_command(WF070_SET_RES)
    assert isinstance(cmd, Command) and cmd.op == control.OP_SET_RESOLUTION
    for op in (0x01, 0x02, 0x03, 0x04, 0x08, 0x1010, 0x2000):
        with pytest.raises(ValueError, match="never sends"):
            encode_request(1, op, b"x")


def test_reply_forms() -> None:
    assert decode_key_reply(NIDAGE_RETCMD_90) == KeyReply(0x4D5, 0, NIDAGE_RETCMD_90)
    j103 = encode_retcmd(0x1234, 7)
    assert decode_key_reply(j103) == KeyReply(0x1234, 7, j103)
    short = encode_reply(9, OP_GET_REMOTE_KEY, hexbytes("01 00 03"))
    assert decode_key_reply(short) == KeyReply(9, 3, short)
    assert decode_key_reply(encode_reply(9, OP_GET_RESOLUTIONS)) is Reject.UNKNOWN_COMMAND
    assert decode_key_reply(WF070_KEY_POLL) is Reject.BAD_MAGIC
    assert decode_key_reply(j103 + b"\0") is Reject.TRAILING_BYTES
    assert decode_key_reply(b"RETCMD") is Reject.TOO_SHORT


def test_resolution_list_of_the_wf070() -> None:
    cmd = decode_command(WF070_RES_REPLY)
    assert isinstance(cmd, Command) and cmd.op == OP_GET_RESOLUTIONS
    assert decode_resolutions(WF070_RES_REPLY[12:]) == [
        (1280, 720, 20),
        (960, 720, 20),
        (640, 480, None),
    ]
    assert decode_resolutions(b"\x02\x01") is Reject.BAD_LENGTH


def test_keys_tracker_turns_codes_into_events() -> None:
    t = ButtonTracker(first_counter=100, mode=Buttons.KEYS, payload_len=1)

    def reply(value: int, form: str = "short") -> int:
        poll = t.next_poll()
        assert len(poll) == 15
        seq = decode_command(poll).seq  # type: ignore[union-attr]
        if form == "short":
            return t.on_reply(encode_reply(seq, 0x90, hexbytes("01 00") + bytes([value])))
        return t.on_reply(encode_retcmd(seq, value))

    assert reply(1) == 0  # a key seen before we asked is history
    assert reply(0) == 0
    assert reply(1) == 1  # photo: a press
    assert reply(1) == 0  # still shown: the same press
    assert reply(2) == 0 and reply(3, "j103") == 0 and reply(0) == 0 and reply(4) == 0
    assert t.take_keys() == [2, 3, 4] and t.take_keys() == []
    assert t.stats.presses == 1 and t.stats.keys == 4
    # A forged reply to a poll never sent does nothing.
    assert t.on_reply(encode_reply(7, 0x90, hexbytes("01 00 01"))) == 0
    assert t.stats.unmatched == 1


def test_nidage_reply_is_accepted_by_a_keys_tracker() -> None:
    t = ButtonTracker(first_counter=0x4D5, mode=Buttons.KEYS, payload_len=4)
    t.next_poll()
    assert t.on_reply(NIDAGE_RETCMD_90) == 0
    assert t.stats.replies == 1 and t.stats.rejected == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([b"", b"SETCMD", b"RETCMD"]))
def test_decoders_never_raise(data: bytes, prefix: bytes) -> None:
    d = prefix + data
    assert isinstance(decode_command(d), Command | Reject)
    assert isinstance(decode_key_reply(d), KeyReply | Reject)
    assert isinstance(decode_resolutions(d), list | Reject)
    t = ButtonTracker(mode=Buttons.KEYS, payload_len=1)
    t.next_poll()
    assert t.on_reply(d) in (0, 1)


SPADE_BATTERY = hexbytes("99 99 17 10 ff ff 00 00") + bytes(16)  # spade_mirror.py `battery`


def test_0x9999_commands_golden() -> None:
    assert control.decode_9999(SPADE_BATTERY) == (control.OP9999_BATTERY, 0xFFFF, 0)
    assert control.encode_9999(control.OP9999_BATTERY, 0xFFFF) == SPADE_BATTERY
    assert control.decode_9999(SPADE_BATTERY[:23]) is Reject.TOO_SHORT
    assert control.decode_9999(b"SETCMD" + bytes(18)) is Reject.BAD_MAGIC
