# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator at the device's real address, 192.168.10.123, in a network namespace pair.

Two fresh namespaces joined by a veth pair, exactly the borescope's link: the device side holds
192.168.10.123 (the simulator on its default ports 8030/50000), the client side 192.168.10.100.
Nothing touches the host's own interfaces. Skipped where namespaces cannot be created.

Then the attack of issue 10 as it happens on a real desk: a third namespace plays the PC's LAN
and forges the device's source address with raw sockets; the real daemon must show none of it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import clean_env
from support.netns import ip as _ip
from support.netns import status as _status
from support.netns import stop as _stop
from support.paths import REPO
from support.waiting import wait_for

from bridge.sim.scene import make_loop

pytestmark = [pytest.mark.netns, pytest.mark.slow]


# Runs inside the client namespace: heartbeat, source filter, reassembly, one button poll.
CLIENT = r"""
import json, socket, sys, time
from pathlib import Path
from bridge.core.buttons import ButtonTracker
from bridge.core.protocol import DEVICE_IP, EVENT_PORT, HEARTBEAT, STOP, STREAM_PORT
from bridge.core.reassembly import Reassembler

out, wanted = Path(sys.argv[1]), int(sys.argv[2])
device = (DEVICE_IP, STREAM_PORT)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# As the daemon does: room for a second of stream, so a loaded machine that leaves this process
# unscheduled for a few frames loses none of them (the default ~200 KiB overflowed once).
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: we run as root here
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
        ["ip", "netns", "exec", dev, sys.executable, "-m", "bridge.sim.server",
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


# ---- the attack from the LAN: forged source 192.168.10.123, raw sockets, the real daemon --------

# Runs inside the LAN namespace as root: hand-built IPv4+UDP datagrams on an IPPROTO_RAW socket
# (IP_HDRINCL), source 192.168.10.123 and the device's ports, to every UDP port the daemon has
# open, addressed both to the PC's LAN address and to its borescope-side address.
ATTACKER = r"""
import json, socket, struct, sys, time
from bridge.core.protocol import DEVICE_IP, EVENT_PORT, STREAM_PORT, encode_retcmd, fragment_jpeg

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def datagram(sport, dst, dport, payload, ident):
    src, dst_b = socket.inet_aton(DEVICE_IP), socket.inet_aton(dst)
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = checksum(src + dst_b + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident, 0, 64,
                     socket.IPPROTO_UDP, 0, src, dst_b)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + udp

args = json.loads(sys.argv[1])
picture = open(args["picture"], "rb").read()
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
# One complete frame in one END fragment, under every frame id the reassembler could expect.
frames = [fragment_jpeg(fid, picture, len(picture))[0] for fid in range(256)]
assert all(len(f) + 28 <= 1500 for f in frames)
sent = {"frames": 0, "retcmd": 0}
ident = 0
end = time.monotonic() + args["seconds"]
started = time.monotonic()
while time.monotonic() < end:
    for dst in args["targets"]:
        for port in args["ports"]:
            for f in frames:
                ident = (ident + 1) & 0xFFFF
                raw.sendto(datagram(STREAM_PORT, dst, port, f, ident), (dst, 0))
                sent["frames"] += 1
    # Plausible poll counters: 10 polls a second since the daemon started, from 0 (a counter
    # that starts at 0) and around where it should be now; button counter a few presses up.
    guess = int((args["daemon_age_s"] + time.monotonic() - started) * 10)
    counters = set(range(0, 64)) | set(range(max(0, guess - 40), guess + 40))
    burst_end = time.monotonic() + 0.05
    while time.monotonic() < burst_end:
        for counter in counters:
            for dst in args["targets"]:
                for port in args["ports"]:
                    ident = (ident + 1) & 0xFFFF
                    for buttons in (1, 3):
                        reply = encode_retcmd(counter, buttons)
                        raw.sendto(datagram(EVENT_PORT, dst, port, reply, ident), (dst, 0))
                        sent["retcmd"] += 1
print(json.dumps(sent))
"""


@pytest.fixture
def attack_net() -> Iterator[dict[str, str]]:
    """Three namespaces as on a real desk: the PC, the borescope on its USB link, and the LAN.

    pc  pcdev 192.168.10.100/24 <-> bsdev 192.168.10.123/24  scope (the simulator)
    pc  pclan 10.77.0.1/24      <-> lanpc 10.77.0.2/24       lan   (the attacker; it routes
        192.168.10.0/24 via the PC, so it can address the PC's borescope-side address too)
    The PC has the loose reverse-path filter desktop distributions set (rp_filter=2).
    """
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' command not found")
    if os.geteuid() != 0:
        pytest.skip("the attacker needs a raw socket (root)")
    tag = secrets.token_hex(3)
    names = {"pc": f"bbatk-pc-{tag}", "scope": f"bbatk-bs-{tag}", "lan": f"bbatk-lan-{tag}"}
    probe = _ip("netns", "add", names["pc"], check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    pc, scope, lan = names["pc"], names["scope"], names["lan"]
    try:
        _ip("netns", "add", scope)
        _ip("netns", "add", lan)
        sysctl = ["ip", "netns", "exec", pc, "sysctl", "-qw"]
        subprocess.run([*sysctl, "net.ipv4.conf.all.rp_filter=2",
                        "net.ipv4.conf.default.rp_filter=2"], check=True)  # fmt: skip
        _ip("link", "add", "pcdev", "netns", pc, "type", "veth", "peer", "name", "bsdev",
            "netns", scope)  # fmt: skip
        _ip("link", "add", "pclan", "netns", pc, "type", "veth", "peer", "name", "lanpc",
            "netns", lan)  # fmt: skip
        for ns, ifname, address in ((pc, "pcdev", "192.168.10.100/24"),
                                    (scope, "bsdev", "192.168.10.123/24"),
                                    (pc, "pclan", "10.77.0.1/24"),
                                    (lan, "lanpc", "10.77.0.2/24")):  # fmt: skip
            _ip("-n", ns, "addr", "add", address, "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        for ifname in ("pcdev", "pclan"):
            subprocess.run([*sysctl, f"net.ipv4.conf.{ifname}.rp_filter=2"], check=True)
        _ip("-n", lan, "route", "add", "192.168.10.0/24", "via", "10.77.0.1")
        yield names
    finally:
        for ns in (lan, scope, pc):
            _ip("netns", "del", ns, check=False)


def _udp_ports(ns: str) -> list[int]:
    """Local ports of the wildcard-bound UDP sockets in `ns`, as a port scan would find them."""
    text = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/udp"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    ports = []
    for line in text.splitlines()[1:]:
        address, port = line.split()[1].split(":")
        if address == "00000000":
            ports.append(int(port, 16))
    return sorted(ports)


def test_forged_datagrams_from_the_lan_reach_neither_camera_nor_snapshots(
    attack_net: dict[str, str], tmp_path: Path
) -> None:
    from support.daemon import split_recording

    pc, scope, lan = attack_net["pc"], attack_net["scope"], attack_net["lan"]
    env = clean_env()
    picture = make_loop(64, 48, count=1, quality=50)[0]  # distinctive: the real loop is 640x480
    (tmp_path / "forged.jpg").write_bytes(picture)
    record, snaps, sock = tmp_path / "rec.mjpeg", tmp_path / "snaps", str(tmp_path / "ctl.sock")
    (tmp_path / "none.toml").write_text("")
    sim = subprocess.Popen(
        ["ip", "netns", "exec", scope, sys.executable, "-m", "bridge", "simulate",
         "--bind", "192.168.10.123", "--fps", "30"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # As the unit runs it: no --interface, device_ip and ports at their defaults.
    daemon_log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", pc, sys.executable, "-m", "bridge", "run",
         "--config", str(tmp_path / "none.toml"), "--camera", "none", "--record", str(record),
         "--snapshot-dir", str(snaps), "--control-socket", sock, "--wait", "0", "--linger", "0"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=open(daemon_log, "w"),  # noqa: SIM115 (the child keeps it)
    )  # fmt: skip
    started = time.monotonic()
    try:
        wait_for(lambda: (s := _status(sock)) and s["frames_received"] >= 10, timeout=60,
                 what="the real stream")  # fmt: skip
        ports = _udp_ports(pc)
        assert len(ports) == 2, ports  # the stream and the event socket, nothing else
        before = _status(sock)
        assert before is not None
        attack = subprocess.run(
            ["ip", "netns", "exec", lan, sys.executable, "-c", ATTACKER, json.dumps({
                "picture": str(tmp_path / "forged.jpg"), "ports": ports, "seconds": 3.0,
                "targets": ["10.77.0.1", "192.168.10.100"],
                "daemon_age_s": time.monotonic() - started,
            })],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert attack.returncode == 0, attack.stderr
        sent = json.loads(attack.stdout)
        assert sent["frames"] >= 2048 and sent["retcmd"] >= 1000, sent
        # The real stream goes on after the attack.
        wait_for(
            lambda: (s := _status(sock)) and s["frames_received"] >= before["frames_received"] + 30,
            what="real frames after the attack",
        )
        after = _status(sock)
        assert after is not None
    finally:
        daemon_rc = _stop(daemon)
        _stop(sim)
    assert daemon_rc == 0, daemon_log.read_text()
    data = record.read_bytes()
    assert picture not in data
    loop = make_loop(640, 480, count=60, fps=30.0, quality=80)
    # Nothing but the simulator's frames, and they kept coming through the attack.
    assert len(split_recording(data, loop)) >= before["frames_received"] + 30
    assert not snaps.exists() or list(snaps.iterdir()) == []
    assert after["button_presses"] == 0
    # Both kinds reached the daemon's sockets and were refused there: frames and button replies.
    replies = after["wrong_interface_replies"] - before["wrong_interface_replies"]
    assert replies > 0
    assert after["wrong_interface"] - before["wrong_interface"] > replies
    assert after["foreign_packets"] >= after["wrong_interface"]
    # Refused before the button tracker ever saw them: not even counted as unmatched replies.
    assert after["buttons"]["unmatched"] - before["buttons"]["unmatched"] < 5
    assert after["device_interface"] == "pcdev"
    text = daemon_log.read_text()
    assert "claiming to be from 192.168.10.123 that arrived on pclan, not pcdev: forged?" in text
