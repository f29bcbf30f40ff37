# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting on events instead of sleeping: the tests poll a condition with a generous deadline.

The deadlines only bound a hung test; they assert nothing about speed (the machine is small and
shared, and tests never fail on timing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE_S = 20.0


def wait_for(
    predicate: Callable[[], Any], timeout: float = DEADLINE_S, what: str = "", poll_s: float = 0.01
) -> Any:
    """Poll `predicate` until it returns something truthy and return that; fail after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(poll_s)


def at_once(call: Callable[[], T], n: int, timeout: float = 30.0) -> tuple[list[T], float]:
    """`n` calls released together from their own threads: (their results, seconds until the
    last one returned). For limits on bursts; the time is for bounds, never asserted alone."""
    results: list[T] = []
    lock = threading.Lock()
    go = threading.Event()

    def one() -> None:
        go.wait(timeout)
        value = call()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    started = time.monotonic()
    go.set()
    for t in threads:
        t.join(timeout)
    return results, time.monotonic() - started
