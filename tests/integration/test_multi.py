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
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
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


def env(tmp: Path) -> dict[str, str]:
    """The daemons' and the CLI's environment: a user's runtime and state directories in tmp
    (the runtime one short: a socket's path has at most 107 bytes)."""
    return clean_env(XDG_RUNTIME_DIR=str(runtime(tmp)), XDG_STATE_HOME=str(tmp / "state"))


def runtime(tmp: Path) -> Path:
    return Path(tempfile.gettempdir()) / f"bbm-{tmp.name[-12:]}-{os.getpid()}"


def control_socket(tmp: Path, interface: str) -> str:
    """Where a user's instance for `interface` keeps its socket (root's would be in /run)."""
    return str(runtime(tmp) / "borescope-bridge" / interface / "control.sock")


def start_bridge(net: ScopeNet, k: int, tmp: Path, wrap: list[str]) -> subprocess.Popen[Any]:
    """`run --interface IF` in the PC namespace; web port, camera and names its defaults."""
    (tmp / "none.toml").write_text("")
    return subprocess.Popen(
        ["ip", "netns", "exec", net.pc, *wrap, sys.executable, "-m", "bridge", "run",
         "--config", str(tmp / "none.toml"), "--interface", net.interfaces[k],
         "--camera", "none", "--record", str(tmp / f"rec{k}.mjpeg"),
         "--snapshot-dir", str(tmp / "snaps"),
         "--control-socket", control_socket(tmp, net.interfaces[k]),
         "--wait", "0", "--linger", "0"],
        cwd=REPO, env=env(tmp), stdout=subprocess.DEVNULL,
        stderr=open(tmp / f"bridge{k}.log", "w"),
    )  # fmt: skip


def cli(net: ScopeNet, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`borescope-bridge ARGS` in the PC namespace, finding the instances by itself."""
    return subprocess.run(
        ["ip", "netns", "exec", net.pc, sys.executable, "-m", "bridge", *args],
        cwd=REPO, env=env(tmp), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


# GET /api/instances of one instance's page, with the token `url` printed, in the PC namespace.
FETCH = r"""
import json, sys, urllib.parse, urllib.request
url = urllib.parse.urlsplit(sys.argv[1])
token = urllib.parse.parse_qs(url.query)["token"][0]
req = urllib.request.Request(f"http://{url.netloc}/api/instances",
                             headers={"Authorization": "Bearer " + token})
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""


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
    tmp_path: Path, path: str, request: pytest.FixtureRequest
) -> None:
    wrap = [sys.executable, str(REPO / "tests" / "support" / "nobind.py")]
    wrap = wrap if path == "pktinfo" else []
    runtime(tmp_path).mkdir(mode=0o700)
    request.addfinalizer(lambda: shutil.rmtree(runtime(tmp_path), ignore_errors=True))
    with scope_links(2) as net:
        socks = [control_socket(tmp_path, i) for i in net.interfaces]
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
            check_the_cli(net, tmp_path)
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
        # One press each; bridge 1 also took the CLI's snapshot (check_the_cli removed its file).
        assert status["button_presses"] == 1 and status["snapshots_taken"] == 1 + k
        assert status["wrong_interface"] == 0
        # Nothing but this scope's own frames: split_recording fails on any other byte.
        own = make_loop(640, 480, count=60, fps=float(FPS), quality=QUALITIES[k])
        recorded = split_recording((tmp_path / f"rec{k}.mjpeg").read_bytes(), own)
        assert len(recorded) >= status["frames_received"] - 2  # the queue's tail at the stop
        # In the shared folder, the name says which scope took it.
        (snap,) = (tmp_path / "snaps").glob(f"borescope-{net.interfaces[k]}-*.jpg")
        assert snap.read_bytes() in own
    refused = "binding to {} is not permitted here"
    for k in (0, 1):
        assert (refused.format(net.interfaces[k]) in logs[k]) == (path == "pktinfo"), logs[k]


def check_the_cli(net: ScopeNet, tmp: Path) -> None:
    """status/url/snapshot find the instances; --interface picks one; the pages link up."""
    ifs = net.interfaces
    listed = cli(net, tmp, "status", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert sorted(e["interface"] for e in entries) == sorted(ifs)
    # Without --interface, two are running: a clear error that names both.
    ambiguous = cli(net, tmp, "status")
    assert ambiguous.returncode == 1
    assert "--interface" in ambiguous.stderr and all(i in ambiguous.stderr for i in ifs)
    one = cli(net, tmp, "status", "--json", "--interface", ifs[1])
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["interface"] == ifs[1]
    missing = cli(net, tmp, "url", "--interface", "nosuch0")
    assert missing.returncode == 1 and "borescope-bridge@nosuch0" in missing.stderr
    # Each instance its own stable port (8031 stays the single daemon's), reported by url.
    urls = cli(net, tmp, "url", "--all")
    assert urls.returncode == 0, urls.stderr
    by_if = dict(line.split("\t") for line in urls.stdout.splitlines())
    assert sorted(by_if) == sorted(ifs)
    ports = {i: urllib.parse.urlsplit(u).port or 0 for i, u in by_if.items()}
    assert ports == {i: registered_port(tmp, i) for i in ifs}
    # The first instance ever keeps the single daemon's 8031, the other gets one of its own.
    assert min(ports.values()) == 8031 and len(set(ports.values())) == 2
    url0 = cli(net, tmp, "url", "--interface", ifs[0])
    assert url0.stdout.strip() == by_if[ifs[0]]
    # The page of instance 0 lists instance 1, and only it.
    fetched = subprocess.run(
        ["ip", "netns", "exec", net.pc, sys.executable, "-c", FETCH, by_if[ifs[0]]],
        env=env(tmp), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    others = json.loads(fetched.stdout)["instances"]
    assert [(o["interface"], o["port"]) for o in others] == [(ifs[1], ports[ifs[1]])]
    # A snapshot by name of the interface: bridge 1's, named for it.
    shot = cli(net, tmp, "snapshot", "--interface", ifs[1])
    assert shot.returncode == 0, shot.stderr
    assert Path(shot.stdout.strip()).name.startswith(f"borescope-{ifs[1]}-")
    Path(shot.stdout.strip()).unlink()  # the button's snapshots are counted below


def registered_port(tmp: Path, interface: str) -> int:
    """The port the registry gave `interface` (what `url` must report)."""
    registry = json.loads((tmp / "state" / "borescope-bridge" / "web-ports.json").read_text())
    return int(registry[interface])
