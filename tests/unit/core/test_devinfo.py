# SPDX-License-Identifier: GPL-3.0-or-later
"""The scope's resolution list: the WF070's published reply, the simulator's, and any bytes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core import models
from bridge.core.control import (
    OP_GET_REMOTE_KEY,
    OP_GET_RESOLUTIONS,
    READ_OPCODES,
    Command,
    decode_command,
    encode_reply,
)
from bridge.core.devinfo import TRIES, InfoQuery, Resolution, parse_resolutions


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# jagheterfredrik/depstech-wf070-stream depstech_settings.py (see tests/unit/core/test_control.py)
WF070_RES_REPLY = hexbytes(
    "524554434d4401000000 09000010 00 03 0005 d002 14 c003 d002 14 8002 e001"
)
# What `simulate --model wf070` answers at 640x480 (bridge/sim/device.py).
SIM_BODY = hexbytes("00 10 00 01 8002 e001 14")


def test_the_wf070_reply() -> None:
    assert parse_resolutions(WF070_RES_REPLY) == (
        Resolution(1280, 720, 20),
        Resolution(960, 720, 20),
        Resolution(640, 480, None),
    )


def test_the_simulator_reply() -> None:
    reply = encode_reply(7, OP_GET_RESOLUTIONS, SIM_BODY)
    assert parse_resolutions(reply) == (Resolution(640, 480, 20),)


def test_other_replies_are_not_a_list() -> None:
    assert parse_resolutions(b"") is None
    assert parse_resolutions(encode_reply(1, OP_GET_REMOTE_KEY, bytes(8))) is None
    assert parse_resolutions(b"SETCMD" + WF070_RES_REPLY[6:]) is None
    assert parse_resolutions(encode_reply(1, OP_GET_RESOLUTIONS, b"\x00\x01")) is None
    zero = encode_reply(1, OP_GET_RESOLUTIONS, hexbytes("00 10 00 01 0000 e001 14"))
    assert parse_resolutions(zero) is None


def test_query_asks_a_few_times_then_stops_and_keeps_the_answer() -> None:
    q = InfoQuery(ask_resolutions=True)
    first = q.due(0.0)
    assert first is not None
    cmd = decode_command(first)
    assert isinstance(cmd, Command) and cmd.op == OP_GET_RESOLUTIONS and cmd.op in READ_OPCODES
    assert q.due(0.5) is None  # not before the retry interval
    sent = [first] + [r for t in range(1, 10) if (r := q.due(float(t))) is not None]
    assert len(sent) == TRIES and q.queries_sent == TRIES
    last = decode_command(sent[-1])
    assert isinstance(last, Command)
    assert q.on_reply(encode_reply(last.seq, OP_GET_RESOLUTIONS, SIM_BODY))
    assert q.as_dicts() == [{"width": 640, "height": 480, "fps": 20}]
    assert q.due(100.0) is None
    q.reset()  # the scope was gone: ask again
    assert q.as_dicts() is None and q.due(101.0) is not None


def test_query_counts_strangers_and_leaves_button_replies_alone() -> None:
    q = InfoQuery(ask_resolutions=True)
    q.due(0.0)
    assert not q.on_reply(encode_reply(5, OP_GET_REMOTE_KEY, bytes(8)))
    assert q.on_reply(encode_reply(12345, OP_GET_RESOLUTIONS, SIM_BODY))  # not our sequence
    assert q.on_reply(WF070_RES_REPLY[:20])  # ours in opcode, unreadable
    assert q.rejected == 2 and q.resolutions is None


def test_a_model_without_the_read_is_never_asked() -> None:
    q = InfoQuery(ask_resolutions=False)
    assert all(q.due(float(t)) is None for t in range(10))
    j103 = models.find("j103")
    assert j103 is not None and not j103.resolutions
    assert {m.name for m in models.MODELS if m.resolutions} == {"airlook", "wf070", "nidage"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_give_a_list_or_none(data: bytes) -> None:
    got = parse_resolutions(data)
    assert got is None or all(isinstance(r, Resolution) and r.width and r.height for r in got)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.binary(max_size=40))
def test_any_reply_body_never_raises(seq: int, body: bytes) -> None:
    q = InfoQuery(ask_resolutions=True)
    q.due(0.0)
    assert q.on_reply(encode_reply(seq, OP_GET_RESOLUTIONS, body)) is True
    assert q.resolutions is None or isinstance(q.resolutions, tuple)
