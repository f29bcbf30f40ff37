# SPDX-License-Identifier: GPL-3.0-or-later
"""The viewer page's test helpers: a bridge with its page, viewport sizes, what a person sees
(the picture shown, a control reachable, a text readable). Used by tests/integration/
test_web_viewer*.py, with the Chromium of tests/support/browser.py."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bridge.sim.server import Simulator
from support.browser import BOX, LIVE_WIDTH, js, viewport
from support.daemon import Daemon, run_cli
from support.sim import simulator
from support.waiting import wait_for

SIZES = {
    "phone-portrait": (390, 844, True),
    "phone-landscape": (844, 390, True),
    "desktop": (1366, 768, False),
}
CONTROLS = ("snap", "rotate", "mirror", "zoom-in", "zoom-out", "zoom-reset", "fullscreen")
POLL_S = 0.1  # each check runs JavaScript in the browser: no need to spin


@contextlib.contextmanager
def bridge(tmp_path: Path, *extra: str) -> Iterator[tuple[Simulator, Daemon, str]]:
    """A streaming daemon fed by the simulator, and the page's address with its token."""
    with simulator() as sim:
        d = Daemon(
            tmp_path, sim, "--linger", "0", *extra, snapshot_flag="--snapshot-dir" not in extra
        )
        try:
            d.wait_streaming()
            r = run_cli("url", "--socket", d.sock)
            assert r.returncode == 0, r.stderr
            yield sim, d, r.stdout.strip()
        finally:
            d.close()


def size(browser: Any, name: str) -> None:
    width, height, mobile = SIZES[name]
    viewport(browser, width, height, mobile)
    wait_for(
        lambda: js(browser, "[innerWidth, innerHeight]") == [width, height],
        what=f"the {name} viewport",
        poll_s=POLL_S,
    )


def picture_shown(browser: Any) -> None:
    wait_for(
        lambda: js(browser, LIVE_WIDTH) == 640,
        what="the live picture",
        poll_s=POLL_S,
    )


def settled_box(browser: Any, element: str) -> dict[str, float]:
    """The element's box once two readings a moment apart agree (layout follows resizes)."""
    last: list[dict[str, float]] = []

    def steady() -> dict[str, float] | None:
        box = js(browser, BOX.format(element))
        same = last and last[-1] == box
        last.append(box)
        return box if same else None

    return wait_for(steady, what=f"#{element} to settle", poll_s=0.2)


def reachable(browser: Any, element: str) -> bool:
    """On screen, and what a tap at its centre hits (nothing covers it)."""
    return bool(
        js(
            browser,
            f"""(() => {{
              const el = document.getElementById('{element}');
              const r = el.getBoundingClientRect();
              if (el.hidden || r.width < 1 || r.left < 0 || r.top < 0
                  || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) return false;
              const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
              return el === hit || el.contains(hit);
            }})()""",
        )
    )


def luminance(rgb: list[float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def rgb(css: str) -> list[float]:
    return [float(v) for v in re.findall(r"[\d.]+", css)[:3]]


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((luminance(rgb(fg)), luminance(rgb(bg))), reverse=True)
    return (a + 0.05) / (b + 0.05)


def transform(browser: Any) -> str:
    return str(js(browser, "document.getElementById('live').style.transform"))
