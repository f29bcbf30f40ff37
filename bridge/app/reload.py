# SPDX-License-Identifier: GPL-3.0-or-later
"""Reload planning: which changed settings a reload applies live and which need a restart.

Pure: the daemon asks for a plan, then applies the live part (and says which of those it
could not apply after all, such as a rotation on an output that cannot rotate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bridge.app.config import Config
from bridge.app.settings import LIVE_KEYS


@dataclass(frozen=True)
class ReloadPlan:
    changed: tuple[str, ...]  # every setting that differs, in Config's field order
    live: tuple[str, ...]  # of those, the ones a reload applies at once
    restart: tuple[str, ...]  # of those, the ones that wait for the next start


def plan_reload(old: Config, new: Config, live_keys: tuple[str, ...] = LIVE_KEYS) -> ReloadPlan:
    """Compare two settings. Where the config file is (config_path) is no setting to apply."""
    changed = tuple(
        f.name for f in dataclasses.fields(Config) if getattr(old, f.name) != getattr(new, f.name)
    )
    return ReloadPlan(
        changed=changed,
        live=tuple(k for k in changed if k in live_keys),
        restart=tuple(k for k in changed if k not in live_keys and k != "config_path"),
    )
