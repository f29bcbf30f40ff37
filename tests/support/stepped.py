# SPDX-License-Identifier: GPL-3.0-or-later
"""The real Pipeline and the real libturbojpeg decoder, stepped by hand, writing to a recorder.

For tests that feed real (and damaged) simulator JPEGs and check what the camera was asked and
shown: no worker thread, no device, a clock that moves one frame period per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from bridge.camera.pipeline import Pipeline
from bridge.pixels.decode import Decoder
from bridge.sim.scene import make_loop

W, H = 320, 240


@cache
def good_frames() -> tuple[bytes, ...]:
    """61 distinct real frames (each shows its own counter), so a stale picture is noticed."""
    return tuple(make_loop(W, H, 61))


@cache
def reference(jpeg: bytes) -> bytes:
    """The picture a fresh decoder makes of `jpeg`: what the camera must show for it."""
    decoder = Decoder("turbojpeg")
    try:
        return decoder.decode(jpeg).tobytes()
    finally:
        decoder.close()


@dataclass(frozen=True)
class Frame:
    data: bytes
    completed_at: float


class RecordingSink:
    """A camera that keeps what it was asked: sizes (open and resize) and the pictures."""

    def __init__(self, owner: Recorder, w: int, h: int) -> None:
        self.owner = owner
        self.size = (w, h)

    def write(self, data: Any) -> None:
        self.owner.pictures.append(bytes(memoryview(data)))

    def resize(self, w: int, h: int) -> bool:
        self.owner.asked.append((w, h))
        self.size = (w, h)
        return True

    def close(self) -> None:
        pass


class Recorder:
    """sink_factory for RecordingSink: every size the pipeline asked the camera for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.pictures: list[bytes] = []

    def __call__(self, path: str, w: int, h: int, fmt: str, fps: float) -> RecordingSink:
        self.asked.append((w, h))
        return RecordingSink(self, w, h)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stepped_pipeline(recorder: Recorder, clock: Clock, fmt: str = "raw", **kw: Any) -> Pipeline:
    """A never-started Pipeline with the real libturbojpeg decoder and no reader count."""
    return Pipeline(
        camera="/dev/video9",
        fmt=fmt,
        sink_factory=recorder,
        decoder_backend="turbojpeg",
        usage_factory=lambda sink: None,
        clock=clock,
        **kw,
    )


def feed(p: Pipeline, clock: Clock, frames: Sequence[bytes]) -> None:
    """Each frame through the worker's loop body, one frame period apart."""
    for data in frames:
        clock.now += 1 / 30
        p.submit(Frame(data, clock.now))
        while p.work_once():
            pass
