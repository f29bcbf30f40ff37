# SPDX-License-Identifier: GPL-3.0-or-later
"""What `borescope-bridge status` and systemd's STATUS= say, built from the parts' stats.

Pure functions of data: the daemon gathers each part's figures (session, reassembler,
output, snapshots, web page) and these turn them into the status fields scripts read and the
one line a person reads first. Nothing here touches a part, so any of it is testable alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.device.session import STALLED, STREAMING, WAITING_DEVICE, WAITING_NETWORK

FPS_WINDOW_S = 2.0


def fps(frame_times: Iterable[float], now: float, window_s: float = FPS_WINDOW_S) -> float:
    """Frames per second over the recent arrival times; 0 once the newest is older than a window."""
    times = list(frame_times)
    if len(times) < 2:
        return 0.0
    span = times[-1] - times[0]
    if span <= 0 or now - times[-1] > window_s:
        return 0.0
    return (len(times) - 1) / span


def size_text(size: tuple[int, int] | None) -> str | None:
    return f"{size[0]}x{size[1]}" if size else None


def readers_text(out: Mapping[str, Any]) -> str:
    """ "1 reader", "no reader, decoding idle", "readers unknown" (the module cannot tell)."""
    n = out.get("readers", "unknown")
    if not isinstance(n, int):
        return "readers unknown"
    text = "no reader" if n == 0 else f"{n} reader{'s' if n != 1 else ''}"
    return text + (", decoding idle" if out.get("idle") else "")


def status_fields(
    *,
    head: Mapping[str, Any],
    session: Mapping[str, Any],
    reassembly: Mapping[str, Any],
    output: Mapping[str, Any],
    resolution: tuple[int, int] | None,
    fps: float,
    frames_received: int,
    settings: Mapping[str, Any],
    presses: int,
    buttons: Mapping[str, Any],
    snapshots: Mapping[str, Any],
    tail: Mapping[str, Any],
) -> dict[str, Any]:
    """The status dict, field by field in the order `status --json` prints them.

    `head` leads (version, pid); `settings` holds format, rotate and flip; `snapshots` the
    snapshot_* fields; `tail` the rest (recording, sockets, web page, uptime).
    """
    s: dict[str, Any] = dict(head)
    s.update(session)
    res = output.get("resolution") or resolution
    s.update(
        {
            "resolution": size_text(res),
            "fps": round(fps, 1),
            "frames_received": frames_received,
            "frames_shown": output.get("shown", 0),
            "frames_skipped": output.get("skipped", 0),
            "frames_incomplete": reassembly.get("incomplete", 0),
            "frames_corrupt": reassembly.get("corrupt", 0),
            "decode_errors": output.get("decode_errors", 0),
            "frames_too_large": output.get("frames_too_large", 0),
            "duplicate_fragments": reassembly.get("duplicates", 0),
            "packets": reassembly.get("packets", 0),
            "rejected": reassembly.get("rejected", {}),
            "latency_p50_ms": output.get("latency_p50_ms"),
            "latency_p99_ms": output.get("latency_p99_ms"),
            "camera": output.get("camera"),
            "camera_size": size_text(output.get("camera_size")),
            "frames_fitted": output.get("fitted", 0),
            "camera_error": output.get("camera_error"),
            "camera_readers": output.get("readers", "unknown"),
            "decoding_idle": bool(output.get("idle", False)),
        }
    )
    s.update(settings)
    s["button_presses"] = presses
    s["buttons"] = dict(buttons)
    s.update(snapshots)
    s.update(tail)
    return s


def snapshot_fields(writer: Any, requests: Any) -> dict[str, Any]:
    """The snapshot_* fields from the SnapshotWriter (files) and Snapshots (waiting requests)."""
    return {
        "snapshots_taken": writer.taken,
        "snapshots_failed": writer.failed,
        "snapshots_pending": requests.waiting,
        "snapshots_writing": writer.pending,
        "snapshots_refused": requests.refused,
        "last_snapshot": writer.last_path,
        "snapshot_error": writer.last_error,
        "snapshot_dir": writer.directory,
    }


def web_fields(web: Any, http: str, web_error: str | None) -> dict[str, Any]:
    """The web page's fields: where it listens (or the setting, when it does not), clients."""
    return {
        "http": f"{web.host}:{web.port}" if web is not None else http,
        "http_error": web_error,
        "stream_clients": web.stream_clients if web is not None else 0,
        "event_clients": web.event_clients if web is not None else 0,
    }


def status_line(
    *,
    state: str,
    device_ip: str,
    fps: float,
    output: Mapping[str, Any],
    resolution: tuple[int, int] | None,
    snapshots_taken: int,
    snapshot_error: str | None,
    recording: str | None = None,
) -> str:
    """One line for STATUS= and the demo: what a person wants to know first (`recording`:
    the name of the running recording)."""
    tail = f", {snapshots_taken} snapshot{'s' if snapshots_taken != 1 else ''}"
    tail = tail if snapshots_taken else ""
    if recording:
        tail += f", recording {recording}"
    if snapshot_error:
        tail += f" (snapshot error: {snapshot_error})"
    if state == STREAMING:
        res = output.get("resolution") or resolution
        size = size_text(res) or "?"
        camera = output.get("camera")
        target = f"to {camera}" if camera else "(no camera)"
        if camera:
            target += f" ({readers_text(output)})"
        return f"streaming {size} at {fps:.1f} fps {target}{tail}"
    if state == STALLED:
        return f"stalled: no frames from {device_ip}{tail}"
    if state == WAITING_NETWORK:
        return f"waiting for network: no route to {device_ip} yet{tail}"
    if state == WAITING_DEVICE:
        return f"waiting for device at {device_ip}{tail}"
    return f"{state}{tail}"


def instance_links(statuses: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """What the page needs to link to the other instances: interface, host, port, state.

    Only instances whose page is served; the token is not repeated (instances of one
    installation share the state directory, and with it the token the page already has).
    """
    out = []
    for interface, s in statuses:
        http = s.get("http")
        if not isinstance(http, str) or s.get("http_error") or http == "off":
            continue
        host, _, port = http.rpartition(":")
        if not port.isdigit():
            continue
        out.append(
            {"interface": interface, "host": host, "port": int(port), "state": s.get("state")}
        )
    return out
