# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge demo`: a simulated borescope and the real bridge, on loopback, in one process.

This is what `make demo` runs on a machine with no borescope: the simulator binds
127.0.0.1 on free ports, the daemon talks to it exactly as it would to the device,
and the user is told where the picture is and how to take a snapshot. The web page is where a
newcomer without v4l2loopback sees the picture: on 127.0.0.1:8031, or a free port if that
one is taken (by the service, say).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bridge.errors import CameraError

STATUS_EVERY_S = 3.0
DEMO_HTTP = "127.0.0.1:8031"
DEMO_HTTP_FALLBACK = "127.0.0.1:0"  # a free port, when the service (say) has 8031


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bridge.core import models

    p.add_argument(
        "--model",
        type=str.lower,
        choices=models.NAMES,
        default="j103",
        help="which scope to simulate (default j103; `borescope-bridge models` lists them)",
    )
    p.add_argument(
        "--camera",
        default="auto",
        metavar="auto|none|/dev/videoN",
        help='virtual camera (default "auto": used if v4l2loopback is loaded, '
        "otherwise the demo runs without one)",
    )
    p.add_argument(
        "--format",
        choices=("raw", "mjpeg"),
        default="raw",
        help="what the camera gets (default raw)",
    )
    p.add_argument(
        "--resolution",
        default="1280x720",
        metavar="WxH",
        help="simulated video size: 640x480, 1280x720 or 1920x1080 (default 1280x720)",
    )
    p.add_argument("--fps", type=float, default=30.0, help="simulated frame rate (default 30)")
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR",
        help="where snapshots go (default: a new folder under /tmp, printed)",
    )
    p.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )


def _pick_camera(spec: str) -> tuple[str, str | None]:
    """(camera spec for the daemon, a note for the user when falling back to none)."""
    if spec == "none":
        return "none", None
    try:
        from bridge.camera.loopback import find_camera

        path = find_camera(spec)
    except CameraError as exc:
        if spec != "auto":
            raise
        return "none", str(exc)
    return (path or "none"), None


def _parse_resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise CameraError(f"--resolution {text!r}: use WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def _say(text: str = "") -> None:
    print(text, flush=True)


def main(args: argparse.Namespace) -> int:
    from bridge.app import config as config_mod
    from bridge.app.daemon import Daemon
    from bridge.sim.server import Simulator, SimulatorConfig

    work = Path(tempfile.mkdtemp(prefix="borescope-demo-"))
    snapshot_dir = args.snapshot_dir or str(work / "snapshots")
    camera, note = _pick_camera(args.camera)
    sim = Simulator(
        SimulatorConfig(
            model=args.model,
            bind="127.0.0.1",
            stream_port=0,
            event_port=0,
            resolution=_parse_resolution(args.resolution),
            fps=args.fps,
        )
    )
    sim.start()
    try:
        cfg = config_mod.Config(
            model=args.model,
            device_ip="127.0.0.1",
            stream_port=sim.stream_port,
            event_port=sim.event_port,
            camera=camera,
            format=args.format,
            snapshot_dir=snapshot_dir,
            control_socket=str(work / "control.sock"),
            wait=10.0,
            linger=0.0,
            fps_hint=args.fps,
            http=DEMO_HTTP,
        )
        # A fresh token per demo, kept with the demo's other files (not in the user's state).
        daemon = Daemon(cfg, state_dir=str(work), http_fallback=DEMO_HTTP_FALLBACK)
        # SIGUSR2 presses the simulated borescope's button: the real hardware-button path.
        signal.signal(signal.SIGUSR2, lambda *_: sim.press_button(1))
        _explain(cfg, camera, note)
        stop = threading.Event()
        threading.Thread(
            target=_status_printer, args=(daemon, stop), name="demo-status", daemon=True
        ).start()
        if args.duration:
            timer = threading.Timer(args.duration, daemon.session.request_stop)
            timer.daemon = True
            timer.start()
        try:
            return daemon.run()
        finally:
            stop.set()
            _say(f"demo stopped; snapshots (if any) are in {snapshot_dir}")
    finally:
        sim.stop()


def _explain(cfg: Any, camera: str, note: str | None) -> None:
    sock = cfg.control_socket
    _say(
        f"borescope-bridge demo: a simulated borescope (model {cfg.model}) on 127.0.0.1 "
        f"(ports {cfg.stream_port}/{cfg.event_port}) and the bridge, in this process."
    )
    if camera != "none":
        _say(
            f"  the picture:     {camera}: open it in OBS (Video Capture Device), Cheese, "
            f"a browser video call, or `ffplay {camera}`"
        )
    else:
        _say(
            "  the picture:     in the web page (its address follows); no virtual camera"
            + (
                f"\n                   ({note})"
                if note
                else "\n                   (load one "
                "with: sudo modprobe v4l2loopback exclusive_caps=1 card_label=Borescope)"
            )
        )
    _say(f"  take a snapshot: borescope-bridge snapshot --socket {sock}")
    _say(f"  press the (simulated) borescope button: kill -USR2 {os.getpid()}")
    _say(f"  status:          borescope-bridge status --socket {sock}")
    _say(f"  snapshots go to: {cfg.snapshot_dir}")
    _say("  stop:            Ctrl-C")
    _say()


def _status_printer(daemon: Any, stop: threading.Event) -> None:
    while daemon.web is None and daemon.web_error is None and not stop.wait(0.05):
        pass
    if daemon.web is not None:
        _say(f"\n  the web page:    {daemon.web.url}")
        sock = daemon.config.control_socket
        _say(f"                   (xdg-open it; or: borescope-bridge url --socket {sock})")
    elif daemon.web_error:
        _say(f"  the web page:    not available: {daemon.web_error}")
    while not stop.wait(STATUS_EVERY_S):
        try:
            line = daemon.status_line()
        except Exception:  # status is best effort; the demo must keep going
            continue
        print(f"[demo] {line}", file=sys.stdout, flush=True)
