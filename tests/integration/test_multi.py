# SPDX-License-Identifier: GPL-3.0-or-later
"""Two borescopes at once, as on a real desk: two adapters, both links 192.168.10.100/24, both
scopes at 192.168.10.123, one daemon per adapter (`run --interface IF`).

The PC namespace has two veth links to two scope namespaces, each running a simulator with its
own picture (another JPEG quality: different bytes). Each daemon must record only its own scope's
frames, byte-exact, take snapshots only on its own scope's presses, and stream on while the other
scope vanishes and comes back. Run twice: with SO_BINDTODEVICE refused by the kernel (a seccomp
filter, tests/support/nobind.py: the unprivileged path, IP_PKTINFO on each send) and permitted.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.daemon import clean_env, split_recording
from support.netns import ScopeNet, scope_links
from support.netns import status as _status
from support.netns import stop as _stop
from support.paths import REPO
from support.waiting import wait_for

from bridge.sim.scene import make_loop

pytestmark = [pytest.mark.netns, pytest.mark.slow]

QUALITIES = (80, 50)  # scope k's picture: the simulator's loop at this JPEG quality
FPS = "15"


def start_scope(net: ScopeNet, k: int) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        ["ip", "netns", "exec", net.scopes[k], sys.executable, "-m", "bridge", "simulate",
         "--bind", "192.168.10.123", "--fps", FPS, "--quality", str(QUALITIES[k])],
        cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_bridge(
    net: ScopeNet, k: int, tmp: Path, wrap: list[str], *extra: str
) -> subprocess.Popen[Any]:
    """`run --interface IF` in the PC namespace; its files are tmp/rec<k>, snaps<k>, ctl<k>.sock."""
    (tmp / "none.toml").write_text("")
    return subprocess.Popen(
        ["ip", "netns", "exec", net.pc, *wrap, sys.executable, "-m", "bridge", "run",
         "--config", str(tmp / "none.toml"), "--interface", net.interfaces[k],
         "--camera", "none", "--record", str(tmp / f"rec{k}.mjpeg"),
         "--snapshot-dir", str(tmp / f"snaps{k}"), "--control-socket", str(tmp / f"ctl{k}.sock"),
         "--http", "off", "--wait", "0", "--linger", "0", *extra],
        cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL,
        stderr=open(tmp / f"bridge{k}.log", "w"),
    )  # fmt: skip


def frames(sock: str) -> int:
    s = _status(sock)
    return int(s["frames_received"]) if s else -1


def snapshots_taken(sock: str, count: int) -> bool:
    s = _status(sock)
    return bool(s) and s["snapshots_taken"] == count  # type: ignore[index]


def streaming(sock: str, at_least: int = 0) -> bool:
    s = _status(sock)
    return bool(s) and s["state"] == "streaming" and s["frames_received"] >= at_least  # type: ignore[index]


@pytest.mark.parametrize("path", ["pktinfo", "bindtodevice"])
def test_two_scopes_at_one_address_each_reach_only_their_own_bridge(
    tmp_path: Path, path: str
) -> None:
    wrap = [sys.executable, str(REPO / "tests" / "support" / "nobind.py")]
    wrap = wrap if path == "pktinfo" else []
    socks = [str(tmp_path / f"ctl{k}.sock") for k in (0, 1)]
    with scope_links(2) as net:
        scopes = [start_scope(net, k) for k in (0, 1)]
        bridges = [start_bridge(net, k, tmp_path, wrap) for k in (0, 1)]
        try:
            for k in (0, 1):
                wait_for(functools.partial(streaming, socks[k], 10), timeout=60,
                         what=f"bridge {k} streaming from its scope")  # fmt: skip
            # The button of scope 0: a snapshot by bridge 0 alone; then scope 1's, bridge 1's.
            for k in (0, 1):
                scopes[k].send_signal(signal.SIGUSR1)
                wait_for(functools.partial(snapshots_taken, socks[k], 1),
                         what=f"bridge {k}'s snapshot of its press")  # fmt: skip
            # Scope 0 vanishes: bridge 1 streams on, untouched.
            _stop(scopes[0])
            wait_for(lambda: not streaming(socks[0]), what="bridge 0 losing its scope")
            after = frames(socks[1])
            wait_for(lambda: streaming(socks[1], after + 15), what="bridge 1 streaming on")
            # Scope 0 comes back (a reboot): bridge 0 streams again.
            before = frames(socks[0])
            scopes[0] = start_scope(net, 0)
            wait_for(lambda: streaming(socks[0], before + 10), timeout=60,
                     what="bridge 0 streaming after its scope's reboot")  # fmt: skip
            final = [_status(s) for s in socks]
        finally:
            codes = [_stop(b) for b in bridges]
            for s in scopes:
                _stop(s)
    logs = [(tmp_path / f"bridge{k}.log").read_text() for k in (0, 1)]
    assert codes == [0, 0], logs
    for k in (0, 1):
        status = final[k]
        assert status is not None
        assert status["device_interface"] == net.interfaces[k]
        assert status["button_presses"] == 1 and status["snapshots_taken"] == 1
        assert status["wrong_interface"] == 0
        # Nothing but this scope's own frames: split_recording fails on any other byte.
        own = make_loop(640, 480, count=60, fps=float(FPS), quality=QUALITIES[k])
        recorded = split_recording((tmp_path / f"rec{k}.mjpeg").read_bytes(), own)
        assert len(recorded) >= status["frames_received"] - 2  # the queue's tail at the stop
        (snap,) = (tmp_path / f"snaps{k}").glob("*.jpg")
        assert snap.read_bytes() in own
    refused = "binding to {} is not permitted here"
    for k in (0, 1):
        assert (refused.format(net.interfaces[k]) in logs[k]) == (path == "pktinfo"), logs[k]
