# SPDX-License-Identifier: GPL-3.0-or-later
"""The status fields and the one-line status, from plain data."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bridge.app import status
from bridge.device.session import STALLED, WAITING_DEVICE


def test_fps_over_the_window_and_zero_when_frames_stop() -> None:
    times = [10.0, 10.25, 10.5, 10.75, 11.0]
    assert status.fps(times, now=11.5) == 4.0
    assert status.fps(times, now=11.0 + status.FPS_WINDOW_S + 0.01) == 0.0
    assert status.fps([10.0], now=10.0) == 0.0


def fields(**over: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "head": {"version": "v", "pid": 1},
        "session": {"state": "streaming"},
        "reassembly": {"incomplete": 2, "packets": 90, "rejected": {"short": 1}},
        "output": {"shown": 5, "resolution": (1280, 720), "camera_size": (640, 480)},
        "resolution": (320, 240),
        "fps": 29.97,
        "frames_received": 6,
        "settings": {"format": "raw", "rotate": 0, "flip": "none"},
        "presses": 1,
        "buttons": {"presses": 1},
        "snapshots": {"snapshots_taken": 0},
        "tail": {"uptime_s": 1.0},
    }
    parts.update(over)
    return status.status_fields(**parts)


def test_status_fields_map_the_parts_stats_in_order() -> None:
    s = fields()
    assert list(s)[:3] == ["version", "pid", "state"]
    assert list(s)[-1] == "uptime_s"
    assert s["resolution"] == "1280x720"  # the output's size wins over the last JPEG's
    assert s["camera_size"] == "640x480"
    assert (s["fps"], s["frames_shown"], s["frames_skipped"]) == (30.0, 5, 0)
    assert (s["frames_incomplete"], s["frames_corrupt"], s["packets"]) == (2, 0, 90)
    assert s["rejected"] == {"short": 1}
    assert s["camera_readers"] == "unknown" and s["decoding_idle"] is False
    assert fields(output={})["resolution"] == "320x240"
    assert (s["decode_errors"], s["frames_too_large"]) == (0, 0)
    hurt = fields(output={"decode_errors": 3, "frames_too_large": 2})
    assert (hurt["decode_errors"], hurt["frames_too_large"]) == (3, 2)


def test_web_and_snapshot_fields() -> None:
    web = SimpleNamespace(host="0.0.0.0", port=8031, stream_clients=2, event_clients=1)
    assert status.web_fields(web, "127.0.0.1:8031", None) == {
        "http": "0.0.0.0:8031",
        "http_error": None,
        "stream_clients": 2,
        "event_clients": 1,
    }
    assert status.web_fields(None, "off", None)["http"] == "off"
    writer = SimpleNamespace(
        taken=3, failed=1, pending=0, last_path="/s/a.jpg", last_error=None, directory="/s"
    )
    requests = SimpleNamespace(waiting=2, refused=0)
    snaps = status.snapshot_fields(writer, requests)
    assert snaps["snapshots_taken"] == 3 and snaps["snapshots_pending"] == 2
    assert snaps["snapshot_dir"] == "/s"


def line(state: str, **over: Any) -> str:
    args: dict[str, Any] = {
        "state": state,
        "device_ip": "192.168.10.123",
        "fps": 29.96,
        "output": {"camera": "/dev/video2", "readers": 0, "idle": True},
        "resolution": (1280, 720),
        "snapshots_taken": 0,
        "snapshot_error": None,
    }
    args.update(over)
    return status.status_line(**args)


def test_status_line_says_what_matters_first() -> None:
    assert line("streaming") == (
        "streaming 1280x720 at 30.0 fps to /dev/video2 (no reader, decoding idle)"
    )
    assert line("streaming", output={}, resolution=None) == "streaming ? at 30.0 fps (no camera)"
    assert line(STALLED, snapshots_taken=1) == "stalled: no frames from 192.168.10.123, 1 snapshot"
    assert line(WAITING_DEVICE, snapshots_taken=2, snapshot_error="disk full") == (
        "waiting for device at 192.168.10.123, 2 snapshots (snapshot error: disk full)"
    )
    assert line(STALLED, recording="borescope-20260101-120000.mkv") == (
        "stalled: no frames from 192.168.10.123, recording borescope-20260101-120000.mkv"
    )


def test_readers_text() -> None:
    assert status.readers_text({"readers": 1}) == "1 reader"
    assert status.readers_text({"readers": 3}) == "3 readers"
    assert status.readers_text({}) == "readers unknown"
