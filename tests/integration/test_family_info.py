# SPDX-License-Identifier: GPL-3.0-or-later
"""What the daemon reads from a locked-on scope (bridge.core.devinfo), over real loopback.

The WF070's simulator answers get-resolutions with the size it streams; `status --json` must
show it. Models the sources do not agree on are never asked, so they show null; no model's
battery is read (the sources disagree on the word's meaning).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from support.daemon import Daemon
from support.waiting import wait_for

from bridge.cli.client import format_status
from bridge.sim.server import Simulator


def test_wf070_resolution_list_reaches_status(
    simulator_factory: Callable[..., Simulator], run_daemon: Callable[..., Daemon]
) -> None:
    sim = simulator_factory(model="wf070", resolution=(1280, 720), fps=20, loop_frames=10)
    d = run_daemon(sim, "--model", "wf070", "--wait", "0", "--linger", "0")
    d.wait_streaming()
    status = wait_for(lambda: (s := d.status())["resolutions"] and s, what="the resolution list")
    assert status["resolutions"] == [{"width": 1280, "height": 720, "fps": 20}]
    assert status["battery_percent"] is None
    assert status["buttons"]["rejected"] == 0  # the list's reply never reached the buttons
    assert re.search(r"^scope offers: +1280x720@20$", format_status(status), re.M)
    assert d.terminate() == 0


@pytest.mark.parametrize("name", ["j103", "spade"])
def test_models_not_asked_show_null(
    name: str, simulator_factory: Callable[..., Simulator], run_daemon: Callable[..., Daemon]
) -> None:
    sim = simulator_factory(model=name, resolution=(320, 240), fps=20, loop_frames=10)
    d = run_daemon(sim, "--model", name, "--wait", "0", "--linger", "0")
    d.wait_streaming()
    status = wait_for(
        lambda: (s := d.status())["frames_received"] >= 20 and s, what="a second of streaming"
    )
    assert status["resolutions"] is None and status["battery_percent"] is None
    assert "scope offers" not in format_status(status)
    assert d.terminate() == 0
