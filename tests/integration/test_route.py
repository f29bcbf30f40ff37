# SPDX-License-Identifier: GPL-3.0-or-later
"""Nothing goes to the borescope's address unless the route to it is direct (issue 18, item 6).

The desk of someone who started the daemon without a borescope plugged in: the PC's only route
to 192.168.10.123 is its LAN's default gateway, and the gateway (a namespace that owns
192.168.10.123 itself, the stranger's host) counts every IPv4 packet for that address arriving
on its LAN interface. The real daemon must send it nothing while it waits, and exit after
`--wait` as ever. Then the borescope is plugged in during the wait (a veth with the device's
link moves into the PC's namespace): the daemon streams from it, still without a packet to the
gateway. Skipped where namespaces cannot be created.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import clean_env
from support.netns import ip, status, stop
from support.paths import REPO
from support.waiting import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

DEVICE_IP = "192.168.10.123"
NO_LINK = f"no direct link to {DEVICE_IP}: is the borescope plugged in?"

# Runs in the gateway namespace as root: counts IPv4 packets for argv[2] arriving on argv[1]
# (an AF_PACKET socket sees them whatever the port), one line each.
COUNTER = r"""
import socket, sys
target = socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
print("counting", flush=True)
while True:
    data, addr = s.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 20 or data[16:20] != target:
        continue
    ihl = (data[0] & 15) * 4
    port = int.from_bytes(data[ihl + 2 : ihl + 4], "big") if data[9] == 17 else -1
    print(f"packet proto={data[9]} port={port}", flush=True)
"""


@pytest.fixture
def lan_only() -> Iterator[dict[str, str]]:
    """The PC on a LAN whose gateway owns the device's address; the borescope not yet attached.

    pc  pclan 10.78.0.1/24, default via 10.78.0.2  <->  gwlan 10.78.0.2/24  gw (lo: .123/32)
    scope: bsdev 192.168.10.123/24, its veth peer pcdev still in scope, down (the unplugged
    adapter); `plug` moves pcdev into pc with 192.168.10.100/24.
    """
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' command not found")
    if os.geteuid() != 0:
        pytest.skip("the gateway's packet counter needs a packet socket (root)")
    tag = secrets.token_hex(3)
    pc, gw, scope = f"bbrt-pc-{tag}", f"bbrt-gw-{tag}", f"bbrt-bs-{tag}"
    probe = ip("netns", "add", pc, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    try:
        ip("netns", "add", gw)
        ip("netns", "add", scope)
        ip("link", "add", "pclan", "netns", pc, "type", "veth", "peer", "name", "gwlan",
           "netns", gw)  # fmt: skip
        ip("link", "add", "pcdev", "netns", scope, "type", "veth", "peer", "name", "bsdev",
           "netns", scope)  # fmt: skip
        for ns, ifname, address in ((pc, "pclan", "10.78.0.1/24"),
                                    (gw, "gwlan", "10.78.0.2/24"),
                                    (gw, "lo", f"{DEVICE_IP}/32"),
                                    (scope, "bsdev", f"{DEVICE_IP}/24")):  # fmt: skip
            ip("-n", ns, "addr", "add", address, "dev", ifname)
            ip("-n", ns, "link", "set", ifname, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", pc, "route", "add", "default", "via", "10.78.0.2")
        yield {"pc": pc, "gw": gw, "scope": scope}
    finally:
        for ns in (pc, gw, scope):
            ip("netns", "del", ns, check=False)


def plug(net: dict[str, str]) -> None:
    """The borescope's USB link appears in the PC: on-link 192.168.10.0/24 via pcdev."""
    ip("-n", net["scope"], "link", "set", "pcdev", "netns", net["pc"])
    ip("-n", net["pc"], "addr", "add", "192.168.10.100/24", "dev", "pcdev")
    ip("-n", net["pc"], "link", "set", "pcdev", "up")


class Counter:
    """The gateway's packet counter process; `lines` is what it has seen so far."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", COUNTER, "gwlan", DEVICE_IP],
            cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "counting"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def close(self) -> None:
        stop(self.proc)
        self._reader.join(5)


def start_daemon(ns: str, tmp: Path, *extra: str) -> subprocess.Popen[Any]:
    """`borescope-bridge run` in `ns` at the default device address, as the unit runs it."""
    (tmp / "none.toml").write_text("")
    env = dict(clean_env(), XDG_STATE_HOME=str(tmp / "state"), XDG_RUNTIME_DIR=str(tmp))
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "bridge", "run",
         "--config", str(tmp / "none.toml"), "--camera", "none", "--http", "127.0.0.1:0",
         "--snapshot-dir", str(tmp / "snaps"), "--control-socket", str(tmp / "ctl.sock"),
         *extra],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=open(tmp / "daemon.log", "w"),
    )  # fmt: skip


def test_nothing_goes_to_the_gateway_and_wait_still_ends_it(
    lan_only: dict[str, str], tmp_path: Path
) -> None:
    counter = Counter(lan_only["gw"])
    try:
        daemon = start_daemon(lan_only["pc"], tmp_path, "--wait", "3", "--linger", "0")
        try:
            rc = daemon.wait(timeout=60)
        finally:
            stop(daemon)
        log = (tmp_path / "daemon.log").read_text()
        # The counter is no blind spot: a datagram the routing table sends to the gateway counts.
        probe = subprocess.run(
            ["ip", "netns", "exec", lan_only["pc"], sys.executable, "-c",
             "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
             f".sendto(b'probe', ('{DEVICE_IP}', 9))"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        wait_for(lambda: counter.lines, what="the probe at the gateway")
    finally:
        counter.close()
    assert counter.lines == ["packet proto=17 port=9"], (counter.lines, log)
    assert rc == 0, log
    assert log.count(NO_LINK) == 1, log
    assert f"no borescope answers at {DEVICE_IP} (waited 3 s); exiting" in log


def test_a_direct_link_that_appears_during_the_wait_streams(
    lan_only: dict[str, str], tmp_path: Path
) -> None:
    counter = Counter(lan_only["gw"])
    sim = subprocess.Popen(
        ["ip", "netns", "exec", lan_only["scope"], sys.executable, "-m", "bridge", "simulate",
         "--bind", DEVICE_IP, "--fps", "30"],
        cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sock = str(tmp_path / "ctl.sock")
    daemon = start_daemon(lan_only["pc"], tmp_path, "--wait", "60", "--linger", "0")
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: NO_LINK in log.read_text(), what="the no-direct-link message")
        wait_for(lambda: (s := status(sock)) and s["state"] == "waiting for network",
                 what="waiting for network")  # fmt: skip
        plug(lan_only)
        wait_for(lambda: (s := status(sock)) and s["frames_received"] >= 10, timeout=60,
                 what="frames over the new link")  # fmt: skip
        s = status(sock)
        assert s is not None
    finally:
        daemon_rc = stop(daemon)
        stop(sim)
        counter.close()
    text = log.read_text()
    assert daemon_rc == 0, text
    assert counter.lines == [], (counter.lines, text)
    assert s["state"] == "streaming"
    assert s["device_interface"] == "pcdev"
    assert "streaming from 192.168.10.123" in text
