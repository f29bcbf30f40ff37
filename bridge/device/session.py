# SPDX-License-Identifier: GPL-3.0-or-later
"""The session with one borescope: two UDP sockets, timers, source filter; it moves bytes.

Theory of operation
-------------------
The device streams only while it hears a heartbeat: every 0.5 s we send one to
(device_ip, stream_port) and it answers to our source port with MJPEG fragments.
A second socket polls (device_ip, event_port) with SETCMD every 100 ms; RETCMD answers
carry the snapshot-button counter. One thread runs a `selectors` loop over both
sockets and a wake-up socket (signals and other threads use it), with every timer
due within 100 ms; fragments go straight from a preallocated buffer into the
Reassembler, and complete frames are handed to a listener that must not block.

A datagram is accepted only if it comes from exactly (device_ip, stream_port) resp.
(device_ip, event_port) *and* arrived on the interface that leads to the device
(IP_PKTINFO's arrival index against bridge.device.link.DeviceLink). A wrong source is counted
as foreign; the right source on the wrong interface is a forgery (source addresses are
not authenticated, and Linux accepts a packet for any local address on any interface),
counted as wrong_interface and logged, rate-limited. Neither can inject a picture or
trigger a snapshot.

Nothing at all goes to the device unless the kernel's route to it is direct (issue 18): started
where no borescope is plugged in, the route to 192.168.10.123 is the LAN's default gateway, and
the heartbeats and polls would reach a stranger's host. DeviceLink.direct says whether it is
(re-asked every tick while it is not, so a link that appears is used at once); every send also
carries MSG_DONTROUTE, so the kernel refuses a gateway even between two checks.

Other models of the family (address, port, framing, `auto`): bridge.device.family.

The states (starting, waiting for network, waiting for device, streaming, stalled) and the
exit rules live in bridge.core.linkstate.LinkMachine; the session feeds it what happened and
logs what it answers, once per change, never per packet. The loop ends by itself, with a
reason, when no first contact came within `wait_s` ("no borescope answers at ...") or the
device has been silent for `linger_s` after contact; 0 means forever for either. These are
clean exits, never errors, so a service manager does not restart-loop on an ordinary USB
Ethernet dongle.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import selectors
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from bridge.core.framing_c import StreamC
from bridge.core.linkstate import CONTACT_LOST_S as CONTACT_LOST_S
from bridge.core.linkstate import NO_DEVICE, STALL_S, Change, LinkMachine, LinkState
from bridge.core.protocol import HEARTBEAT, STOP
from bridge.core.ratelimit import RateLimiter
from bridge.device.family import FamilyMixin
from bridge.device.link import (
    PKTINFO_CMSG_SPACE,
    DeviceLink,
    arrival_ifindex,
    interface_name,
)
from bridge.device.probe import Plan
from bridge.device.sockets import ReceiveBuffer, SocketFactory, set_receive_buffer
from bridge.errors import BridgeError

if TYPE_CHECKING:
    from bridge.core.buttons import ButtonTracker
    from bridge.core.reassembly import Frame, Reassembler

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 0.5  # what the reference client and the phone app send
POLL_INTERVAL_S = 0.1  # SETCMD poll period of the reference client
TICK_S = 0.1  # housekeeping: expiry, state, watchdog, status
RECV_BUFFER_BYTES = 65536  # one UDP datagram at most
MAX_DRAIN = 512  # datagrams per wake-up before timers get a turn
REBIND_EVERY_S = 2.0  # with --interface: how often to re-bind while sends fail

# The old names of the states and timings, for importers that predate bridge.core.linkstate.
STARTING = LinkState.STARTING
WAITING_NETWORK = LinkState.WAITING_NETWORK
WAITING_DEVICE = LinkState.WAITING_DEVICE
STREAMING = LinkState.STREAMING
STALLED = LinkState.STALLED

# sendto() fails like this while the interface has no address or route yet (DHCP racing us).
NETWORK_WAIT_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ENODEV,
        errno.ENXIO,
    }
)


class Listener(Protocol):
    """What the session tells the rest of the daemon; every call must return quickly."""

    def on_frame(self, frame: Frame, now: float) -> None: ...
    def on_presses(self, count: int, now: float) -> None: ...
    def on_key(self, code: int, now: float) -> None: ...
    def on_state(self, old: str, new: str, now: float) -> None: ...
    def on_tick(self, now: float) -> None: ...


class Session(FamilyMixin):
    """Owns the sockets and the loop; feeds the Reassembler and the ButtonTracker."""

    def __init__(
        self,
        *,
        device_ip: str,
        stream_port: int,
        event_port: int,
        reassembler: Reassembler | StreamC,
        tracker: ButtonTracker,
        listener: Listener,
        plan: Plan | None = None,
        interface: str | None = None,
        link: DeviceLink | None = None,
        wait_s: float = 30.0,
        linger_s: float = 600.0,
        rcvbuf_bytes: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_ip = device_ip
        self.stream_addr = (device_ip, stream_port)
        self.event_addr = (device_ip, event_port)
        self.interface = interface
        # Which interface leads to the device; one per session, so a second daemon on a second
        # adapter is just another Session with its own --interface.
        self.link = link if link is not None else DeviceLink(device_ip, interface)
        self.reassembler = reassembler
        self.tracker = tracker
        self.listener = listener
        self.rcvbuf_bytes = rcvbuf_bytes
        self.sockets = SocketFactory(device_ip, interface)
        self.clock = clock
        self.machine = LinkMachine(now=clock(), wait_s=wait_s, linger_s=linger_s)
        self.rebinds = 0
        self._last_rebind = 0.0
        self.foreign_stream = 0
        self.foreign_event = 0
        self.wrong_interface = 0  # the device's source address, another arrival interface
        self.wrong_interface_replies = 0  # of those, on the event socket (forged button replies)
        self.heartbeats_sent = 0
        self.polls_sent = 0
        self.send_errors = 0
        self.receive_buffer = ReceiveBuffer()
        self.exit_reason: str | None = None
        self._init_family(plan, reassembler)

        self._buf = bytearray(RECV_BUFFER_BYTES)
        self._view = memoryview(self._buf)
        self._stream: socket.socket | None = None
        self._event: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self._pending: collections.deque[Callable[[], None]] = collections.deque()
        self._stop = False
        self._warn = RateLimiter(60.0)
        self._next_hb = self._next_poll = self._next_tick = 0.0

    # ---- set-up ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create and bind both sockets; raises BridgeError with advice when that cannot work."""
        try:
            self._stream = self.sockets.udp_socket()
            self._event = self.sockets.udp_socket()
        except BaseException:
            self.close(send_stop=False)
            raise
        set_receive_buffer(self._stream, self.rcvbuf_bytes, self.receive_buffer)
        self.link.bound = self.sockets.sends_pinned
        self.link.resolve(self.clock())
        if self.link.unavailable:
            self.close(send_stop=False)
            raise BridgeError(self.link.unavailable)
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._stream, selectors.EVENT_READ, "stream")
        self._sel.register(self._event, selectors.EVENT_READ, "event")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    def install_wakeup_fd(self) -> None:
        """Make signals wake the loop at once (main thread only)."""
        assert self._wake_w is not None
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

    # ---- thread-safe entry points ---------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop thread (safe from signal handlers and other threads)."""
        self._pending.append(fn)
        self.wake()

    def request_stop(self) -> None:
        self._stop = True
        self.wake()

    def wake(self) -> None:
        w = self._wake_w
        if w is not None:
            with contextlib.suppress(OSError):
                w.send(b"\0")

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> str:
        """Loop until stopped or an exit condition; returns "stopped", "no-device" or "gone"."""
        assert self._sel is not None
        now = self.clock()
        self.machine.start(now)
        self._next_hb = self._next_poll = self._next_tick = now
        self._check_route()
        while not self._stop:
            timeout = max(0.0, min(self._next_hb, self._next_poll, self._next_tick) - self.clock())
            for key, _ in self._sel.select(min(timeout, TICK_S)):
                if key.data == "stream":
                    self._drain_stream()
                elif key.data == "event":
                    self._drain_event()
                elif key.data == "tcp":
                    self._drain_tcp()
                else:
                    self._drain_wake()
            while self._pending:
                self._pending.popleft()()
            reason = self._timers(self.clock())
            if reason is not None:
                self.exit_reason = reason
                return reason
        self.exit_reason = "stopped"
        return "stopped"

    def _timers(self, now: float) -> str | None:
        """Heartbeat, poll and housekeeping as they fall due; an exit reason when one is due."""
        if now >= self._next_hb:
            if self.link.direct and self._hb_targets:
                for target in self._hb_targets:
                    self._send(self._stream, HEARTBEAT, target, "heartbeat")
                self.heartbeats_sent += 1
            self._next_hb = max(self._next_hb + HEARTBEAT_INTERVAL_S, now)
        if now >= self._next_poll:
            if self.link.direct:
                self._send(self._event, self.tracker.next_poll(), self.event_addr, "poll")
                self.polls_sent += 1
            self._next_poll = max(self._next_poll + POLL_INTERVAL_S, now)
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            if self.machine.network_down and self.sockets.bound_to_device:
                self._rebind(now)
            if self.link.direct:
                self.link.maybe_resolve(now)
            else:
                self.link.resolve(now)  # every tick: a link that appears is used at once
            self._tick_family(now)
            if self._check_route() and self.link.direct:
                self._next_hb = self._next_poll = now
            # Expiring a stuck frame can release complete ones queued behind it.
            self._deliver(self.reassembler.expire(now) or (), now)
            reason = self._step(now)
            if reason is not None:
                return reason
            self.listener.on_tick(now)
        return None

    def _check_route(self) -> bool:
        """Tell the machine whether the route is direct; log each change once. True on news."""
        link = self.link
        if not self.machine.route(link.direct):
            return False
        if link.direct:
            log.info("a direct link to %s via %s: contacting it", self.device_ip, link.name)
        else:
            log.info(
                "no direct link to %s: is the borescope plugged in? (%s; sending nothing to it "
                "until there is one)",
                self.device_ip,
                link.indirect_reason,
            )
        return True

    def _rebind(self, now: float) -> None:
        """Bind fresh sockets to --interface after it went away.

        SO_BINDTODEVICE binds to the interface's index, and a replugged USB adapter comes
        back with the same name but a new index: the old sockets would never work again.
        """
        if now - self._last_rebind < REBIND_EVERY_S:
            return
        self._last_rebind = now
        try:
            stream = self.sockets.udp_socket()
        except BridgeError as exc:
            log.debug("re-binding to %s: %s", self.interface, exc)
            return
        try:
            event = self.sockets.udp_socket()
        except BridgeError as exc:
            stream.close()
            log.debug("re-binding to %s: %s", self.interface, exc)
            return
        assert self._sel is not None
        for old, new, tag in ((self._stream, stream, "stream"), (self._event, event, "event")):
            if old is not None:
                self._sel.unregister(old)
                old.close()
            self._sel.register(new, selectors.EVENT_READ, tag)
        self._stream, self._event = stream, event
        set_receive_buffer(stream, self.rcvbuf_bytes, self.receive_buffer, quiet=True)
        self.link.bound = self.sockets.sends_pinned
        self.link.resolve(now)  # the same name, most likely a new index
        self.rebinds += 1
        log.debug("re-bound the sockets to %s", self.interface)

    def _drain_stream(self) -> None:
        s = self._stream
        assert s is not None
        buf = self._buf
        bufs = [buf]
        addr_ok = self.stream_addr
        link = self.link
        for _ in range(MAX_DRAIN):
            try:
                n, anc, _flags, addr = s.recvmsg_into(bufs, PKTINFO_CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._rate_warn(
                    "recv-stream", "receiving on the stream socket failed: %s", exc.strerror
                )
                return
            if addr != addr_ok and (self._prober is None or addr not in self._prober.target_set):
                self.foreign_stream += 1
                continue
            now = self.clock()
            # Inline for the hot path: IP_PKTINFO is the only control message these sockets
            # ask for, and its first four bytes are the arrival ifindex.
            if not (anc and anc[0][2][:4] == link.pktinfo_prefix) and not link.arrived_here(
                anc, now
            ):
                self._wrong_interface(arrival_ifindex(anc), now)
                continue
            self._contact(now)
            prober = self._prober
            if prober is not None:
                found = prober.detector.feed(addr, buf, now, n)
                if found is not None:
                    self._lock(found.framing, addr, found.reassembler, found.frames, now)
                    addr_ok = self.stream_addr
                continue
            frames = self.reassembler.feed(buf, now, n)
            if frames:
                self._deliver(frames, now)

    def _deliver(self, frames: Sequence[Frame], now: float) -> None:
        for frame in frames:
            change = self.machine.frame(now)
            if change is not None:
                self._announce(change, now)
            self.listener.on_frame(frame, now)

    def _drain_event(self) -> None:
        s = self._event
        assert s is not None
        for _ in range(64):
            try:
                data, anc, _flags, addr = s.recvmsg(2048, PKTINFO_CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._rate_warn(
                    "recv-event", "receiving on the event socket failed: %s", exc.strerror
                )
                return
            if addr != self.event_addr:
                self.foreign_event += 1
                continue
            now = self.clock()
            if not self.link.arrived_here(anc, now):
                self.wrong_interface_replies += 1
                self._wrong_interface(arrival_ifindex(anc), now)
                continue
            self._contact(now)
            presses = self._on_event(data)
            if presses > 0:
                self.listener.on_presses(presses, now)
            self._keys(now)

    def _wrong_interface(self, ifindex: int | None, now: float) -> None:
        """Count a datagram with the device's source that came in elsewhere; log it, rarely."""
        self.wrong_interface += 1
        ok, suppressed = self._warn.allow("wrong-interface", now)
        if not ok:
            return
        link = self.link
        if link.ifindex is not None:
            expected = f"not {link.name}"
        else:
            expected = f"while no interface leads to it ({link.reason})"
        log.warning(
            "dropped %d datagram(s) claiming to be from %s that arrived on %s, %s: forged?",
            suppressed + 1,
            self.device_ip,
            interface_name(ifindex),
            expected,
        )

    def _drain_wake(self) -> None:
        r = self._wake_r
        assert r is not None
        try:
            while r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _contact(self, now: float) -> None:
        if self.machine.contact(now):
            log.info("the borescope at %s answers", self.device_ip)

    def _send(self, s: socket.socket | None, data: bytes, addr: tuple[str, int], what: str) -> None:
        assert s is not None
        try:
            # Never via a gateway, whatever the table; out of --interface when there is one.
            self.sockets.send(s, data, addr, self.link.ifindex, socket.MSG_DONTROUTE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.send_errors += 1
            if exc.errno in NETWORK_WAIT_ERRNOS:
                if self.machine.network(down=True):
                    log.debug(
                        "sending %s to %s:%d: %s (no route/address yet)",
                        what,
                        addr[0],
                        addr[1],
                        exc.strerror,
                    )
                return
            hint = ""
            if exc.errno in (errno.EPERM, errno.EACCES):
                hint = (
                    " (blocked by a firewall, or by the unit's IPAddressAllow= when "
                    "device_ip is outside 192.168.10.0/24 and is not 192.168.0.10)"
                )
            self._rate_warn(
                "send-" + what,
                "sending %s to %s:%d failed: %s%s",
                what,
                addr[0],
                addr[1],
                exc.strerror,
                hint,
            )
            return
        if self.machine.network(down=False):
            self.link.resolve(self.clock())  # sends work again: a route just appeared

    def _rate_warn(self, key: str, fmt: str, *args: object) -> None:
        ok, suppressed = self._warn.allow(key, self.clock())
        if ok:
            if suppressed:
                log.warning(fmt + " (%d more like this suppressed)", *args, suppressed)
            else:
                log.warning(fmt, *args)

    # ---- state: the machine decides, the session tells the listener and the log ------------

    @property
    def state(self) -> LinkState:
        return self.machine.state

    @property
    def wait_s(self) -> float:
        return self.machine.wait_s

    @wait_s.setter
    def wait_s(self, value: float) -> None:
        self.machine.wait_s = value

    @property
    def linger_s(self) -> float:
        return self.machine.linger_s

    @linger_s.setter
    def linger_s(self, value: float) -> None:
        self.machine.linger_s = value

    @property
    def first_contact_at(self) -> float | None:
        return self.machine.first_contact_at

    def _step(self, now: float) -> str | None:
        """Let the machine see the time: announce a state change, log and return an exit."""
        tick = self.machine.tick(now)
        if tick.change is not None:
            self._announce(tick.change, now)
        if tick.exit is not None:
            self._log_exit(tick.exit)
        return tick.exit

    def _announce(self, change: Change, now: float) -> None:
        new = change.new
        # The listener first: it updates the journal fields this very log line carries.
        self.listener.on_state(change.old, new, now)
        if new == LinkState.STREAMING:
            log.info("streaming from %s", self.device_ip)
        elif new == LinkState.WAITING_NETWORK:
            log.info(
                "waiting for network: no route to %s yet (interface up? DHCP done?)", self.device_ip
            )
        elif new == LinkState.WAITING_DEVICE:
            if self.first_contact_at is not None and self.linger_s > 0:
                log.info(
                    "waiting for device at %s (gone; exiting after %g s without it, --linger)",
                    self.device_ip,
                    self.linger_s,
                )
            else:
                log.info("waiting for device at %s", self.device_ip)
        elif new == LinkState.STALLED:
            log.warning("stream from %s stalled: no frame for %.0f s", self.device_ip, STALL_S)

    def _log_exit(self, reason: str) -> None:
        if reason == NO_DEVICE:
            log.warning(
                "no borescope answers at %s (waited %g s); exiting", self.device_ip, self.wait_s
            )
        else:
            log.info(
                "the borescope at %s has been gone for %g s; exiting", self.device_ip, self.linger_s
            )

    # ---- tear-down -----------------------------------------------------------------------

    def close(self, send_stop: bool = True) -> None:
        """Tell the device to stop streaming (only a stream this session asked for, so a
        process that never ran its loop cannot stop another one's), then close everything."""
        if send_stop and self._stream is not None and self.heartbeats_sent > 0 and self.link.direct:
            ifindex, stream = self.link.ifindex, self._stream
            for target in self._hb_targets:
                try:
                    self.sockets.send(stream, STOP, target, ifindex, socket.MSG_DONTROUTE)
                except OSError as exc:
                    log.debug("sending the stop packet failed: %s", exc.strerror)
        self._close_tcp()
        if self._wake_w is not None:
            # ValueError: not the main thread, so nothing was installed from here.
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for s in (self._stream, self._event, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._stream = self._event = self._wake_r = self._wake_w = None

    def stats(self) -> dict[str, object]:
        now = self.clock()
        rb = self.receive_buffer
        m = self.machine
        return {
            "state": str(self.state),
            "device_ip": self.device_ip,
            **self._family_stats(),
            "stream_port": self.stream_addr[1],
            "event_port": self.event_addr[1],
            "interface": self.interface,
            "device_interface": self.link.name,
            "foreign_packets": self.foreign_stream + self.foreign_event + self.wrong_interface,
            "wrong_interface": self.wrong_interface,
            "wrong_interface_replies": self.wrong_interface_replies,
            "heartbeats_sent": self.heartbeats_sent,
            "polls_sent": self.polls_sent,
            "send_errors": self.send_errors,
            "rebinds": self.rebinds,
            "last_frame_age_s": _age(now, m.last_frame_at),
            "last_contact_age_s": _age(now, m.last_contact_at),
            "receive_buffer_bytes": rb.effective,
            "receive_buffer_requested": rb.requested,
            "receive_buffer_capped": rb.capped,
            "rmem_max": rb.rmem_max,
        }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)
