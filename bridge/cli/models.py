# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge models`: the known scopes of the family, from bridge.core.models."""

from __future__ import annotations

import argparse
import json
import sys

from bridge.core.models import MODELS, Model

MODELS_EXAMPLES = """\
examples:
  borescope-bridge models
      the table: name, framing, address, ports, the phone app it replaces, products, evidence
  borescope-bridge models --json
      the same as JSON, with the public sources of each row
  borescope-bridge run --model wf070
      skip the probe and talk to a DEPSTECH WF070 at once"""

_COLUMNS = ("model", "framing", "address", "ports", "phone app", "products", "evidence")


def _row(m: Model) -> tuple[str, ...]:
    evidence = "confirmed on hardware" if m.confirmed else "from public descriptions"
    return (m.name, m.framing, m.address, m.ports, m.app, m.products, evidence)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (with the sources) instead")


def table() -> str:
    """The text table, one model a line, columns padded to fit."""
    rows = [_COLUMNS, *(_row(m) for m in MODELS)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def cmd_models(args: argparse.Namespace) -> int:
    if args.json:
        out = [
            {
                "name": m.name,
                "framing": str(m.framing),
                "address": m.address,
                "video_port": m.video_port,
                "video_transport": "tcp" if m.framing == "C" else "udp",
                "event_port": m.event_port,
                "buttons": str(m.buttons),
                "phone_app": m.app,
                "products": m.products,
                "confirmed_on_hardware": m.confirmed,
                "sources": list(m.sources),
            }
            for m in MODELS
        ]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    sys.stdout.write(table())
    sys.stdout.write(
        "\n`run` finds the model by itself (model = auto); `run --model NAME` skips the probe.\n"
        "`simulate --model NAME` and `demo --model NAME` play any of them without hardware.\n"
    )
    return 0
