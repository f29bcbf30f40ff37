# SPDX-License-Identifier: GPL-3.0-or-later
"""Session in-process against a scripted device on 127.0.0.1: sockets, filter, stop packet.

The scripted device sends exactly what a test tells it to (unlike the simulator's steady
stream), so foreign senders and forged arrivals are deterministic. The state and exit timing
is tested with stepped time in tests/unit/core/test_linkstate.py and
tests/unit/device/test_session_states.py.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import clean_env
from support.netns import ip as _ip
from support.netns import status
from support.waiting import wait_for

from bridge.core.buttons import ButtonTracker
from bridge.core.protocol import (
    HEARTBEAT,
    STOP,
    decode_setcmd,
    encode_retcmd,
    fragment_jpeg,
)
from bridge.core.reassembly import Reassembler
from bridge.device.link import DeviceLink, NetlinkUnavailable, Route
from bridge.device.session import Session
from bridge.device.sockets import SocketFactory
from bridge.errors import BridgeError


def jpeg(n: int, size: int = 5000) -> bytes:
    body = bytes((n + i) % 251 for i in range(size))
    return b"\xff\xd8" + body.replace(b"\xff", b"\xfe") + b"\xff\xd9"


class ScriptedDevice:
    """Two UDP sockets on 127.0.0.1 that record what arrives and answer polls on request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.stream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stream.bind((host, 0))
        self.event = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.event.bind((host, 0))
        self.stream_port = self.stream.getsockname()[1]
        self.event_port = self.event.getsockname()[1]
        self.client: tuple[str, int] | None = None
        self.event_client: tuple[str, int] | None = None
        self.heartbeats = 0
        self.stops = 0
        self.buttons = 0
        self.answer_polls = True
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_stream, daemon=True),
            threading.Thread(target=self._serve_event, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _serve_stream(self) -> None:
        self.stream.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data, addr = self.stream.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if data == HEARTBEAT:
                self.heartbeats += 1
                self.client = addr
            elif data == STOP:
                self.stops += 1

    def _serve_event(self) -> None:
        self.event.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data, addr = self.event.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            counter = decode_setcmd(data)
            self.event_client = addr
            if isinstance(counter, int) and self.answer_polls:
                self.event.sendto(encode_retcmd(counter, self.buttons), addr)

    def send_frame(self, frame_id: int, data: bytes) -> None:
        assert self.client is not None
        for pkt in fragment_jpeg(frame_id, data):
            self.stream.sendto(pkt, self.client)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)
        self.stream.close()
        self.event.close()


class Recorder:
    """A Listener that remembers everything."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.presses = 0
        self.keys: list[int] = []
        self.states: list[str] = []

    def on_frame(self, frame: Any, now: float) -> None:
        self.frames.append(frame.data)

    def on_presses(self, count: int, now: float) -> None:
        self.presses += count

    def on_key(self, code: int, now: float) -> None:
        self.keys.append(code)

    def on_state(self, old: str, new: str, now: float) -> None:
        self.states.append(new)

    def on_tick(self, now: float) -> None:
        pass


def unsent_session(**overrides: Any) -> Session:
    """A Session for 127.0.0.1 port 9 that is built but never run: for set-up and error paths."""
    options: dict[str, Any] = {
        "device_ip": "127.0.0.1",
        "stream_port": 9,
        "event_port": 9,
        "reassembler": Reassembler(),
        "tracker": ButtonTracker(),
        "listener": Recorder(),
    }
    options.update(overrides)
    return Session(**options)


@pytest.fixture
def device() -> Iterator[ScriptedDevice]:
    d = ScriptedDevice()
    yield d
    d.close()


class Running:
    def __init__(self, dev: ScriptedDevice, **kw: Any) -> None:
        self.listener = Recorder()
        self.session = Session(
            device_ip="127.0.0.1",
            stream_port=dev.stream_port,
            event_port=dev.event_port,
            reassembler=Reassembler(),
            tracker=ButtonTracker(),
            listener=self.listener,
            **kw,
        )
        self.session.open()
        self.result: list[str] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.session.run()), daemon=True
        )
        self.thread.start()

    def stop(self) -> str:
        self.session.request_stop()
        self.thread.join(5)
        self.session.close()
        return self.result[0]


def test_frames_arrive_byte_exact_and_state_follows(device: ScriptedDevice) -> None:
    r = Running(device, wait_s=0, linger_s=0)
    try:
        wait_for(lambda: device.client, what="a heartbeat")
        wait_for(lambda: r.listener.states, what="a state")
        assert r.listener.states[0] == "waiting for device"
        frames = [jpeg(i) for i in range(5)]
        for i, f in enumerate(frames):
            device.send_frame(i, f)
        wait_for(lambda: len(r.listener.frames) == 5, what="five frames")
        assert r.listener.frames == frames
        assert "streaming" in r.listener.states
        assert r.session.stats()["foreign_packets"] == 0
    finally:
        assert r.stop() == "stopped"
    wait_for(lambda: device.stops == 1, what="the stop packet")


def test_foreign_sources_are_dropped_and_counted(device: ScriptedDevice) -> None:
    r = Running(device, wait_s=0, linger_s=0)
    hostile = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            hostile.bind(("127.0.0.2", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2: {exc}")
        wait_for(lambda: device.client and device.event_client, what="the session's ports")
        client, event_client = device.client, device.event_client
        assert client is not None and event_client is not None
        wait_for(lambda: r.session.tracker.stats.replies > 0, what="a baseline")
        for pkt in fragment_jpeg(1, jpeg(99)):
            hostile.sendto(pkt, client)
        # Same address, wrong port is foreign too.
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.1", 0))
        with other:
            for pkt in fragment_jpeg(2, jpeg(98)):
                other.sendto(pkt, client)
            for c in range(r.session.tracker.stats.polls, r.session.tracker.stats.polls + 20):
                hostile.sendto(encode_retcmd(c & 0xFFFF, 3), event_client)
        n = len(fragment_jpeg(1, jpeg(99))) * 2 + 20
        wait_for(lambda: r.session.stats()["foreign_packets"] == n, what="all foreign counted")
        assert r.listener.frames == []
        assert r.listener.presses == 0
    finally:
        hostile.close()
        r.stop()


def test_the_device_address_on_another_interface_is_refused(
    device: ScriptedDevice, caplog: Any
) -> None:
    """Right source, wrong arrival interface: counted as wrong_interface, logged once, dropped."""
    elsewhere = DeviceLink(
        "127.0.0.1",
        route=lambda ip, oif=None: Route(999_999, None),
        index_to_name=lambda i: "enxtest0",
    )
    with caplog.at_level("WARNING", logger="bridge.device.session"):
        r = Running(device, wait_s=0, linger_s=0, link=elsewhere)
        try:
            wait_for(lambda: device.client and device.event_client, what="the session's ports")
            for i in range(3):
                device.send_frame(i, jpeg(i))
            device.buttons = 5
            n = 3 * len(fragment_jpeg(0, jpeg(0)))
            wait_for(lambda: r.session.wrong_interface > n, what="frames and replies refused")
            stats = r.session.stats()
            assert r.listener.frames == [] and r.listener.presses == 0
            assert r.session.tracker.stats.replies == 0  # never reached the tracker
            assert r.session.first_contact_at is None  # a forgery is no sign of the device
            assert stats["foreign_packets"] == stats["wrong_interface"] == r.session.wrong_interface
            assert stats["device_interface"] == "enxtest0"
            replies, refused = stats["wrong_interface_replies"], stats["wrong_interface"]
            assert isinstance(replies, int) and isinstance(refused, int)
            assert 0 < replies < refused
        finally:
            r.stop()
    warnings = [m.getMessage() for m in caplog.records if "forged?" in m.getMessage()]
    assert warnings == [
        "dropped 1 datagram(s) claiming to be from 127.0.0.1 that arrived on lo, not enxtest0: "
        "forged?"
    ]


def test_without_a_route_nothing_claiming_to_be_the_device_is_accepted(
    device: ScriptedDevice,
) -> None:
    nowhere = DeviceLink("127.0.0.1", route=lambda ip, oif=None: Route(1, "192.0.2.1"))
    r = Running(device, wait_s=0, linger_s=0, link=nowhere)  # the route is via a gateway
    try:
        assert r.session._stream is not None
        device.client = ("127.0.0.1", r.session._stream.getsockname()[1])  # no heartbeat told it
        device.send_frame(1, jpeg(1))
        wait_for(lambda: r.session.wrong_interface > 0, what="refused")
        assert r.listener.frames == []
        assert r.session.stats()["device_interface"] is None
        wait_for(lambda: r.session.state == "waiting for network", what="waiting for network")
    finally:
        r.stop()
    assert (device.heartbeats, device.event_client, device.stops) == (0, None, 0)  # sent nothing
    assert r.session.heartbeats_sent == r.session.polls_sent == 0


def test_no_netlink_is_a_clear_error_at_open() -> None:
    def sandboxed(ip: str, oif: int | None = None) -> Route:
        raise NetlinkUnavailable("netlink sockets are not allowed here; AF_NETLINK or --interface")

    s = unsent_session(link=DeviceLink("127.0.0.1", route=sandboxed))
    with pytest.raises(BridgeError, match="AF_NETLINK or --interface"):
        s.open()


def test_button_press_is_reported_once(device: ScriptedDevice) -> None:
    device.buttons = 41
    r = Running(device, wait_s=0, linger_s=0)
    try:
        wait_for(lambda: r.session.tracker.stats.replies > 2, what="baseline")
        assert r.listener.presses == 0
        assert r.session.first_contact_at is not None  # a genuine reply is contact
        device.buttons = 43
        wait_for(lambda: r.listener.presses == 2, what="two presses")
    finally:
        r.stop()


def test_receive_buffer_is_requested_and_reported(device: ScriptedDevice) -> None:
    r = Running(device, wait_s=0, linger_s=0, rcvbuf_bytes=4 * 1024 * 1024)
    try:
        rb = r.session.receive_buffer
        assert rb.requested == 4 * 1024 * 1024
        assert rb.effective > 0
        assert rb.capped == (rb.effective < 2 * rb.requested)
    finally:
        r.stop()


def test_interface_binding_errors_say_what_to_do() -> None:
    s = unsent_session(interface="nosuchif0")
    with pytest.raises(BridgeError, match="ip link"):
        s.open()


class RefusesBindToDevice:
    """A socket as Linux before 5.7 gives it to a process without CAP_NET_RAW."""

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if option == socket.SO_BINDTODEVICE:
            raise OSError(errno.EPERM, "Operation not permitted")


def test_bindtodevice_refused_still_streams_with_the_arrival_check(
    device: ScriptedDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SocketFactory.bind_to_device

    def old_kernel(self: SocketFactory, s: socket.socket, interface: str) -> bool:
        return real(self, RefusesBindToDevice(), interface)  # type: ignore[arg-type]

    monkeypatch.setattr(SocketFactory, "bind_to_device", old_kernel)
    r = Running(device, wait_s=0, linger_s=0, interface="lo")
    try:
        wait_for(lambda: device.client, what="a heartbeat")
        device.send_frame(4, jpeg(4))
        wait_for(lambda: r.listener.frames == [jpeg(4)], what="the frame")
        assert r.session.link.ifindex == socket.if_nametoindex("lo")
        assert r.session.sockets.bound_to_device is False
    finally:
        r.stop()


def test_bound_to_an_interface_still_streams(device: ScriptedDevice) -> None:
    try:
        r = Running(device, wait_s=0, linger_s=0, interface="lo")
    except Exception as exc:  # EPERM on kernels before 5.7 without CAP_NET_RAW
        pytest.skip(f"cannot bind to lo here: {exc}")
    try:
        wait_for(lambda: device.client, what="a heartbeat")
        device.send_frame(3, jpeg(3))
        wait_for(lambda: r.listener.frames == [jpeg(3)], what="the frame")
        assert r.session.stats()["interface"] == "lo"
    finally:
        r.stop()


# ---- a replugged adapter, for real: two network namespaces and a veth pair -------------------


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    """Namespaces "bridge side" and "device side"; skipped where `ip netns` is not permitted."""
    tag = f"bb{os.getpid() % 100000}"
    host, dev = f"{tag}h", f"{tag}d"
    try:
        _ip("netns", "add", host)
        _ip("netns", "add", dev)
    except (OSError, subprocess.CalledProcessError) as exc:
        for ns in (host, dev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        pytest.skip(f"ip netns not permitted here: {exc}")
    try:
        yield host, dev
    finally:
        for ns in (host, dev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _in_netns(ns: str, *command: str) -> list[str]:
    """argv for `python -m bridge COMMAND...` inside network namespace `ns`."""
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "bridge", *command]


def _bridge_argv(host: str, tmp_path: Path, *extra: str) -> list[str]:
    """`borescope-bridge run` in the bridge-side namespace, against the device at 10.99.0.2."""
    (tmp_path / "none.toml").write_text("")
    return _in_netns(
        host,
        "run",
        "--config",
        str(tmp_path / "none.toml"),
        "--device-ip",
        "10.99.0.2",
        "--camera",
        "none",
        "--snapshot-dir",
        str(tmp_path / "s"),
        "--control-socket",
        str(tmp_path / "control.sock"),
        "--wait",
        "0",
        "--http",
        "off",
        *extra,
    )


def plug(host: str, dev: str) -> None:
    """The USB adapter appears: a veth pair, bridge side 10.99.0.1, device 10.99.0.2."""
    _ip("link", "add", "bbh0", "netns", host, "type", "veth", "peer", "name", "bbd0", "netns", dev)
    _ip("-n", host, "addr", "add", "10.99.0.1/24", "dev", "bbh0")
    _ip("-n", dev, "addr", "add", "10.99.0.2/24", "dev", "bbd0")
    for ns, link in ((host, "bbh0"), (dev, "bbd0"), (host, "lo"), (dev, "lo")):
        _ip("-n", ns, "link", "set", link, "up")


@pytest.mark.netns
@pytest.mark.parametrize("bind", [True, False], ids=["interface", "routing"])
def test_replugged_adapter_resumes(netns_pair: tuple[str, str], tmp_path: Path, bind: bool) -> None:
    host, dev = netns_pair
    plug(host, dev)
    env = clean_env()
    sim = subprocess.Popen(
        _in_netns(
            dev, "simulate", "--bind", "10.99.0.2", "--stream-port", "8030", "--event-port", "50000"
        ),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sock = str(tmp_path / "control.sock")
    bridge = subprocess.Popen(
        _bridge_argv(host, tmp_path, *(["--interface", "bbh0"] if bind else []), "--linger", "0"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "log", "w"),  # noqa: SIM115 (the child keeps it)
    )

    try:
        wait_for(
            lambda: (s := status(sock)) and s["state"] == "streaming",
            timeout=60,
            what="streaming over the veth pair",
        )
        _ip("-n", host, "link", "del", "bbh0")  # unplugged (the peer goes with it)
        wait_for(lambda: (s := status(sock)) and s["state"] != "streaming", what="signal lost")
        before = status(sock)["frames_received"]  # type: ignore[index]
        plug(host, dev)  # replugged: same name, new interface index
        wait_for(
            lambda: (
                (s := status(sock)) and s["state"] == "streaming" and s["frames_received"] > before
            ),
            timeout=30,
            what="streaming again",
        )
        s = status(sock)
        assert s is not None
        assert (s["rebinds"] >= 1) == bind
        # The new interface index is trusted at once: no real datagram was taken for a forgery.
        assert (s["device_interface"], s["wrong_interface"]) == ("bbh0", 0)
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(10) == 0
    finally:
        for p in (bridge, sim):
            if p.poll() is None:
                p.kill()
                p.wait(5)


@pytest.mark.netns
def test_started_before_the_network_exists_waits_then_streams(
    netns_pair: tuple[str, str], tmp_path: Path
) -> None:
    """The udev-started service races DHCP: no route yet is a waiting state, not an error."""
    host, dev = netns_pair
    env = clean_env()
    sock = str(tmp_path / "control.sock")
    log = tmp_path / "log"
    _ip("-n", host, "link", "set", "lo", "up")
    bridge = subprocess.Popen(
        _bridge_argv(host, tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 (the child keeps it)
    )
    sim = None

    try:
        wait_for(
            lambda: (s := status(sock)) and s["state"] == "waiting for network",
            what="waiting for network",
        )
        plug(host, dev)
        sim = subprocess.Popen(
            _in_netns(dev, "simulate", "--bind", "10.99.0.2"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: (s := status(sock)) and s["state"] == "streaming",
            timeout=60,
            what="streaming once the network is up",
        )
        s = status(sock)
        assert s is not None and (s["device_interface"], s["wrong_interface"]) == ("bbh0", 0)
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(10) == 0
        text = log.read_text()
        assert "waiting for network" in text
        assert "ERROR" not in text and "failed" not in text
    finally:
        for p in (bridge, sim):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)


def test_no_stop_packet_for_a_stream_this_session_never_asked_for(device: ScriptedDevice) -> None:
    """A process that opened its sockets but failed before its loop ran (another daemon holds
    the lock, a socket error) must not stop the stream someone else is watching."""
    session = Session(
        device_ip="127.0.0.1",
        stream_port=device.stream_port,
        event_port=device.event_port,
        reassembler=Reassembler(),
        tracker=ButtonTracker(),
        listener=Recorder(),
    )
    session.open()
    session.close(send_stop=True)
    r = Running(device, wait_s=0, linger_s=0)  # one that did run: its STOP goes out
    wait_for(lambda: device.client, what="a heartbeat")
    r.stop()
    wait_for(lambda: device.stops == 1, what="the running session's stop packet")
    time.sleep(0.2)
    assert device.stops == 1
