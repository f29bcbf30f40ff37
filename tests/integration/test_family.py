# SPDX-License-Identifier: GPL-3.0-or-later
"""Every model of the family through the real daemon, over real loopback sockets.

For each row of bridge.core.models: the simulator plays that model (framing, inversion, reply
form, key codes), `run --model NAME` is pointed at its loopback ports, and the recording must
hold the simulator's JPEGs byte for byte (inversion undone) and in order; the photo key writes
a snapshot of a real frame; `status` names the model and the framing; on SDK 2.x models the
video and zoom keys reach the log. The namespace tests (test_family_netns.py) do the same at
the real addresses with nothing but `run`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from support.daemon import Daemon, split_recording
from support.waiting import wait_for

from bridge.core import models
from bridge.core.models import Buttons
from bridge.sim.server import Simulator

SIZE = (320, 240)  # small: the frames' bytes matter here, not their size


def _consecutive(indices: list[int], n: int) -> bool:
    return all((b - a) % n == 1 for a, b in itertools.pairwise(indices))


@pytest.mark.parametrize("name", models.NAMES)
def test_each_model_end_to_end(
    name: str,
    simulator_factory: Callable[..., Simulator],
    run_daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    row = models.find(name)
    assert row is not None
    sim = simulator_factory(model=name, resolution=SIZE, fps=20, loop_frames=20)
    record = tmp_path / "rec.mjpeg"
    clips = tmp_path / "clips"
    d = run_daemon(
        sim, "--model", name, "--record", str(record), "--recordings-dir", str(clips),
        "--wait", "0", "--linger", "0",
    )  # fmt: skip
    d.wait_streaming()
    status = wait_for(
        lambda: (s := d.status())["frames_received"] >= 10 and s["buttons"]["replies"] > 0 and s,
        what="frames and a button baseline",
    )
    assert status["model"] == name
    assert status["framing"] == row.framing
    sim.press_button(1)  # the J103's counter; key code 1 on the others
    wait_for(lambda: len(d.jpgs()) == 1, what="the photo key's snapshot")
    assert d.jpgs()[0].read_bytes() in set(sim.frames)
    if row.buttons == Buttons.KEYS:
        sim.press_key(2)  # the video key starts a recording ...
        wait_for(lambda: d.status()["recording"]["running"], what="the video key's recording")
        sim.press_key(3)
        sim.press_key(4)
        wait_for(lambda: "zoom out key pressed" in d.log.read_text(), what="the zoom-out key")
        text = d.log.read_text()
        assert "video key pressed" in text and "zoom in key pressed" in text
        sim.press_key(2)  # ... and stops it
        wait_for(lambda: not d.status()["recording"]["running"], what="the recording's stop")
        (clip,) = clips.glob("borescope-*.mkv")
        assert clip.stat().st_size > 0
        assert len(d.jpgs()) == 1  # video and zoom keys take no snapshot
    assert d.terminate() == 0
    recorded = split_recording(record.read_bytes(), sim.frames)  # fails on any foreign byte
    assert len(recorded) >= 10
    assert _consecutive(recorded, len(sim.frames)), recorded
    assert sim.stats.corrupted == 0


@pytest.mark.parametrize(("name", "framing"), [("j103", "A"), ("spade", "B"), ("wf070", "B")])
def test_auto_on_one_port_tells_the_framing_by_the_frames(
    name: str,
    framing: str,
    simulator_factory: Callable[..., Simulator],
    run_daemon: Callable[..., Daemon],
    tmp_path: Path,
) -> None:
    """`auto` with an explicit port (here: loopback) reads the framing off the datagrams; at an
    address no model lives at, the model cannot be told, so status names the framing."""
    sim = simulator_factory(model=name, resolution=SIZE, fps=20, loop_frames=20)
    record = tmp_path / "rec.mjpeg"
    d = run_daemon(sim, "--record", str(record), "--wait", "0", "--linger", "0")
    d.wait_streaming()
    status = wait_for(lambda: (s := d.status())["frames_received"] >= 5 and s, what="frames")
    assert (status["model"], status["framing"]) == (framing, framing)
    assert f"found a scope at 127.0.0.1:{sim.stream_port} (framing {framing}" in d.log.read_text()
    assert d.terminate() == 0
    recorded = split_recording(record.read_bytes(), sim.frames)
    assert len(recorded) >= 5 and _consecutive(recorded, len(sim.frames))
