# SPDX-License-Identifier: GPL-3.0-or-later
"""What every doctor check is given and returns: the Context it looks through, its Findings.

Every file system path hangs off `root` and every external command goes through `runner`,
so tests run the checks against fake trees.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.core.protocol import DEVICE_IP, EVENT_PORT

OK, WARN, FAIL = "OK", "WARN", "FAIL"
PROBE_TIMEOUT_S = 0.5

Runner = Callable[[Sequence[str]], tuple[int, str]]
Prober = Callable[[str, int, float], bool]
AddressLookup = Callable[[str], list[str]]


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    check: str
    status: str
    message: str
    fix: str = ""


@dataclass
class Context:
    """Where the checks look; tests replace every field."""

    root: Path = Path("/")
    runner: Runner | None = None
    prober: Prober | None = None
    addresses: AddressLookup | None = None
    device_ip: str = DEVICE_IP
    event_port: int = EVENT_PORT
    probe: bool = True
    probe_timeout_s: float = PROBE_TIMEOUT_S
    # Filled in by check_interfaces, read by the checks after it.
    borescope_ifaces: dict[str, list[str]] = field(default_factory=dict)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        return (self.runner or run_command)(argv)


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run a command briefly; (127, "") when it does not exist."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return 127, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return 126, str(exc)
    return proc.returncode, proc.stdout


def read_text(path: Path) -> str | None:
    """A file's stripped text; None when it cannot be read (a missing file is a finding)."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None
