# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge run`: the daemon's flags, and starting it with the effective settings."""

from __future__ import annotations

import argparse
import sys
from typing import Any

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


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("device")
    g.add_argument(
        "--interface",
        metavar="IFACE",
        help="bind to this network interface (for a second borescope on a second "
        "adapter, or a LAN that is 192.168.10.0/24 too); default: the interface the kernel "
        "routes the device's address through. Datagrams from the device count only if they "
        "arrive on it",
    )
    g.add_argument(
        "--device-ip", metavar="ADDR", help="the borescope's address (default 192.168.10.123)"
    )
    g.add_argument(
        "--stream-port",
        type=int,
        metavar="PORT",
        help="UDP port for heartbeat and video (default 8030)",
    )
    g.add_argument(
        "--event-port",
        type=int,
        metavar="PORT",
        help="UDP port for the snapshot button (default 50000)",
    )
    g.add_argument(
        "--wait",
        type=float,
        metavar="S",
        help="exit 0 when no borescope answers within S seconds (default 30; 0 = wait forever)",
    )
    g.add_argument(
        "--linger",
        type=float,
        metavar="S",
        help="exit 0 after the borescope has been gone for S seconds (default 600; "
        "0 = stay forever)",
    )
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--camera",
        metavar="auto|none|/dev/videoN",
        help='v4l2loopback device: "auto" (default: the one labelled Borescope, else '
        'the first free one), a device path, or "none"',
    )
    g.add_argument(
        "--format",
        choices=("raw", "mjpeg"),
        help="what the camera gets: raw decoded YUV (default, every app) or the "
        "device's MJPEG as is (no decoding; no rotate/flip)",
    )
    g.add_argument(
        "--rotate",
        type=int,
        choices=(0, 90, 180, 270),
        help="rotate the camera picture clockwise (default 0)",
    )
    g.add_argument(
        "--flip",
        choices=("none", "horizontal", "vertical"),
        help="mirror the camera picture (default none)",
    )
    g.add_argument(
        "--snapshot-dir",
        metavar="DIR",
        help="where snapshots go (default: $STATE_DIRECTORY/snapshots or "
        "/var/lib/borescope-bridge/snapshots for the service, "
        "~/Pictures/Borescope for a user)",
    )
    g.add_argument(
        "--record",
        metavar="FILE",
        help="append every frame to FILE as raw MJPEG (play: ffplay -f mjpeg FILE)",
    )
    g = p.add_argument_group("daemon")
    g.add_argument(
        "--control-socket",
        metavar="PATH",
        help="Unix socket for `snapshot` and `status` (default: "
        "$RUNTIME_DIRECTORY/control.sock, /run/borescope-bridge/control.sock "
        "for root, $XDG_RUNTIME_DIR/borescope-bridge/control.sock for a user, else "
        "${TMPDIR:-/tmp}/borescope-bridge-UID/control.sock, which must be yours, mode 0700)",
    )
    g.add_argument(
        "--http",
        metavar="HOST:PORT|off",
        help="where the web page listens (default 127.0.0.1:8031: this machine only; "
        "0.0.0.0:8031 for phones on the network; off to turn it off)",
    )
    g.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default /etc/borescope-bridge/config.toml if it "
        "exists); flags override it",
    )
    g.add_argument(
        "--print-config", action="store_true", help="print the effective settings as TOML and exit"
    )


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
    return {k: getattr(args, k) for k in RUN_KEYS}


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
