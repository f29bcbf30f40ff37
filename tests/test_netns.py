# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator at the device's real address, 192.168.10.123, in a network namespace pair.

Two fresh namespaces joined by a veth pair, exactly the borescope's link: the device side holds
192.168.10.123 (the simulator on its default ports 8030/50000), the client side 192.168.10.100.
Nothing touches the host's own interfaces. Skipped where namespaces cannot be created.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.simulator import make_loop

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent

# Runs inside the client namespace: heartbeat, source filter, reassembly, one button poll.
CLIENT = r"""
import json, socket, sys, time
from pathlib import Path
from bridge.buttons import ButtonTracker
from bridge.protocol import DEVICE_IP, EVENT_PORT, HEARTBEAT, STOP, STREAM_PORT
from bridge.reassembly import Reassembler

out, wanted = Path(sys.argv[1]), int(sys.argv[2])
device = (DEVICE_IP, STREAM_PORT)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.168.10.100", 0))
s.settimeout(0.1)
r, frames, foreign, buf, last_hb = Reassembler(), [], 0, bytearray(65536), 0.0
deadline = time.monotonic() + 20
while len(frames) < wanted and time.monotonic() < deadline:
    if time.monotonic() - last_hb > 0.5:
        s.sendto(HEARTBEAT, device)
        last_hb = time.monotonic()
    try:
        n, addr = s.recvfrom_into(buf)
    except TimeoutError:
        continue
    if addr != device:
        foreign += 1
        continue
    frames.extend(r.feed(buf, time.monotonic(), n))
s.sendto(STOP, device)
for i, f in enumerate(frames):
    (out / f"{i:03d}.jpg").write_bytes(f.data)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
e.settimeout(2)
tracker = ButtonTracker()
e.sendto(tracker.next_poll(), (DEVICE_IP, EVENT_PORT))
data, addr = e.recvfrom(64)
tracker.on_reply(data)
print(json.dumps({
    "ids": [f.frame_id for f in frames], "foreign": foreign, "stats": r.stats.as_dict(),
    "event_source": list(addr), "baseline": tracker.baseline,
}))
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    """(device namespace, client namespace), linked by veth, removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' command not found")
    tag = secrets.token_hex(3)
    dev, cli = f"bbtest-dev-{tag}", f"bbtest-cli-{tag}"
    probe = _ip("netns", "add", dev, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    try:
        _ip("netns", "add", cli)
        _ip("link", "add", f"bbd{tag}", "netns", dev, "type", "veth",
            "peer", "name", f"bbc{tag}", "netns", cli)  # fmt: skip
        for ns, ifname, address in ((dev, f"bbd{tag}", "192.168.10.123/24"),
                                    (cli, f"bbc{tag}", "192.168.10.100/24")):  # fmt: skip
            _ip("-n", ns, "addr", "add", address, "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield dev, cli
    finally:
        _ip("netns", "del", cli, check=False)
        _ip("netns", "del", dev, check=False)


def test_byte_exact_frames_at_the_real_address(netns_pair: tuple[str, str], tmp_path) -> None:
    dev, cli = netns_pair
    sim = subprocess.Popen(
        ["ip", "netns", "exec", dev, sys.executable, "-m", "bridge.simulator",
         "--bind", "192.168.10.123", "--fps", "30"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        seen = []
        for line in sim.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if "kill -USR1" in line:
                break
        assert any("listening on 192.168.10.123: video UDP 8030" in x for x in seen), seen
        client = subprocess.run(
            ["ip", "netns", "exec", cli, sys.executable, "-c", CLIENT, str(tmp_path), "12"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        report = json.loads(client.stdout)
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(sim.pid, signal.SIGKILL)
            sim.wait()
    assert sim.returncode == 0
    log = sim.stderr.read()  # type: ignore[union-attr]
    assert "client 192.168.10.100:" in log
    # The simulator's loop is deterministic: regenerate it here and compare bytes.
    loop = make_loop(640, 480, count=60, fps=30.0, quality=80)
    received = [p.read_bytes() for p in sorted(tmp_path.glob("*.jpg"))]
    assert len(received) == 12
    positions = [loop.index(data) for data in received]  # ValueError if not byte-exact
    assert positions == [(positions[0] + k) % 60 for k in range(12)]
    ids = report["ids"]
    assert ids == [(ids[0] + k) & 0xFF for k in range(12)]
    assert report["foreign"] == 0
    assert report["stats"]["corrupt"] == report["stats"]["incomplete"] == 0
    assert report["event_source"] == ["192.168.10.123", 50000]
    assert report["baseline"] == 0
