# SPDX-License-Identifier: GPL-3.0-or-later
"""Where to look for the scope: the plan the session follows for `model` (a name or auto).

A plan lists the addresses to try, in order, the UDP video ports to send the start packet to
and the TCP port to connect to (framing C). Only an address the kernel routes directly is ever
contacted (the session checks that, as for the J103), so listing 192.168.0.10 costs nothing
where that WiFi network is not joined. Explicit settings win: a model's address and port are
used unless --device-ip or --stream-port say otherwise, and with `auto` an explicit stream port
means "this port only" (framing A or B, told by the datagrams).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core import models
from bridge.core.detect import Detector
from bridge.core.models import Framing, Model
from bridge.core.protocol import DEVICE_IP, STREAM_PORT
from bridge.device.link import DeviceLink


@dataclass(frozen=True)
class Plan:
    """What the session tries; ``model`` is None for auto."""

    model: Model | None
    addresses: tuple[str, ...]
    udp_ports: dict[str, tuple[int, ...]]  # per address
    tcp_port: int | None
    event_port: int

    @property
    def probing(self) -> bool:
        """More than one way in, or a framing to be told from the datagrams."""
        return self.model is None


def make_plan(model: str, device_ip: str, stream_port: int, event_port: int) -> Plan:
    """The plan for these settings; see the module docstring."""
    explicit_ip = device_ip != DEVICE_IP
    explicit_port = stream_port != STREAM_PORT
    row = models.find(model) if model != models.AUTO else None
    if row is not None:
        addr = device_ip if explicit_ip else row.address
        port = stream_port if explicit_port else row.video_port
        if row.framing == Framing.C:
            return Plan(row, (addr,), {addr: ()}, port, event_port)
        return Plan(row, (addr,), {addr: (port,)}, None, event_port)
    if explicit_port:
        return Plan(None, (device_ip,), {device_ip: (stream_port,)}, None, event_port)
    if explicit_ip:
        ports = tuple(dict.fromkeys(m.video_port for m in models.MODELS if m.framing != Framing.C))
        return Plan(None, (device_ip,), {device_ip: ports}, models.TCP_PORT, event_port)
    addresses = tuple(dict.fromkeys(m.address for m in models.MODELS))
    udp: dict[str, tuple[int, ...]] = {}
    tcp = None
    for kind, addr, port in models.probe_targets(addresses):
        if kind == Framing.C:
            tcp = port
        else:
            udp[addr] = (*udp.get(addr, ()), port)
    return Plan(None, addresses, udp, tcp, event_port)


class Prober:
    """The session's search while the model is not known: addresses, targets, detection.

    It owns no socket; the session sends the start packet to :attr:`targets` and hands it the
    datagrams that come from one of them. ``links`` keeps one DeviceLink per address, so the
    session can move to the first address the kernel routes directly.
    """

    def __init__(self, plan: Plan, detector: Detector, links: dict[str, DeviceLink]) -> None:
        self.plan = plan
        self.detector = detector
        self.links = links
        self.address = plan.addresses[0]
        self.targets: tuple[tuple[str, int], ...] = ()
        self.target_set: frozenset[tuple[str, int]] = frozenset()
        self.use(self.address)

    def use(self, address: str) -> None:
        """Probe at ``address`` from now on."""
        self.address = address
        self.targets = tuple((address, p) for p in self.plan.udp_ports.get(address, ()))
        self.target_set = frozenset(self.targets)

    def better_address(self, now: float) -> str | None:
        """Another address of the plan that the kernel routes directly, if the current is not."""
        for address in self.plan.addresses:
            if address == self.address:
                continue
            link = self.links[address]
            link.resolve(now)
            if link.direct:
                return address
        return None


def identify(
    plan: Plan, framing: Framing, addr: tuple[str, int], inverted: bool | None
) -> Model | None:
    """The model behind a detected stream: the plan's own, else the table's unique match."""
    if plan.model is not None:
        return plan.model
    return models.identify(framing, addr[0], addr[1], inverted)
