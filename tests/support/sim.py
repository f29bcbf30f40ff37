# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way tests start a simulated borescope: on 127.0.0.1, free ports, stopped on exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bridge.sim.server import Simulator, SimulatorConfig


@contextlib.contextmanager
def simulator(**kw: Any) -> Iterator[Simulator]:
    """A running simulator; keyword arguments go to SimulatorConfig (seeded, 640x480 unless set)."""
    kw.setdefault("seed", 1234)
    kw.setdefault("resolution", (640, 480))
    options: dict[str, Any] = {"bind": "127.0.0.1", "stream_port": 0, "event_port": 0}
    options.update(kw)
    sim = Simulator(SimulatorConfig(**options))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
