# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge doctor`: check everything between the USB plug and the webcam app.

Each check reads the system the way the daemon and the apps will meet it (sysfs, procfs,
/dev, systemctl, modinfo) and returns findings: OK, WARN (works, but something a user would
notice) or FAIL (the camera cannot work this way), each with the one command that fixes it.
The exit status is 0 when nothing FAILs, so scripts can gate on it.

Every file system path hangs off `root` and every external command goes through `runner`,
so tests run the checks against fake trees (bridge.cli.doctor.context). The checks live by
subject in camera, network (the only one that sends anything, and only to the borescope) and
service; this module runs them in order and prints the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from bridge.cli.doctor.camera import check_camera, check_module, check_module_version
from bridge.cli.doctor.context import FAIL, OK, WARN, Context, Finding, run_command
from bridge.cli.doctor.network import (
    check_default_route,
    check_interfaces,
    check_reachability,
    check_rmem,
)
from bridge.cli.doctor.service import (
    check_config,
    check_service,
    check_snapshots,
    check_udev_rule,
    check_wifi_hook,
)
from bridge.core.protocol import DEVICE_IP, EVENT_PORT, STREAM_PORT
from bridge.errors import BridgeError

__all__ = ["FAIL", "OK", "WARN", "Context", "Finding", "main", "run_checks", "run_command"]

CHECKS: tuple[Callable[[Context], list[Finding]], ...] = (
    check_module,
    check_module_version,
    check_camera,
    check_interfaces,
    check_reachability,
    check_default_route,
    check_rmem,
    check_service,
    check_udev_rule,
    check_wifi_hook,
    check_config,
    check_snapshots,
)


def run_checks(ctx: Context) -> list[Finding]:
    """All checks in order; interface findings feed the reachability and route checks."""
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(ctx))
    return findings


# ---- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `borescope-bridge doctor`."""
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--device-ip",
        help=f"the borescope's address (default: device_ip from the config file, else {DEVICE_IP})",
    )
    parser.add_argument(
        "--event-port",
        type=int,
        help=f"its event port (default: event_port from the config file, else {EVENT_PORT})",
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="send nothing to the device, only look at this machine",
    )
    parser.add_argument(
        "--capture",
        type=float,
        metavar="SECONDS",
        help="instead of the checks: listen to the scope for SECONDS and print the header "
        "fields and control replies it sends (no picture data), for a bug report",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="with --capture: only this model's address and port (default: every model's)",
    )
    parser.add_argument(
        "--stream-port",
        type=int,
        help="with --capture: only this video port (default: every known one)",
    )
    parser.add_argument("--interface", help="with --capture: the interface that leads to the scope")
    parser.add_argument(
        "--root",
        default="/",
        help="look at sysfs, procfs, /dev and /etc under this directory (tests)",
    )


def format_text(findings: Sequence[Finding]) -> str:
    """Aligned report, the fix under each finding that is not OK."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        lines.append(f"{f.status:<4}  {f.check:<{width}}  {f.message}")
        if f.fix and f.status != OK:
            lines.append(f"      {'':<{width}}  fix: {f.fix}")
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    lines.append(f"{fails} failed, {warns} warnings, {len(findings) - fails - warns} ok")
    return "\n".join(lines) + "\n"


def _configured(root: Path) -> dict[str, object]:
    """The device address and port the service would use: the config file's, where valid."""
    from bridge.app import config

    path = root / "etc/borescope-bridge/config.toml"
    try:
        return config.read_config_file(str(path)) if path.is_file() else {}
    except BridgeError:
        return {}  # check_config reports the broken file


def _capture(args: argparse.Namespace, configured: dict[str, object]) -> int:
    from bridge.cli.doctor.capture import run_capture
    from bridge.core import models
    from bridge.device.probe import make_plan

    seconds = args.capture
    if not 0 < seconds <= 600:
        sys.stderr.write("doctor --capture: SECONDS must be above 0 and at most 600\n")
        return 2
    model = (getattr(args, "model", None) or models.AUTO).lower()
    if model != models.AUTO and models.find(model) is None:
        sys.stderr.write(
            f"doctor --model: unknown model {model!r} (see `borescope-bridge models`)\n"
        )
        return 2
    plan = make_plan(
        model,
        getattr(args, "device_ip", None) or str(configured.get("device_ip", DEVICE_IP)),
        getattr(args, "stream_port", None) or STREAM_PORT,
        getattr(args, "event_port", None) or int(str(configured.get("event_port", EVENT_PORT))),
    )
    sys.stdout.write(run_capture(plan, getattr(args, "interface", None), seconds))
    return 0


def main(args: argparse.Namespace) -> int:
    """Run every check, print the report; 0 when nothing FAILs."""
    root = Path(getattr(args, "root", "/") or "/")
    configured = _configured(root)
    if getattr(args, "capture", None) is not None:
        return _capture(args, configured)
    ctx = Context(
        root=root,
        device_ip=getattr(args, "device_ip", None) or str(configured.get("device_ip", DEVICE_IP)),
        event_port=getattr(args, "event_port", None)
        or int(str(configured.get("event_port", EVENT_PORT))),
        probe=not getattr(args, "no_probe", False),
    )
    findings = run_checks(ctx)
    failed = any(f.status == FAIL for f in findings)
    if getattr(args, "json", False):
        sys.stdout.write(
            json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2)
            + "\n"
        )
    else:
        sys.stdout.write(format_text(findings))
    return 1 if failed else 0
