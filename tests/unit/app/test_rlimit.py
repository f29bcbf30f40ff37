# SPDX-License-Identifier: GPL-3.0-or-later
"""The soft descriptor limit is raised to the hard one at start, never beyond it."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from bridge.app.rlimit import UNLIMITED_TARGET, raise_nofile_limit


@pytest.fixture
def limits() -> Iterator[list[tuple[int, int]]]:
    """A fake RLIMIT_NOFILE: the test sets it, setrlimit calls are recorded."""
    state = [(1024, 4096)]
    mp = pytest.MonkeyPatch()
    mp.setattr(resource, "getrlimit", lambda what: state[-1])
    mp.setattr(resource, "setrlimit", lambda what, value: state.append(value))
    yield state
    mp.undo()


def test_soft_is_raised_to_hard(limits: list[tuple[int, int]]) -> None:
    assert raise_nofile_limit() == (4096, 4096)
    assert limits[-1] == (4096, 4096)


def test_equal_limits_are_left_alone(limits: list[tuple[int, int]]) -> None:
    limits[:] = [(1024, 1024)]
    assert raise_nofile_limit() == (1024, 1024)
    assert limits == [(1024, 1024)]


def test_unlimited_hard_asks_for_a_bounded_number(limits: list[tuple[int, int]]) -> None:
    limits[:] = [(1024, resource.RLIM_INFINITY)]
    raise_nofile_limit()
    assert limits[-1] == (UNLIMITED_TARGET, resource.RLIM_INFINITY)


def test_a_refusal_keeps_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1024, 4096))

    def refuse(what: int, value: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_nofile_limit() == (1024, 4096)
