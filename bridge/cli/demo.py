# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge demo`: a simulated borescope and the real bridge, on loopback, in one process.

This is what `make demo` runs on a machine with no borescope: the simulator binds
127.0.0.1 on free ports, the daemon talks to it exactly as it would to the device,
and the user is told where the picture is and how to take a snapshot. The web page is where a
newcomer without v4l2loopback sees the picture: on 127.0.0.1:8031, or a free port if that
one is taken (by the service, say); `--lan` puts it on the network for a phone.

Every command line printed here runs as printed (bridge.cli.command spells the program the way
it was started), and the control socket sits in the user's well-known demo place
(bridge.app.paths.demo_control_socket), so `status`, `snapshot` and `url` find the demo
without --socket.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bridge.cli.command import command_line
from bridge.errors import CameraError

STATUS_EVERY_S = 3.0
DEMO_HTTP = "127.0.0.1:8031"
DEMO_HTTP_FALLBACK = "127.0.0.1:0"  # a free port, when the service (say) has 8031
DEMO_HTTP_LAN = "0.0.0.0:8031"
DEMO_HTTP_LAN_FALLBACK = "0.0.0.0:0"
# The simulator's picture sizes (bridge.sim.cli.RESOLUTIONS); spelled out here so `--help`
# need not import the simulator, and a unit test holds the two equal.
RESOLUTIONS = ("640x480", "1280x720", "1920x1080")


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
        choices=RESOLUTIONS,
        default="1280x720",
        help="simulated video size (default 1280x720)",
    )
    p.add_argument("--fps", type=float, default=30.0, help="simulated frame rate (default 30)")
    p.add_argument(
        "--snapshot-dir",
        metavar="DIR",
        help="where snapshots go (default: a new folder under /tmp, printed)",
    )
    p.add_argument(
        "--lan",
        action="store_true",
        help="serve the web page on the network too (0.0.0.0), for a phone: prints its address "
        "and a QR code. Plain HTTP: use it on a network you trust",
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
    w, h = (int(x) for x in text.split("x"))
    return w, h


def _demo_socket(work: Path) -> str:
    """The well-known demo socket, unless another demo of this user holds it: then one in the
    demo's own folder (printed with --socket)."""
    from bridge.app.paths import demo_control_socket
    from bridge.control.client import is_listening

    sock = demo_control_socket()
    if os.path.exists(sock) and is_listening(sock):
        return str(work / "control.sock")
    return sock


def _needs_socket_flag(sock: str) -> bool:
    """True when the client verbs would not find `sock` on their own: another daemon's socket
    is there too (the service, a user's run), or the demo is not in its well-known place."""
    from bridge.app.paths import control_socket_candidates, demo_control_socket
    from bridge.control.client import is_listening

    if sock != demo_control_socket():
        return True
    others = [p for p in control_socket_candidates() if p != sock and os.path.exists(p)]
    return any(is_listening(p) for p in others)


def _say(text: str = "") -> None:
    print(text, flush=True)


def main(args: argparse.Namespace) -> int:
    from bridge.app import config as config_mod
    from bridge.app.daemon import Daemon
    from bridge.sim.server import Simulator, SimulatorConfig

    work = Path(tempfile.mkdtemp(prefix="borescope-demo-"))
    snapshot_dir = args.snapshot_dir or str(work / "snapshots")
    camera, note = _pick_camera(args.camera)
    sock = _demo_socket(work)
    lan = bool(getattr(args, "lan", False))
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
            recordings_dir=str(work / "recordings"),
            control_socket=sock,
            wait=10.0,
            linger=0.0,
            fps_hint=args.fps,
            http=DEMO_HTTP_LAN if lan else DEMO_HTTP,
        )
        # A fresh token per demo, kept with the demo's other files (not in the user's state).
        daemon = Daemon(
            cfg,
            state_dir=str(work),
            http_fallback=DEMO_HTTP_LAN_FALLBACK if lan else DEMO_HTTP_FALLBACK,
        )
        # SIGUSR2 presses the simulated borescope's button: the real hardware-button path.
        signal.signal(signal.SIGUSR2, lambda *_: sim.press_button(1))
        cmd = command_line()
        socket_flag = f" --socket {shlex.quote(sock)}" if _needs_socket_flag(sock) else ""
        _explain(cfg, camera, note, cmd, socket_flag)
        stop = threading.Event()
        threading.Thread(
            target=_status_printer,
            args=(daemon, stop, cmd, socket_flag, lan),
            name="demo-status",
            daemon=True,
        ).start()
        if args.duration:
            timer = threading.Timer(args.duration, daemon.session.request_stop)
            timer.daemon = True
            timer.start()
        try:
            return daemon.run()
        finally:
            stop.set()
            _say(
                f"demo stopped; snapshots (if any) are in {snapshot_dir}, "
                f"recordings in {cfg.recordings_dir}"
            )
    finally:
        sim.stop()


def _explain(cfg: Any, camera: str, note: str | None, cmd: str, socket_flag: str) -> None:
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
    _say(f"  take a snapshot: {cmd} snapshot{socket_flag}")
    _say(f"  press the (simulated) borescope button: kill -USR2 {os.getpid()}")
    _say(f"  status:          {cmd} status{socket_flag}")
    _say(f"  snapshots go to: {cfg.snapshot_dir}")
    _say(f"  record a clip:   {cmd} record start{socket_flag} (then: record stop)")
    _say(f"  clips go to:     {cfg.recordings_dir}")
    _say("  stop:            Ctrl-C")
    _say()


def _status_printer(
    daemon: Any, stop: threading.Event, cmd: str, socket_flag: str, lan: bool
) -> None:
    while daemon.web is None and daemon.web_error is None and not stop.wait(0.05):
        pass
    if daemon.web is not None:
        _say(f"\n  the web page:    {daemon.web.url}")
        _say(
            f"                   (open it in your browser: {cmd} open{socket_flag}; "
            f"or: {cmd} url{socket_flag})"
        )
        if lan:
            _explain_lan(daemon.web)
    elif daemon.web_error:
        _say(f"  the web page:    not available: {daemon.web_error}")
    while not stop.wait(STATUS_EVERY_S):
        try:
            line = daemon.status_line()
        except Exception:  # status is best effort; the demo must keep going
            continue
        print(f"[demo] {line}", file=sys.stdout, flush=True)


def _explain_lan(web: Any) -> None:
    """The phone's address, its QR code, and what plain HTTP on a network means."""
    from bridge.web.urls import lan_urls, qr_text

    urls = lan_urls(web.host, web.port, f"token={web.token}")
    if not urls:
        _say(
            "  for a phone:     this machine has no network address besides loopback: "
            "connect it to the network the phone is on, then start the demo again"
        )
        return
    _say(f"  for a phone:     {urls[0]}")
    for other in urls[1:]:
        _say(f"                   (also: {other})")
    _say("                   point the phone's camera at this code (same network as this machine):")
    sys.stdout.write(qr_text(urls[0]))
    _say(
        f"  note: the page on the network is plain HTTP on port {web.port}: anyone on this "
        "network who sees a request to it can take its token. Use it on a network you trust; "
        "a firewall on this machine (ufw, firewalld) may need that port opened."
    )
    sys.stdout.flush()
