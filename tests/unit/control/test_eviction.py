# SPDX-License-Identifier: GPL-3.0-or-later
"""The eviction rule on plain data: the oldest evictable connection of the peer that holds the
most connections, by uid, then by pid; a connection with a handler is never chosen."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bridge.control.eviction import Eviction, Peer


@dataclass
class Row:
    name: str
    peer: Peer
    evictable: bool = True


def table(*rows: tuple[str, int, int, bool]) -> tuple[Eviction, list[Row]]:
    """Rows (name, pid, uid, evictable) in accept order, each counted as opened."""
    rule = Eviction()
    out = [Row(name, Peer(pid, uid), evictable) for name, pid, uid, evictable in rows]
    for row in out:
        rule.opened(row.peer)
    return rule, out


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([], None, id="empty"),
        pytest.param([("a", 10, 1000, False)], None, id="all-handling"),
        pytest.param([("a", 10, 1000, True)], "a", id="single"),
        pytest.param(
            [("mine", 10, 1000, True), ("f1", 20, 1001, True), ("f2", 20, 1001, True)],
            "f1",
            id="the-flood-not-the-oldest",
        ),
        pytest.param(
            [("a", 10, 1000, True), ("b", 11, 1000, True), ("c", 20, 1001, True)],
            "a",
            id="uid-counts-before-pid",
        ),
        pytest.param(
            [("a", 10, 1000, True), ("b", 11, 1000, True), ("c", 11, 1000, True)],
            "b",
            id="same-uid-then-pid",
        ),
        pytest.param(
            [("a", 10, 1000, True), ("b", 20, 1001, True)],
            "a",
            id="tie-goes-to-the-oldest",
        ),
        pytest.param(
            [("f1", 20, 1001, False), ("f2", 20, 1001, True), ("mine", 10, 1000, True)],
            "f2",
            id="handling-is-skipped",
        ),
        pytest.param(
            [("f1", 20, 1001, False), ("f2", 20, 1001, False), ("mine", 10, 1000, True)],
            "mine",
            id="only-one-left-to-drop",
        ),
    ],
)
def test_candidate(rows: list[tuple[str, int, int, bool]], expected: str | None) -> None:
    rule, entries = table(*rows)
    chosen = rule.candidate(entries)
    assert (chosen.name if chosen else None) == expected


def test_counts_follow_opens_and_closes() -> None:
    rule, entries = table(("a", 10, 1000, True), ("b", 10, 1000, True), ("c", 20, 1001, True))
    assert rule.held_by_pid(10) == 2 and rule.held_by_uid(1000) == 2
    rule.closed(entries[0].peer)
    rule.closed(entries[1].peer)
    assert rule.held_by_pid(10) == 0 and rule.held_by_uid(1000) == 0
    # Now the other peer holds the most: its connection is chosen over a newer one of pid 10.
    newer = Row("d", Peer(10, 1000))
    rule.opened(newer.peer)
    rule.opened(Peer(20, 1001))
    chosen = rule.candidate([entries[2], newer])
    assert chosen is entries[2]
