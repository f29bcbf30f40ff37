# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures. Append new fixtures below; keep each one self-cleaning."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.simulator import Simulator, SimulatorConfig


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., Simulator]]:
    """Start simulators on 127.0.0.1 with free ports; keyword arguments go to SimulatorConfig."""
    started: list[Simulator] = []

    def make(**overrides: Any) -> Simulator:
        options: dict[str, Any] = {"bind": "127.0.0.1", "stream_port": 0, "event_port": 0}
        options.update(overrides)
        sim = Simulator(SimulatorConfig(**options))
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A running simulated borescope on 127.0.0.1 (ports in .stream_port / .event_port)."""
    return simulator_factory()
