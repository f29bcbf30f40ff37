# SPDX-License-Identifier: GPL-3.0-or-later
"""The client-usage event's definitions and the per-release policy (no device needed).

The event itself is proven against real v4l2loopback releases in the VM harness
(tests/vm/scenarios/video.sh: a reader starting while nobody watched).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from bridge.camera.usage import (
    EVENT_PRI_CLIENT_USAGE,
    VIDIOC_DQEVENT,
    VIDIOC_SUBSCRIBE_EVENT,
    ClientUsage,
    Event,
    counts_every_reader,
    module_version,
    parse_version,
    usage_for,
)


def test_event_type_is_the_released_value() -> None:
    # v4l2loopback.c 0.13.2 and 0.15.0: V4L2_EVENT_PRIVATE_START + 0x08E00000 + 1
    assert EVENT_PRI_CLIENT_USAGE == 0x10E00001


def test_ioctl_numbers_match_the_kernel_abi() -> None:
    if ctypes.sizeof(ctypes.c_void_p) == 8:  # x86_64/arm64 values from videodev2.h
        assert ctypes.sizeof(Event) == 136
        assert VIDIOC_DQEVENT == 0x80885659
    assert VIDIOC_SUBSCRIBE_EVENT == 0x4020565A


def test_versions() -> None:
    assert parse_version("0.13.2\n") == (0, 13, 2)
    assert parse_version("0.15") == (0, 15, 0)
    assert parse_version("garbage") is None
    assert not counts_every_reader(None)
    assert not counts_every_reader((0, 12, 7))
    assert not counts_every_reader((0, 13, 2))
    assert counts_every_reader((0, 14, 0)) and counts_every_reader((0, 15, 0))


def test_module_version_from_sysfs(tmp_path: Path) -> None:
    f = tmp_path / "version"
    f.write_text("0.15.0\n")
    assert module_version(version_file=str(f)) == (0, 15, 0)
    assert module_version(version_file=str(tmp_path / "missing")) is None


def test_fd_without_the_event_reports_unknown() -> None:
    r, w = os.pipe()  # not a V4L2 device: the subscription fails like 0.12.x's EINVAL
    try:
        usage = ClientUsage(w, (0, 15, 0))
        assert usage.supported is False and usage.may_idle is False
        assert usage.readers() is None
    finally:
        os.close(r)
        os.close(w)


def test_sinks_without_a_device_have_no_count() -> None:
    assert usage_for(object()) is None
