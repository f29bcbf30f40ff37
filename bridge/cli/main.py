# SPDX-License-Identifier: GPL-3.0-or-later
"""The `borescope-bridge` command: run, simulate, snapshot, status, url, demo, doctor.

Handlers for logging are chosen here and only here. Every failure the user can fix
is a BridgeError: one clear line on stderr, exit code 2 for configuration errors and
1 for everything else; clean stops (Ctrl-C, SIGTERM, no device) exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from bridge import __version__
from bridge.errors import BridgeError, ConfigError

PROG = "borescope-bridge"

RUN_EXAMPLES = """\
examples:
  borescope-bridge run
      the borescope at 192.168.10.123 becomes the first free v4l2loopback camera
  borescope-bridge run --interface enx00e04c680001 --camera /dev/video2 --rotate 90
      a second borescope on a second USB adapter, shown upright on /dev/video2
  borescope-bridge run --camera none --record inspection.mjpeg
      no virtual camera; record every frame (play it with: ffplay -f mjpeg inspection.mjpeg)
  borescope-bridge run --http 0.0.0.0:8031
      also serve the web page to phones on the network (see `borescope-bridge url --lan`)
  borescope-bridge run --print-config
      show the effective settings (defaults < /etc/borescope-bridge/config.toml < flags)

signals: SIGUSR1 takes a snapshot, SIGHUP reloads the config file, SIGTERM/SIGINT stop cleanly.
exit status: 0 for a clean stop, also when no borescope answers within --wait seconds or it is
gone for --linger seconds; 1 for errors; 2 for invalid configuration."""

SNAPSHOT_EXAMPLES = """\
examples:
  borescope-bridge snapshot
      save the next frame of the running daemon and print the file's path
  borescope-bridge snapshot --socket /run/user/1000/borescope-bridge/control.sock
      talk to a daemon started with `run` by a user (or by `demo`)
  xdg-open "$(borescope-bridge snapshot)"
      take a snapshot and open it

The hardware button on the borescope and `kill -USR1 <pid>` take snapshots too.
exit status: 0 with the file's path on stdout; 1 with the reason on stderr: no frame within
--timeout (nothing is saved), a disk error, or a disk slower than --timeout, in which case
the frame is taken and its file, named in the message, appears once the disk has it; 2 for
an invalid --timeout."""

STATUS_EXAMPLES = """\
examples:
  borescope-bridge status
      state, resolution, fps, frame counters, latency, snapshots, camera, uptime
  borescope-bridge status --json | jq .fps
      machine-readable, for scripts and monitoring"""

URL_EXAMPLES = """\
examples:
  xdg-open "$(borescope-bridge url)"
      open the live view (picture, snapshot button, recent snapshots) in your browser
  borescope-bridge url --lan --qr
      the address a phone on the same network uses, as a QR code for its camera
  borescope-bridge url --socket /run/user/1000/borescope-bridge/control.sock
      the page of a daemon started with `run` by a user (or by `demo`)

The address contains the page's access token: share it only with people who may see the
borescope. The page listens on 127.0.0.1 unless `run --http` (config key http) says otherwise."""

DEMO_EXAMPLES = """\
examples:
  borescope-bridge demo
      simulated borescope + bridge on 127.0.0.1 until Ctrl-C; open the printed web page in a
      browser, or the printed /dev/video device in OBS, Cheese or `ffplay /dev/videoN`
  borescope-bridge demo --camera none --duration 10
      a scripted 10 s run without a virtual camera"""

SIMULATE_EXAMPLES = """\
examples:
  borescope-bridge simulate --bind 127.0.0.1 --stream-port 18030 --event-port 15000
      a fake borescope on loopback; then in another terminal:
      borescope-bridge run --device-ip 127.0.0.1 --stream-port 18030 --event-port 15000"""

DOCTOR_EXAMPLES = """\
examples:
  borescope-bridge doctor
      check v4l2loopback, permissions, the interface, the device and the service, and print
      the command that fixes each problem"""


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    from bridge.app.settings import add_run_flags

    add_run_flags(p)


RUN_KEYS = (
    "interface",
    "device_ip",
    "stream_port",
    "event_port",
    "camera",
    "snapshot_dir",
    "record",
    "control_socket",
    "rotate",
    "flip",
    "wait",
    "linger",
    "format",
    "http",
)


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from bridge.app.settings import flag_overrides

    return flag_overrides(args)


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from bridge.app import config as config_mod

    # Until the daemon installs its handlers, a reload or snapshot signal must not kill us.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    overrides = _run_overrides(args)
    cfg = config_mod.load(args.config, overrides)
    if args.print_config:
        sys.stdout.write(cfg.to_toml())
        return 0
    from bridge.app.daemon import Daemon
    from bridge.app.systemd import setup_logging

    fields: dict[str, Any] = {}
    setup_logging(args.verbose, fields)
    daemon = Daemon(
        cfg, reload_config=lambda: config_mod.load(args.config, overrides), log_fields=fields
    )
    return daemon.run()


def _socket_path(args: argparse.Namespace) -> str:
    from bridge.app.config import control_socket_candidates
    from bridge.control.server import find_socket

    return find_socket(args.socket, control_socket_candidates())


def _timeout_seconds(text: str) -> float:
    """`--timeout`: seconds, above 0 and at most the daemon's limit; anything else is an error."""
    from bridge.control.server import MAX_SNAPSHOT_TIMEOUT_S

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_SNAPSHOT_TIMEOUT_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_SNAPSHOT_TIMEOUT_S:g} seconds, not {text}"
        )
    return value


# The daemon answers a snapshot within its --timeout; this much more covers a busy socket.
SNAPSHOT_REPLY_MARGIN_S = 5.0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from bridge.control.server import request

    path = _socket_path(args)
    reply = request(
        path,
        {"cmd": "snapshot", "timeout": args.timeout},
        timeout=args.timeout + SNAPSHOT_REPLY_MARGIN_S,
    )
    if not reply.get("ok"):
        if reply.get("pending"):
            raise BridgeError(f"snapshot not saved yet: {reply.get('error')}")
        raise BridgeError(f"snapshot failed: {reply.get('error', 'unknown error')}")
    print(reply["path"])
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    from bridge.control.server import request
    from bridge.web.urls import lan_urls, loopback_only_advice, qr_text

    path = _socket_path(args)
    reply = request(path, {"cmd": "url"}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"url failed: {reply.get('error', 'unknown error')}")
    url = str(reply["url"])
    if args.lan:
        if str(reply["host"]).startswith("127."):
            raise BridgeError(loopback_only_advice(int(reply["port"])))
        urls = lan_urls(str(reply["host"]), int(reply["port"]), str(reply["token"]))
        if not urls:
            raise BridgeError(
                "this machine has no network address besides loopback: connect it to the "
                "network the phone is on"
            )
        url = urls[0]
        for other in urls[1:]:
            print(f"(also: {other})", file=sys.stderr)
    if args.qr:
        sys.stdout.write(qr_text(url))
    print(url)
    return 0


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v}{unit}"


def format_status(s: dict[str, Any]) -> str:
    """Human-readable status, aligned, one fact per line."""
    iface = s.get("interface") or (
        f"{s['device_interface']} (the route to the device)"
        if s.get("device_interface")
        else "none leads to the device yet (nothing from it is accepted)"
        if "device_interface" in s
        else "(routing decides)"
    )
    foreign = _fmt(s.get("foreign_packets"))
    if s.get("wrong_interface"):
        foreign += f" ({s['wrong_interface']} with its address on another interface: forged?)"
    rec = s.get("recording")
    if rec:
        rec_text = f"{rec['path']} ({rec['frames']} frames" + (
            f", stopped: {rec['error']})" if rec.get("error") else ")"
        )
    else:
        rec_text = "off"
    rb = s.get("receive_buffer_bytes")
    rb_text = _fmt(rb, " bytes")
    if rb is not None and s.get("receive_buffer_requested"):
        rb_text += f" (asked for {s['receive_buffer_requested']}; the kernel reports double)"
    if s.get("receive_buffer_capped"):
        rb_text += " (capped by net.core.rmem_max: raise it, see `borescope-bridge doctor`)"
    camera = s.get("camera") or "none"
    if s.get("camera_error"):
        camera += f" ({s['camera_error']})"
    elif s.get("camera"):
        readers = s.get("camera_readers", "unknown")
        camera += f" (readers: {readers}{', decoding idle' if s.get('decoding_idle') else ''})"
    http = s.get("http") or "off"
    if s.get("http_error"):
        web_text = f"not served: {s['http_error']}"
    elif http == "off":
        web_text = "off"
    else:
        n = s.get("stream_clients") or 0
        web_text = f"http://{http}/ ({n} viewer{'s' if n != 1 else ''}; `borescope-bridge url`)"
    rows = [
        ("state", s.get("state")),
        (
            "device",
            f"{s.get('device_ip')} (stream {s.get('stream_port')}, events {s.get('event_port')})",
        ),
        ("interface", iface),
        ("resolution", _fmt(s.get("resolution"))),
        ("fps", _fmt(s.get("fps"))),
        (
            "frames",
            f"received {s.get('frames_received')}, shown {s.get('frames_shown')}, "
            f"skipped {s.get('frames_skipped')}, incomplete {s.get('frames_incomplete')}, "
            f"corrupt {s.get('frames_corrupt')}",
        ),
        ("foreign packets", foreign),
        (
            "last frame",
            "never" if s.get("last_frame_age_s") is None else f"{s['last_frame_age_s']:.2f} s ago",
        ),
        (
            "latency",
            f"p50 {_fmt(s.get('latency_p50_ms'), ' ms')}, "
            f"p99 {_fmt(s.get('latency_p99_ms'), ' ms')}",
        ),
        (
            "snapshots",
            f"{s.get('snapshots_taken')} taken, {s.get('snapshots_failed')} failed"
            + (f", {s['snapshots_writing']} being written" if s.get("snapshots_writing") else "")
            + (f", {s['snapshots_refused']} refused" if s.get("snapshots_refused") else "")
            + (f", last {s['last_snapshot']}" if s.get("last_snapshot") else ""),
        ),
        ("snapshot dir", _fmt(s.get("snapshot_dir"))),
        ("camera", camera),
        ("recording", rec_text),
        ("web page", web_text),
        ("receive buffer", rb_text),
        ("uptime", f"{_fmt(s.get('uptime_s'))} s"),
    ]
    if s.get("snapshot_error"):
        rows.insert(10, ("snapshot error", s["snapshot_error"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    from bridge.control.server import request

    path = _socket_path(args)
    reply = request(path, {"cmd": "status"}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"status failed: {reply.get('error', 'unknown error')}")
    if args.json:
        print(json.dumps(reply["status"], indent=2, sort_keys=True))
    else:
        sys.stdout.write(format_status(reply["status"]))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.app.systemd import setup_logging
    from bridge.sim import server as simulator

    setup_logging(args.verbose)
    return int(simulator.main(args) or 0)


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        from bridge.cli import doctor
    except ImportError as exc:
        raise BridgeError(f"doctor is not available in this build ({exc})") from None

    return int(doctor.main(args) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.app.systemd import setup_logging
    from bridge.cli import demo

    setup_logging(args.verbose)
    return demo.main(args)


def _subparser(
    sub: Any, name: str, help_: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_,
        description=textwrap.fill(description, 90),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (debug)"
    )
    return p


def _wanted_command(argv: list[str]) -> str | None:
    """The subcommand named in argv, so only its heavy argument definitions get imported."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The full parser; subcommand-specific arguments of other modules only for `wanted`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Turns a J103/J106/J108-OTG USB borescope (a USB Ethernet device at 192.168.10.123)
            into an ordinary Linux webcam (v4l2loopback), with hardware-button snapshots."""),
        epilog=textwrap.dedent("""\
            start here:
              borescope-bridge demo        try it without a borescope (simulated device)
              borescope-bridge doctor      check the setup, with the fix for each problem
              borescope-bridge run         bridge a plugged-in borescope (the service usually does)
              borescope-bridge snapshot    save the next frame of the running bridge
              borescope-bridge status      what the running bridge is doing
              borescope-bridge url         the address of the live view in a browser

            `borescope-bridge COMMAND --help` explains each command, with examples."""),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _subparser(
        sub,
        "run",
        "bridge a borescope to a virtual webcam (the daemon)",
        "Run the bridge in the foreground: heartbeat the borescope, decode its video "
        "to a v4l2loopback camera, save snapshots on the hardware button, serve "
        "`snapshot` and `status` on a control socket. Under systemd it speaks "
        "sd_notify and logs to the journal.",
        RUN_EXAMPLES,
    )
    _add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = _subparser(
        sub,
        "simulate",
        "play a fake borescope on UDP (for tests and demos)",
        "A faithful fake borescope: streams generated JPEG video, answers the "
        "snapshot-button poll, and can inject loss, duplication, reordering, "
        "corruption, foreign packets and reboots.",
        SIMULATE_EXAMPLES,
    )
    if wanted == "simulate":  # importing the simulator pulls in OpenCV: only when needed
        from bridge.sim import server as simulator

        simulator.add_arguments(p)
    p.set_defaults(func=cmd_simulate)

    for name, help_, desc, epi, func in (
        (
            "snapshot",
            "save the next frame of the running bridge, print its path",
            "Ask the running daemon to save the next complete frame (the original JPEG bytes) "
            "and print the file's path.",
            SNAPSHOT_EXAMPLES,
            cmd_snapshot,
        ),
        (
            "status",
            "show what the running bridge is doing",
            "Show the running daemon's state and counters.",
            STATUS_EXAMPLES,
            cmd_status,
        ),
        (
            "url",
            "print the web page's address (with its access token)",
            "Print the address of the running daemon's web page (live picture, snapshot "
            "button, recent snapshots), including its access token.",
            URL_EXAMPLES,
            cmd_url,
        ),
    ):
        p = _subparser(sub, name, help_, desc, epi)
        p.add_argument(
            "--socket",
            metavar="PATH",
            help="the daemon's control socket (default: found in $RUNTIME_DIRECTORY, "
            "$XDG_RUNTIME_DIR/borescope-bridge, /run/borescope-bridge or "
            "${TMPDIR:-/tmp}/borescope-bridge-UID)",
        )
        p.add_argument(
            "--timeout",
            type=_timeout_seconds,
            default=5.0,
            metavar="S",
            help="give up after S seconds (default 5, at most 300)"
            + (
                "; a snapshot whose frame was taken is still saved if the disk is slower, "
                "and the error names its file"
                if name == "snapshot"
                else ""
            ),
        )
        if name == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "url":
            p.add_argument(
                "--lan",
                action="store_true",
                help="the address for another device on the network (a phone), not 127.0.0.1",
            )
            p.add_argument("--qr", action="store_true", help="also draw the address as a QR code")
        p.set_defaults(func=func)

    p = _subparser(
        sub,
        "demo",
        "try it without a borescope: simulator + bridge on loopback",
        "Start a simulated borescope and the bridge on 127.0.0.1, with the virtual "
        "camera if one is available and the web page (on port 8031, or a free one if that "
        "is taken), and explain where to look. Runs until Ctrl-C.",
        DEMO_EXAMPLES,
    )
    from bridge.cli.demo import add_arguments as demo_arguments

    demo_arguments(p)
    p.set_defaults(func=cmd_demo)

    p = _subparser(
        sub,
        "doctor",
        "check the setup and print the fix for each problem",
        "Check the v4l2loopback module and device, permissions, the interface and "
        "its address, the device's reachability, the default route and the "
        "service, and print the command that fixes each finding.",
        DOCTOR_EXAMPLES,
    )
    if wanted == "doctor":
        try:
            from bridge.cli import doctor
        except ImportError:
            pass  # cmd_doctor reports it
        else:
            doctor.add_arguments(p)
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `borescope-bridge` command; returns the exit code."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_wanted_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    if not hasattr(args, "verbose"):
        args.verbose = 0
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
