# SPDX-License-Identifier: GPL-3.0-or-later
"""The `borescope-bridge` command: run, simulate, snapshot, status, url, open, record, models,
demo, doctor.

Handlers for logging are chosen here and only here. Every failure the user can fix
is a BridgeError: one clear line on stderr, exit code 2 for configuration errors and
1 for everything else; clean stops (Ctrl-C, SIGTERM, no device) exit 0.

The parser and the dispatch live here; the commands live by reason to change: bridge.cli.run
(the daemon), bridge.cli.client (snapshot, status, url, open, record: talking to a running
daemon), bridge.cli.demo, bridge.cli.doctor and bridge.sim.cli. Whatever is heavy (numpy,
aiohttp, the daemon) is imported inside the command that needs it, so `--help` starts fast.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from bridge import __version__
from bridge.cli import client, models, run
from bridge.errors import BridgeError, ConfigError

PROG = "borescope-bridge"

DEMO_EXAMPLES = """\
examples:
  borescope-bridge demo
      simulated borescope + bridge on 127.0.0.1 until Ctrl-C; open the printed web page in a
      browser, or the printed /dev/video device in OBS, Cheese or `ffplay /dev/videoN`
  borescope-bridge demo --camera none --duration 10
      a scripted 10 s run without a virtual camera
  borescope-bridge demo --model spade
      the same with a simulated Spade (framing B) instead of the J103"""

SIMULATE_EXAMPLES = """\
examples:
  borescope-bridge simulate --bind 127.0.0.1 --stream-port 18030 --event-port 15000
      a fake borescope on loopback; then in another terminal:
      borescope-bridge run --device-ip 127.0.0.1 --stream-port 18030 --event-port 15000
  borescope-bridge simulate --model wf070 --bind 127.0.0.1 --stream-port 18030 --event-port 15000
      a DEPSTECH WF070 (framing B, one inverted byte per frame, key codes); then:
      borescope-bridge run --model wf070 --device-ip 127.0.0.1 --stream-port 18030 \\
          --event-port 15000
      (`borescope-bridge models` lists the models; SIGUSR1 presses the photo key)"""

DOCTOR_EXAMPLES = """\
examples:
  borescope-bridge doctor
      check v4l2loopback, permissions, the interface, the device and the service, and print
      the command that fixes each problem
  borescope-bridge doctor --capture 10
      10 s of what the scope sends (header fields and control replies, no picture data):
      paste it into a bug report for a scope that does not work"""


def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.app.systemd import setup_logging
    from bridge.sim import cli as simulator

    setup_logging(args.verbose)
    return int(simulator.main(args) or 0)


def cmd_doctor(args: argparse.Namespace) -> int:
    from bridge.cli import doctor

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


# build_parser(ALL): every subcommand with all its arguments, for the man page and the shell
# completions (bridge.cli.manual); a normal run imports only the wanted command's.
ALL = "*"


def _wants(wanted: str | None, name: str) -> bool:
    """True when the heavy argument definitions of subcommand `name` belong in this parser."""
    return wanted in (name, ALL)


def _wanted_command(argv: list[str]) -> str | None:
    """The subcommand named in argv, so only its heavy argument definitions get imported."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The full parser; subcommand-specific arguments of other modules only for `wanted`
    (ALL: every one of them, as the man page and completions need)."""
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
              borescope-bridge open        open the live view in your browser
              borescope-bridge record start   record a video (record stop ends it)
              borescope-bridge models      the scopes of the family it knows

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
        run.RUN_EXAMPLES,
    )
    run._add_run_arguments(p)
    p.set_defaults(func=run.cmd_run)

    p = _subparser(
        sub,
        "simulate",
        "play a fake borescope on UDP (for tests and demos)",
        "A faithful fake borescope of any known model (--model): streams generated JPEG "
        "video in that model's framing, answers the button poll in its form, and can inject "
        "loss, duplication, reordering, corruption, foreign packets and reboots.",
        SIMULATE_EXAMPLES,
    )
    if _wants(wanted, "simulate"):  # importing the simulator pulls in numpy: only when needed
        from bridge.sim import cli as simulator

        simulator.add_arguments(p)
    p.set_defaults(func=cmd_simulate)

    for name, help_, desc, epi, func in (
        (
            "snapshot",
            "save the next frame of the running bridge, print its path",
            "Ask the running daemon to save the next complete frame (the original JPEG bytes) "
            "and print the file's path.",
            client.SNAPSHOT_EXAMPLES,
            client.cmd_snapshot,
        ),
        (
            "status",
            "show what the running bridge is doing",
            "Show the running daemon's state and counters.",
            client.STATUS_EXAMPLES,
            client.cmd_status,
        ),
        (
            "url",
            "print the web page's address (with its access token)",
            "Print the address of the running daemon's web page (live picture, snapshot "
            "button, recent snapshots), including its access token.",
            client.URL_EXAMPLES,
            client.cmd_url,
        ),
        (
            "open",
            "open the web page in your browser (a one-time code, never the token)",
            "Open the running daemon's web page in your default browser through xdg-open, with "
            "an address that carries a one-time code (valid once, within 60 s) instead of the "
            "access token, so the token appears on no process list.",
            client.OPEN_EXAMPLES,
            client.cmd_open,
        ),
        (
            "record",
            "start or stop a recording (.mkv), or show it",
            "Start or stop a recording of the running daemon (a Matroska file of the scope's "
            "own JPEG frames, with their arrival times), or show whether one runs.",
            client.RECORD_EXAMPLES,
            client.cmd_record,
        ),
    ):
        p = _subparser(sub, name, help_, desc, epi)
        client.add_arguments(p, name)
        p.set_defaults(func=func)

    p = _subparser(
        sub,
        "models",
        "list the known scopes: framing, address, ports, phone app, evidence",
        "The scopes of the Molink family that borescope-bridge knows: each one's framing, "
        "address and ports, the phone app it replaces, the products seen with it, and whether "
        "it was confirmed on hardware or built from public descriptions.",
        models.MODELS_EXAMPLES,
    )
    models.add_arguments(p)
    p.set_defaults(func=models.cmd_models)

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
    if _wants(wanted, "doctor"):
        from bridge.cli import doctor

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
