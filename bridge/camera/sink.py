# SPDX-License-Identifier: GPL-3.0-or-later
"""The pipeline's edges: the frames it takes, the sink it writes to, the camera it reports.

Protocols, so the benchmark and the tests can stand in for the reassembler's frames and for the
V4L2 writer without importing either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class FrameLike(Protocol):
    """What the pipeline needs of bridge.core.reassembly.Frame."""

    @property
    def data(self) -> bytes: ...
    @property
    def completed_at(self) -> float: ...


class Sink(Protocol):
    """Where pictures go: the V4L2 writer, or a stand-in in tests and the benchmark.

    A sink may open at another size than asked (the device keeps the size an app holds it at):
    ``size`` is what it takes. ``resize`` returns whether the device now has the new size; when
    it does not, the sink stays usable at ``size``. CameraError from any method: device gone.
    """

    @property
    def size(self) -> tuple[int, int]: ...
    def write(self, data: Any) -> None: ...
    def resize(self, width: int, height: int) -> bool: ...
    def close(self) -> None: ...


SinkFactory = Callable[[str, int, int, str, float], Sink]  # (path, width, height, fmt, fps)


@dataclass(frozen=True)
class CameraState:
    """The open camera as the worker last saw it, for other threads to read."""

    path: str
    size: tuple[int, int]
