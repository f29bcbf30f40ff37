# SPDX-License-Identifier: GPL-3.0-or-later
"""Each model at its real address and port, found by `run` with no model, address or port flag.

Per model, two fresh namespaces joined by a veth pair: the scope's side holds the model's
address (192.168.10.123, or 192.168.0.10 for AIR-Look) and runs `simulate --model NAME` on its
real ports; the PC's side holds .100 of the same /24 and runs `borescope-bridge run` exactly
as the unit does (no --model, --device-ip or port). The daemon must probe, find the model,
record its frames byte-exact and in order, and take a snapshot on the photo key. Skipped where
namespaces cannot be created.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import clean_env, split_recording
from support.netns import ip as _ip
from support.netns import status as _status
from support.netns import stop as _stop
from support.paths import REPO
from support.waiting import wait_for

from bridge.core import models
from bridge.sim.scene import make_loop

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SIZE, FPS, LOOP = (640, 480), 20.0, 60  # LOOP: the simulator's default loop length


@pytest.fixture
def netns_factory() -> Iterator[object]:
    """make(scope_address) -> (scope namespace, PC namespace); all removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' command not found")
    made: list[str] = []

    def make(address: str) -> tuple[str, str]:
        tag = secrets.token_hex(3)
        dev, cli = f"bbfam-dev-{tag}", f"bbfam-pc-{tag}"
        probe = _ip("netns", "add", dev, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
        made.append(dev)
        _ip("netns", "add", cli)
        made.append(cli)
        _ip("link", "add", f"bfd{tag}", "netns", dev, "type", "veth",
            "peer", "name", f"bfc{tag}", "netns", cli)  # fmt: skip
        pc = address.rsplit(".", 1)[0] + ".100"
        for ns, ifname, addr in ((dev, f"bfd{tag}", address), (cli, f"bfc{tag}", pc)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return dev, cli

    yield make
    for ns in reversed(made):
        _ip("netns", "del", ns, check=False)


@pytest.mark.parametrize("name", models.NAMES)
def test_run_finds_each_model_at_its_real_address(
    name: str, netns_factory: object, tmp_path: Path
) -> None:
    row = models.find(name)
    assert row is not None
    dev, cli = netns_factory(row.address)  # type: ignore[operator]
    env = clean_env()
    record, snaps, sock = tmp_path / "rec.mjpeg", tmp_path / "snaps", str(tmp_path / "ctl.sock")
    (tmp_path / "none.toml").write_text("")
    sim_log, daemon_log = tmp_path / "sim.log", tmp_path / "daemon.log"
    sim = subprocess.Popen(
        ["ip", "netns", "exec", dev, sys.executable, "-m", "bridge", "simulate",
         "--model", name, "--fps", str(FPS)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=open(sim_log, "w"),  # noqa: SIM115 (the child keeps it)
    )  # fmt: skip
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", cli, sys.executable, "-m", "bridge", "run",
         "--config", str(tmp_path / "none.toml"), "--camera", "none", "--record", str(record),
         "--snapshot-dir", str(snaps), "--control-socket", sock, "--http", "off",
         "--wait", "0", "--linger", "0"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=open(daemon_log, "w"),  # noqa: SIM115 (the child keeps it)
    )  # fmt: skip
    try:
        found = wait_for(
            lambda: (s := _status(sock)) and s["frames_received"] >= 8
            and s["buttons"]["replies"] > 0 and s,
            timeout=60, what=f"{name} found and streaming",
        )  # fmt: skip
        assert found["model"] == name, found
        assert found["framing"] == row.framing
        assert found["device_ip"] == row.address
        assert found["stream_port"] == row.video_port
        sim.send_signal(signal.SIGUSR1)  # the photo key (the J103's counter)
        wait_for(lambda: snaps.exists() and list(snaps.glob("*.jpg")), timeout=30,
                 what="the photo key's snapshot")  # fmt: skip
    finally:
        daemon_rc = _stop(daemon)
        _stop(sim)
    log = daemon_log.read_text()
    assert daemon_rc == 0, log
    assert f"found {name} at {row.address}:{row.video_port}" in log, log
    loop = make_loop(*SIZE, count=LOOP, fps=FPS, quality=80)
    [snap] = list(snaps.glob("*.jpg"))
    assert snap.read_bytes() in loop
    recorded = split_recording(record.read_bytes(), loop)
    assert len(recorded) >= 8
    assert all((b - a) % LOOP == 1 for a, b in itertools.pairwise(recorded)), recorded
