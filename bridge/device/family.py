# SPDX-License-Identifier: GPL-3.0-or-later
"""The session's part for the device family: follow a plan, probe, lock in, framing C's TCP.

Kept apart from bridge.device.session so that module stays about its loop. Everything here
runs on the session's loop thread.

Other scopes of the family (bridge.core.models) differ in address, port and framing. A
bridge.device.probe.Plan says where to look: with a model name the session starts knowing its
framing; with `auto` it sends the start packet to every UDP target of the plan (and connects to
TCP 7060, framing C, through bridge.device.tcp), moves to the first of the plan's addresses
that the kernel routes directly, and hands the datagrams to a bridge.core.detect.Detector until
one source completes a valid frame. That source, its framing, reassembler and the model's
button behaviour are then kept for good; the hot path after that is the J103's.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bridge.core.buttons import ButtonTracker
from bridge.core.detect import Detector
from bridge.core.devinfo import InfoQuery
from bridge.core.framing_c import StreamC
from bridge.core.linkstate import LinkMachine, LinkState
from bridge.core.models import Buttons, Framing, Model
from bridge.device.link import DeviceLink
from bridge.device.probe import Plan, Prober, identify
from bridge.device.sockets import SocketFactory
from bridge.device.tcp import TcpStream

if TYPE_CHECKING:
    from bridge.core.reassembly import Frame, Reassembler

log = logging.getLogger(__name__)


class FamilyMixin:
    """What Session does for models other than the J103; see bridge.device.session."""

    device_ip: str
    interface: str | None
    stream_addr: tuple[str, int]
    event_addr: tuple[str, int]
    link: DeviceLink
    sockets: SocketFactory
    reassembler: Reassembler | StreamC
    tracker: ButtonTracker
    plan: Plan | None
    model: Model | None
    framing: Framing | None
    clock: Callable[[], float]
    _hb_targets: tuple[tuple[str, int], ...]
    _prober: Prober | None
    _tcp: TcpStream | None
    _sel: selectors.BaseSelector | None
    _event: socket.socket | None
    machine: LinkMachine
    info: InfoQuery

    listener: Any

    if TYPE_CHECKING:

        def _deliver(self, frames: Sequence[Frame], now: float) -> None: ...
        def _contact(self, now: float) -> None: ...
        def _send(
            self, s: socket.socket | None, data: bytes, addr: tuple[str, int], what: str
        ) -> None: ...

    # ---- the family: plan, probe, lock-in -----------------------------------------------

    def _init_family(self, plan: Plan | None, reassembler: Reassembler | StreamC) -> None:
        """No plan: the J103 at the session's address and port, as before there was a family."""
        self.plan = plan
        self.model = plan.model if plan is not None else None
        self.framing = self.model.framing if self.model is not None else None
        self._hb_targets = (self.stream_addr,)
        self._prober = None
        self._tcp = None
        self.info = InfoQuery(ask_resolutions=False)
        if plan is not None:
            self._follow(plan, reassembler)

    def _tick_family(self, now: float) -> None:
        if self._prober is not None:
            self._probe_tick(now)
        if self._tcp is not None:
            self._tcp_tick(now)
        self._info_tick(now)

    def _info_tick(self, now: float) -> None:
        """Ask the known model's reads once it streams; ask again after it was gone."""
        state = self.machine.state
        if state in (LinkState.WAITING_DEVICE, LinkState.WAITING_NETWORK):
            self.info.reset()
        elif state == LinkState.STREAMING and self.link.direct:
            request = self.info.due(now)
            if request is not None:
                self._send(self._event, request, self.event_addr, "info query")

    def _on_event(self, data: bytes) -> int:
        """A reply on the event socket: the reads' answers here, the rest to the buttons."""
        if self.info.on_reply(data):
            return 0
        return self.tracker.on_reply(data)

    def _keys(self, now: float) -> None:
        """SDK 2.x keys other than photo (video, zoom) go to the listener."""
        tracker = self.tracker
        if tracker.mode == Buttons.KEYS:
            for code in tracker.take_keys():
                self.listener.on_key(code, now)

    def _family_stats(self) -> dict[str, object]:
        return {
            # The model's name; its framing when the table cannot tell which model it is.
            "model": self.model.name if self.model is not None else self.framing,
            "framing": self.framing,
            "resolutions": self.info.as_dicts(),
            # Not read: the sources disagree on the battery word (bridge.core.devinfo).
            "battery_percent": None,
        }

    def _follow(self, plan: Plan, reassembler: Reassembler | StreamC) -> None:
        """Set up for the plan: a known model's transport, or the probe for `auto`."""
        address = plan.addresses[0]
        self._move(address)
        udp = plan.udp_ports.get(address, ())
        if plan.tcp_port is not None:
            self._tcp = TcpStream(
                (address, plan.tcp_port),
                self.interface,
                StreamC(max_frame_bytes=reassembler.max_frame_bytes),
            )
        if plan.model is not None:
            port = plan.tcp_port if self.framing == Framing.C else udp[0]
            assert port is not None  # a framing-C plan always has its TCP port
            self.stream_addr = (address, port)
            self._hb_targets = () if self.framing == Framing.C else (self.stream_addr,)
            if self.framing == Framing.C and self._tcp is not None:
                self.reassembler = self._tcp.parser
            self._use_model_buttons(plan.model)
            return
        links = {
            a: (self.link if a == address else DeviceLink(a, self.interface))
            for a in plan.addresses
        }
        self._prober = Prober(plan, Detector(reassembler.max_frame_bytes), links)
        self._hb_targets = self._prober.targets

    def _move(self, address: str) -> None:
        """Talk to ``address`` from now on (the probe found a direct link to it)."""
        if address == self.device_ip:
            return
        self.device_ip = address
        self.event_addr = (address, self.event_addr[1])
        self.stream_addr = (address, self.stream_addr[1])
        prober = self._prober
        self.link = (
            prober.links[address] if prober is not None else DeviceLink(address, self.interface)
        )
        self.link.bound = self.sockets.bound_to_device
        self.sockets.device_ip = address
        if prober is not None:
            prober.use(address)
            self._hb_targets = prober.targets
        if self._tcp is not None:
            self._close_tcp()
            self._tcp.addr = (address, self._tcp.addr[1])

    def _use_model_buttons(self, model: Model) -> None:
        self.info = InfoQuery(ask_resolutions=model.resolutions)
        t = self.tracker
        if (t.mode, t.payload_len) != (model.buttons, model.key_payload):
            self.tracker = ButtonTracker(mode=model.buttons, payload_len=model.key_payload)

    def _probe_tick(self, now: float) -> None:
        """While probing: move to a directly routed address, let stale candidates expire."""
        prober = self._prober
        assert prober is not None
        prober.detector.expire(now)
        if not self.link.direct:
            better = prober.better_address(now)
            if better is not None:
                log.info(
                    "no direct link to %s, but one to %s: probing there", self.device_ip, better
                )
                self._move(better)

    def _lock(
        self,
        framing: Framing,
        addr: tuple[str, int],
        reassembler: Reassembler | StreamC,
        frames: Sequence[Frame],
        now: float,
    ) -> None:
        """The first valid frame decided: keep this source, framing and model for good."""
        assert self.plan is not None
        inverted = getattr(reassembler, "inverted", None)
        model = identify(self.plan, framing, addr, inverted)
        self.model, self.framing = model, framing
        self._prober = None
        self.reassembler = reassembler
        self.stream_addr = addr
        if framing == Framing.C:
            self._hb_targets = ()
        else:
            self._hb_targets = (addr,)
            self._close_tcp()
            self._tcp = None
        if model is not None:
            self._use_model_buttons(model)
        log.info(
            "found %s at %s:%d (framing %s%s)",
            model.name if model is not None else "a scope",
            addr[0],
            addr[1],
            framing,
            "" if model is not None else "; the model cannot be told apart",
        )
        self._deliver(frames, now)

    def _tcp_tick(self, now: float) -> None:
        tcp = self._tcp
        if tcp is not None and self.link.direct and tcp.due(now):
            s = tcp.open(now)
            if s is not None:
                assert self._sel is not None
                self._sel.register(s, selectors.EVENT_READ, "tcp")

    def _drain_tcp(self) -> None:
        tcp = self._tcp
        assert tcp is not None
        now = self.clock()
        frames = tcp.read(now)
        if frames is None:
            self._close_tcp()
            return
        self._contact(now)
        if frames:
            if self._prober is not None:
                self._lock(Framing.C, tcp.addr, tcp.parser, frames, now)
            else:
                self._deliver(frames, now)

    def _close_tcp(self) -> None:
        tcp = self._tcp
        if tcp is not None and tcp.sock is not None:
            if self._sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(tcp.sock)
            tcp.close()
