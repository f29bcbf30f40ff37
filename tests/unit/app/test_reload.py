# SPDX-License-Identifier: GPL-3.0-or-later
"""Reload planning: live keys apply at once, the rest wait for a restart."""

from __future__ import annotations

from bridge.app.config import Config
from bridge.app.reload import plan_reload


def test_nothing_changed() -> None:
    plan = plan_reload(Config(), Config())
    assert (plan.changed, plan.live, plan.restart) == ((), (), ())


def test_live_and_restart_keys_are_told_apart() -> None:
    old = Config(config_path="/a.toml")
    new = Config(config_path="/b.toml", rotate=90, wait=5.0, device_ip="10.0.0.2", http="off")
    plan = plan_reload(old, new)
    assert plan.changed == ("device_ip", "rotate", "wait", "http", "config_path")
    assert plan.live == ("rotate", "wait")
    assert plan.restart == ("device_ip", "http")  # where the file is is no setting


def test_live_keys_can_be_narrowed() -> None:
    plan = plan_reload(Config(), Config(record="/r.mjpeg", linger=1.0), live_keys=("linger",))
    assert plan.live == ("linger",)
    assert plan.restart == ("record",)
