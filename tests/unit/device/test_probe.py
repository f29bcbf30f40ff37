# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan for `model`: explicit settings win, auto covers every model of the table."""

from bridge.core import models
from bridge.core.models import Framing
from bridge.device.probe import make_plan


def test_auto_with_defaults_covers_every_model() -> None:
    plan = make_plan("auto", "192.168.10.123", 8030, 50000)
    assert plan.model is None and plan.probing
    assert plan.addresses == ("192.168.10.123", "192.168.0.10")
    for m in models.MODELS:
        if m.framing == Framing.C:
            assert plan.tcp_port == m.video_port
        else:
            assert m.video_port in plan.udp_ports[m.address], m.name


def test_a_model_name_brings_its_address_and_port() -> None:
    plan = make_plan("airlook", "192.168.10.123", 8030, 50000)
    assert plan.model is models.find("airlook") and not plan.probing
    assert plan.addresses == ("192.168.0.10",) and plan.udp_ports == {"192.168.0.10": (8032,)}
    c = make_plan("wf028", "192.168.10.123", 8030, 50000)
    assert c.tcp_port == 7060 and c.udp_ports == {"192.168.10.123": ()}


def test_explicit_address_and_port_win() -> None:
    plan = make_plan("spade", "127.0.0.1", 18030, 15000)
    assert plan.addresses == ("127.0.0.1",) and plan.udp_ports == {"127.0.0.1": (18030,)}
    assert plan.event_port == 15000
    auto = make_plan("auto", "127.0.0.1", 18030, 15000)
    assert auto.probing and auto.udp_ports == {"127.0.0.1": (18030,)} and auto.tcp_port is None
    ip_only = make_plan("auto", "10.0.0.5", 8030, 50000)
    assert ip_only.addresses == ("10.0.0.5",) and ip_only.tcp_port == 7060
    assert set(ip_only.udp_ports["10.0.0.5"]) == {8030, 8031, 8032}
