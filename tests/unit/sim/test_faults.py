# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault decisions, from a seeded random.Random and nothing else."""

from __future__ import annotations

import random

import pytest

from bridge.core.protocol import FRAGMENT_HEADER_LEN, fragment_jpeg
from bridge.sim.faults import (
    REORDER_MAX_DELAY,
    Action,
    DatagramFate,
    FaultRates,
    HeldBack,
    corrupt_frame,
    datagram_fate,
    forge_reply,
)

JPEG = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"
DATAGRAM = fragment_jpeg(7, JPEG, 500)[0]


def test_no_faults_draw_nothing() -> None:
    """With every rate at 0 the generator is untouched, so adding a fault kind later does not
    shift the draws of the others."""
    rng = random.Random(5)
    state = rng.getstate()
    none = FaultRates()
    assert corrupt_frame(JPEG, none, rng) is None
    assert datagram_fate(DATAGRAM, none, rng).action is Action.SEND
    assert datagram_fate(DATAGRAM, none, rng).forged is None
    assert forge_reply(none, rng) is False
    assert rng.getstate() == state


@pytest.mark.parametrize(
    ("rates", "action"),
    [
        (FaultRates(loss=1.0), Action.LOSE),
        (FaultRates(reorder=1.0), Action.HOLD),
        (FaultRates(duplicate=1.0), Action.TWICE),
        (FaultRates(loss=1.0, reorder=1.0, duplicate=1.0), Action.LOSE),
        (FaultRates(reorder=1.0, duplicate=1.0), Action.HOLD),
    ],
)
def test_certain_faults_always_happen(rates: FaultRates, action: Action) -> None:
    rng = random.Random(1)
    fates = [datagram_fate(DATAGRAM, rates, rng) for _ in range(50)]
    assert {f.action for f in fates} == {action}
    if action is Action.HOLD:
        assert {f.delay for f in fates} == set(range(1, REORDER_MAX_DELAY + 1))
    else:
        assert {f.delay for f in fates} == {0}


def test_forged_datagram_keeps_the_header_and_replaces_the_payload() -> None:
    rng = random.Random(2)
    fate = datagram_fate(DATAGRAM, FaultRates(foreign=1.0), rng)
    assert fate.action is Action.SEND
    assert fate.forged is not None
    assert len(fate.forged) == len(DATAGRAM)
    assert fate.forged[:FRAGMENT_HEADER_LEN] == DATAGRAM[:FRAGMENT_HEADER_LEN]
    assert fate.forged[FRAGMENT_HEADER_LEN:] != DATAGRAM[FRAGMENT_HEADER_LEN:]
    assert forge_reply(FaultRates(foreign=1.0), rng) is True


def test_corruption_damages_exactly_one_marker() -> None:
    rng = random.Random(3)
    damaged = [corrupt_frame(JPEG, FaultRates(corrupt=1.0), rng) for _ in range(40)]
    soi = eoi = 0
    for frame in damaged:
        assert frame is not None and len(frame) == len(JPEG)
        diff = [i for i, (a, b) in enumerate(zip(frame, JPEG, strict=True)) if a != b]
        assert diff in ([1], [len(JPEG) - 1])
        soi += diff == [1]
        eoi += diff == [len(JPEG) - 1]
    assert soi and eoi  # both kinds happen


def test_a_seed_replays_the_same_faults() -> None:
    rates = FaultRates(loss=0.2, duplicate=0.2, reorder=0.2, corrupt=0.3, foreign=0.2)

    def run(seed: int) -> list[tuple[bytes | None, DatagramFate, bool]]:
        rng = random.Random(seed)
        return [
            (
                corrupt_frame(JPEG, rates, rng),
                datagram_fate(DATAGRAM, rates, rng),
                forge_reply(rates, rng),
            )
            for _ in range(100)
        ]

    assert run(11) == run(11)
    assert run(11) != run(12)
    assert {fate.action for _, fate, _ in run(11)} == set(Action)


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError, match=r"loss rate must be between 0 and 1, not 1\.5"):
        FaultRates(loss=1.5)
    with pytest.raises(ValueError, match="foreign rate"):
        FaultRates(foreign=-0.1)


def test_held_back_datagrams_go_out_after_their_count() -> None:
    held = HeldBack()
    held.hold(b"a", 1)
    held.hold(b"b", 3)
    held.hold(b"c", 2)
    assert len(held) == 3
    assert held.passed() == [b"a"]
    assert held.passed() == [b"c"]
    assert held.passed() == [b"b"]
    assert held.passed() == []
    held.hold(b"d", 2)
    held.hold(b"e", 1)
    assert held.drain() == [b"d", b"e"]
    assert len(held) == 0 and held.passed() == []
