# SPDX-License-Identifier: GPL-3.0-or-later
"""The device's behaviour as a state machine, with stepped time and no sockets."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import bridge.sim.device
import bridge.sim.faults
from bridge.core.protocol import HEARTBEAT, STOP, decode_retcmd, encode_setcmd
from bridge.core.reassembly import Frame, Reassembler
from bridge.sim.device import Device, Send, Via
from bridge.sim.faults import FaultRates

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)
FPS = 10.0
PERIOD = 1.0 / FPS


def jpeg(n: int, size: int = 3000) -> bytes:
    body = bytes((n + i) % 251 for i in range(size))
    return b"\xff\xd8" + body + b"\xff\xd9"


FRAMES = [jpeg(n) for n in range(4)]


def make_device(faults: FaultRates | None = None, seed: int = 1, **kw: float) -> Device:
    device = Device(
        fps=FPS,
        heartbeat_timeout=kw.get("heartbeat_timeout", 1.0),
        fragment_size=1000,
        faults=faults or FaultRates(),
        rng=random.Random(seed),
        resolution=(640, 480),
    )
    device.frames = list(FRAMES)
    return device


def stream(sends: list[Send]) -> list[bytes]:
    assert all(s.via is Via.STREAM and s.addr == CLIENT for s in sends), sends
    return [s.data for s in sends]


def frames_of(datagrams: list[bytes]) -> list[tuple[int, bytes]]:
    r = Reassembler()
    out: list[Frame] = []
    for d in datagrams:
        out.extend(r.feed(d, 0.0))
    out.extend(r.expire(3600.0))
    return [(f.frame_id, f.data) for f in out]


def test_the_device_is_pure() -> None:
    """No sockets, no clock, no threads: the server owns those."""
    for module in (bridge.sim.device, bridge.sim.faults):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        names |= {
            (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        }
        assert not names & {"socket", "selectors", "select", "threading", "time", "asyncio"}, module


def test_silent_until_a_heartbeat() -> None:
    device = make_device()
    assert device.tick(0.0) == [] and device.tick(100.0) == []
    assert device.timeout(0.0) is None
    assert device.on_stream(HEARTBEAT, CLIENT, 100.0) == []
    assert device.client == CLIENT
    assert device.timeout(100.0) == 0.0  # the first frame is due at once
    got = frames_of(stream(device.tick(100.0)))
    assert got == [(0, FRAMES[0])]
    assert device.sent_frame(0) == FRAMES[0]
    assert device.stats.frames_sent == 1 and device.stats.clients == 1
    assert device.timeout(100.0) == pytest.approx(PERIOD)


def test_frames_are_paced_and_ids_wrap() -> None:
    device = make_device(heartbeat_timeout=1e9)
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    datagrams = []
    now = 0.0
    for _ in range(600):  # half-period steps: a frame every other step
        datagrams += stream(device.tick(now))
        now += PERIOD / 2
    got = frames_of(datagrams)
    assert len(got) == device.stats.frames_sent == 300
    assert [fid for fid, _ in got] == [k & 0xFF for k in range(300)]
    assert [data for _, data in got] == [FRAMES[k % 4] for k in range(300)]


def test_no_catch_up_burst_after_falling_behind() -> None:
    device = make_device()
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    assert frames_of(stream(device.tick(0.0)))
    device.on_stream(HEARTBEAT, CLIENT, 0.9)
    assert len(frames_of(stream(device.tick(0.9)))) == 1  # nine periods late: one frame
    assert device.tick(0.9) == []
    assert device.timeout(0.9) == pytest.approx(PERIOD)


def test_stream_stops_when_heartbeats_cease() -> None:
    device = make_device(heartbeat_timeout=1.0)
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    device.tick(0.0)
    device.tick(1.0)  # exactly the timeout: still streaming
    assert device.client == CLIENT
    assert device.tick(1.05) == []
    assert device.client is None and device.stats.timeouts == 1
    device.on_stream(HEARTBEAT, CLIENT, 2.0)
    assert device.stats.clients == 2 and frames_of(stream(device.tick(2.0)))


def test_stop_from_the_client_only() -> None:
    device = make_device()
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    assert device.on_stream(STOP, OTHER, 0.0) == []
    assert device.client == CLIENT
    device.on_stream(STOP, CLIENT, 0.0)
    assert device.client is None and device.tick(5.0) == []
    assert device.stats.stops == 2


def test_a_heartbeat_from_elsewhere_redirects_the_stream() -> None:
    device = make_device()
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    device.tick(0.0)
    device.on_stream(HEARTBEAT, OTHER, 0.05)
    sends = device.tick(0.05)
    assert sends and {s.addr for s in sends} == {OTHER}
    assert device.stats.clients == 2


def test_garbage_is_rejected_by_reason() -> None:
    device = make_device()
    assert device.on_stream(b"hello", CLIENT, 0.0) == []
    assert device.on_event(b"hello", CLIENT) == []
    assert device.client is None
    assert device.stats.rejected == 2
    assert sum(device.stats.rejected_by_reason.values()) == 2


def test_polls_report_the_button_counter() -> None:
    device = make_device()
    [reply] = device.on_event(encode_setcmd(7), CLIENT)
    assert reply.via is Via.EVENT and reply.addr == CLIENT
    ret = decode_retcmd(reply.data)
    assert (ret.counter, ret.buttons) == (7, 0)  # type: ignore[union-attr]
    assert device.press(3) == 3
    [reply] = device.on_event(encode_setcmd(8), CLIENT)
    assert decode_retcmd(reply.data).buttons == 3  # type: ignore[union-attr]
    device.press(0xFFFF)
    assert device.buttons == 2  # 16 bits wrap
    assert device.stats.polls == 2 and device.stats.presses == 3 + 0xFFFF


def test_foreign_replies_come_first_with_a_jump() -> None:
    device = make_device(FaultRates(foreign=1.0))
    device.press(1)
    forged, real = device.on_event(encode_setcmd(1), CLIENT)
    assert (forged.via, real.via) == (Via.FOREIGN, Via.EVENT)
    assert decode_retcmd(forged.data).buttons == 6  # type: ignore[union-attr]
    assert decode_retcmd(real.data).buttons == 1  # type: ignore[union-attr]
    assert device.stats.foreign_events == 1


def test_reboot_goes_quiet_then_restarts_from_zero() -> None:
    device = make_device()
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    for k in range(5):
        device.tick(k * PERIOD)
    device.press(4)
    device.reboot(1.0, downtime=0.5)
    assert device.down and device.client is None and device.buttons == 0
    assert device.timeout(1.0) == pytest.approx(0.5)
    assert device.on_stream(HEARTBEAT, CLIENT, 1.2) == []  # powered off: lost
    assert device.on_event(encode_setcmd(1), CLIENT) == []
    assert device.tick(1.2) == [] and device.client is None
    device.tick(1.5)
    assert not device.down and device.timeout(1.5) is None
    device.on_stream(HEARTBEAT, CLIENT, 1.6)
    assert frames_of(stream(device.tick(1.6))) == [(0, FRAMES[0])]
    assert device.stats.reboots == 1


def test_new_frames_show_at_the_next_frame() -> None:
    device = make_device()
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    device.tick(0.0)
    device.frames, device.resolution = [jpeg(99, 5000)], (1280, 720)
    assert frames_of(stream(device.tick(PERIOD))) == [(1, jpeg(99, 5000))]


def run_with_faults(seed: int) -> tuple[Device, list[Send]]:
    faults = FaultRates(loss=0.02, duplicate=0.05, reorder=0.1, corrupt=0.1, foreign=0.05)
    device = make_device(faults, seed=seed, heartbeat_timeout=1e9)
    device.on_stream(HEARTBEAT, CLIENT, 0.0)
    sends = []
    for k in range(200):
        sends += device.tick((k + 0.5) * PERIOD)  # mid-period: no float ties with the schedule
    sends += device.on_stream(STOP, CLIENT, 200 * PERIOD)
    return device, sends


def test_faults_are_accounted_for() -> None:
    device, sends = run_with_faults(7)
    st = device.stats
    assert min(st.lost, st.duplicated, st.reordered, st.corrupted, st.foreign) > 0
    forged = [s for s in sends if s.via is Via.FOREIGN]
    assert len(forged) == st.foreign and {s.addr for s in forged} == {CLIENT}
    datagrams = [s.data for s in sends if s.via is Via.STREAM]
    fragments = 200 * 4  # every frame is 3004 bytes: four 1000-byte fragments
    # STOP flushed what reordering held: every fragment went out (once or twice) or was lost.
    assert len(datagrams) == fragments - st.lost + st.duplicated
    r = Reassembler()
    shown: list[Frame] = []
    for d in datagrams:
        shown.extend(r.feed(d, 0.0))
    shown.extend(r.expire(3600.0))
    assert all(f.data == FRAMES[f.frame_id % 4] for f in shown)  # nothing damaged is shown
    assert r.stats.frames + r.stats.incomplete + r.stats.corrupt == st.frames_sent == 200
    assert r.stats.duplicates == st.duplicated


def test_a_seed_replays_the_same_stream() -> None:
    assert run_with_faults(3)[1] == run_with_faults(3)[1]
    assert run_with_faults(3)[1] != run_with_faults(4)[1]
