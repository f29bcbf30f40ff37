# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped unit file read as systemd reads it, for the tests that check its settings."""

from __future__ import annotations

import re

from support.paths import REPO

UNIT = REPO / "systemd" / "borescope-bridge.service"


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """[Section] -> key -> values, in order (systemd allows repeated keys)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def unit_limits() -> tuple[int, int]:
    """(TasksMax, MemoryMax in bytes) from the shipped unit."""
    svc = unit_settings(UNIT.read_text())["Service"]
    m = re.fullmatch(r"(\d+)([KMG])", svc["MemoryMax"][0])
    assert m, svc["MemoryMax"]
    memory = int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)]
    return int(svc["TasksMax"][0]), memory
