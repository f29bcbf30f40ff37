# SPDX-License-Identifier: GPL-3.0-or-later
"""The model table: every row is usable and auto-detection can tell each model apart."""

from bridge.core import models
from bridge.core.models import MODELS, Framing, find, identify, probe_targets


def test_rows_are_complete_and_unique() -> None:
    assert len(set(models.NAMES)) == len(MODELS)
    assert models.AUTO not in models.NAMES
    for m in MODELS:
        assert m.key_payload in (1, 4)
        assert m.sources and m.app and m.products
        assert find(m.name.upper()) is m
    assert [m.name for m in MODELS if m.confirmed] == ["j103"]
    assert find("nope") is None


def test_each_model_is_identified_by_what_it_sends() -> None:
    for m in MODELS:
        inverted = m.inverted if m.framing == Framing.B else None
        assert identify(m.framing, m.address, m.video_port, inverted) is m, m.name


def test_probe_targets_only_at_the_given_addresses() -> None:
    here = probe_targets(("192.168.10.123",))
    assert (Framing.A, "192.168.10.123", 8030) in here
    assert (Framing.C, "192.168.10.123", 7060) in here
    assert all(addr == "192.168.10.123" for _, addr, _ in here)
    assert len(here) == len(set(here))
    both = probe_targets(("192.168.10.123", "192.168.0.10"))
    assert (Framing.A, "192.168.0.10", 8032) in both
