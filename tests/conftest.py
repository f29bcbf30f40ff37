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


@pytest.fixture(params=["opencv", "numpy"])
def pixel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both pixel paths: OpenCV (the pip install) and numpy (the Debian package).

    "numpy" hides OpenCV from the modules that use it; "opencv" skips where it is not installed
    (including under BORESCOPE_BRIDGE_WITHOUT=cv2, see tests/test_optional.py).
    """
    import bridge.transform
    import bridge.yuv

    if request.param == "opencv":
        if bridge.yuv.cv2 is None:
            pytest.skip("OpenCV is not importable here (the Debian package's configuration)")
    else:
        monkeypatch.setattr(bridge.yuv, "cv2", None)
        monkeypatch.setattr(bridge.transform, "cv2", None)
    assert bridge.yuv.backend() == request.param
    return str(request.param)
