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
  borescope-bridge run --interface enx00e04c680001 --rotate 90
      one instance per borescope (several at once): its own camera ("Borescope 2" when
      "Borescope" is taken), web port, control socket and snapshot names; shown upright
      (the service does this: borescope-bridge@enx00e04c680001, docs/several-scopes.md)
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
    """The `run` flags, with their help, from the one settings table."""
    from bridge.app.settings import add_run_flags

    add_run_flags(p)


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
