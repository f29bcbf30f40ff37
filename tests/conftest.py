# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures, built on tests/support/. Keep each one self-cleaning."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import chromium
from support.daemon import Daemon
from support.sim import simulator as start_simulator

from bridge.sim.server import Simulator


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., Simulator]]:
    """Start simulators (tests/support/sim.py); keyword arguments go to SimulatorConfig."""
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(start_simulator(**kw))


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A running simulated borescope on 127.0.0.1 (ports in .stream_port / .event_port)."""
    return simulator_factory()


@pytest.fixture
def run_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start `borescope-bridge run` processes (tests/support/daemon.py), killed at the end."""
    started: list[Daemon] = []

    def start(sim: Simulator | None, *extra: str, **kw: Any) -> Daemon:
        d = Daemon(tmp_path, sim, *extra, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Selenium (tests/support/browser.py), quit at the end."""
    with chromium() as driver:
        yield driver


@pytest.fixture(params=["opencv", "numpy"])
def pixel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both pixel paths: OpenCV (the pip install) and numpy (the Debian package).

    "numpy" hides OpenCV from the modules that use it; "opencv" skips where it is not installed
    (including under BORESCOPE_BRIDGE_WITHOUT=cv2, see tests/unit/pixels/test_optional.py).
    """
    import bridge.pixels.transform
    import bridge.pixels.yuv

    if request.param == "opencv":
        if bridge.pixels.yuv.cv2 is None:
            pytest.skip("OpenCV is not importable here (the Debian package's configuration)")
    else:
        monkeypatch.setattr(bridge.pixels.yuv, "cv2", None)
        monkeypatch.setattr(bridge.pixels.transform, "cv2", None)
    assert bridge.pixels.yuv.backend() == request.param
    return str(request.param)
