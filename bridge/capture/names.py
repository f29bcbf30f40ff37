# SPDX-License-Identifier: GPL-3.0-or-later
"""The snapshot and recording file names: made here and recognised here, so the two never
drift apart.

Snapshots: borescope-YYYYMMDD-HHMMSS-mmm.jpg; recordings: borescope-YYYYMMDD-HHMMSS.mkv; both
in local time, with ``-N`` added when another file already has the name (two snapshots in the
same millisecond, two recordings started in the same second). An instance for one interface of
several (`run --interface IF`) puts the interface in: borescope-IF-YYYYMMDD-HHMMSS-mmm.jpg and
borescope-IF-YYYYMMDD-HHMMSS.mkv, so the files say which scope took them even in a shared folder.
"""

from __future__ import annotations

import re
import time

# Exactly the names snapshot_name produces, with the -N suffix a clash adds (1 to 9999).
# fullmatch, ASCII digits: "$" would allow a trailing newline, "\d" other scripts' digits.
SNAPSHOT_NAME = re.compile(
    r"borescope-(?:[A-Za-z0-9_.-]{1,15}-)?[0-9]{8}-[0-9]{6}-[0-9]{3}(?:-[0-9]{1,4})?\.jpg"
)
# Exactly the names recording_name produces, with the -N suffix a clash adds (1 to 99).
RECORDING_NAME = re.compile(
    r"borescope-(?:[A-Za-z0-9_.-]{1,15}-)?[0-9]{8}-[0-9]{6}(?:-[0-9]{1,2})?\.mkv"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def instance_tag(interface: str) -> str:
    """The interface as it goes into a file name: at most 15 safe characters (`ip link` names
    may hold others, which become "_")."""
    return _UNSAFE.sub("_", interface)[:15]


def snapshot_name(wall_time: float, instance: str | None = None) -> str:
    """borescope-YYYYMMDD-HHMMSS-mmm.jpg in local time; borescope-IF-... for an instance."""
    millis = round(wall_time * 1000)
    lt = time.localtime(millis // 1000)
    ms = millis % 1000
    head = f"borescope-{instance_tag(instance)}-" if instance else "borescope-"
    return head + time.strftime("%Y%m%d-%H%M%S", lt) + f"-{ms:03d}.jpg"


def recording_name(wall_time: float, instance: str | None = None) -> str:
    """borescope-YYYYMMDD-HHMMSS.mkv in local time; borescope-IF-... for an instance."""
    head = f"borescope-{instance_tag(instance)}-" if instance else "borescope-"
    return head + time.strftime("%Y%m%d-%H%M%S", time.localtime(int(wall_time))) + ".mkv"


def with_number(name: str, n: int) -> str:
    """The name a clash gives the n-th file after the first (n >= 1), whatever its extension."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{n}{dot}{ext}"


def with_suffix(name: str, n: int) -> str:
    """The snapshot name a clash gives the n-th file after the first (n >= 1)."""
    return with_number(name, n)
