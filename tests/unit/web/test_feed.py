# SPDX-License-Identifier: GPL-3.0-or-later
"""The Feed's failure events: their shape, and a bound a flood of refusals cannot pass."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from bridge.web import feed as feed_mod
from bridge.web.feed import FAILED_EVENTS_BURST, Feed


def make_feed() -> tuple[Feed, list[tuple[str, Any]]]:
    f = Feed(lambda: {}, lambda timeout, origin: Future(), lambda: "/nowhere")
    got: list[tuple[str, Any]] = []
    f.attach(lambda kind, data: got.append((kind, data)))
    return f, got


def test_a_failed_snapshot_is_an_event_with_reason_and_source() -> None:
    f, got = make_feed()
    f.snapshot_failed("disk nearly full: snapshot not saved in /x", "button")
    assert got == [
        (
            "snapshot-failed",
            {"reason": "disk nearly full: snapshot not saved in /x", "source": "button"},
        )
    ]


def test_a_flood_of_failures_is_bounded_and_counted(monkeypatch: Any) -> None:
    now = [1000.0]
    monkeypatch.setattr(feed_mod.time, "monotonic", lambda: now[0])
    f, got = make_feed()
    for _ in range(100):
        f.snapshot_failed("too many snapshots", "control")
    assert len(got) == FAILED_EVENTS_BURST
    assert f.failed_events_dropped == 100 - FAILED_EVENTS_BURST
    now[0] += 1.0  # the bucket refills: later failures are told again
    f.snapshot_failed("no complete frame arrived", "button")
    assert got[-1] == (
        "snapshot-failed",
        {"reason": "no complete frame arrived", "source": "button"},
    )
