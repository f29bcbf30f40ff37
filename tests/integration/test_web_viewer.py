# SPDX-License-Identifier: GPL-3.0-or-later
"""The viewer (issue "The first hour", part 5) in Chromium at a phone held upright (390x844), a
phone on its side (844x390) and a desktop (1366x768), against the real daemon and simulator.

Measured as a person would judge it: how much of the height the picture gets, whether every
control is on screen and is what a tap there hits, whether zoom changes the picture and the
reset brings it back, whether the snapshot control is off while there is no signal, whether
a failed snapshot's message is whole (nothing cut off) and readable (contrast, not grey),
whether each gallery item downloads and shares its file. Screenshots at each size are kept
(tests/support/browser.py says where) and their paths printed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.browser import BOX, NEEDS_CHROMIUM, js, shot
from support.viewer import (
    CONTROLS,
    POLL_S,
    SIZES,
    bridge,
    contrast,
    picture_shown,
    reachable,
    rgb,
    settled_box,
    size,
    transform,
)
from support.waiting import wait_for

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]


def save_for_docs(screen: np.ndarray) -> None:
    """With BRIDGE_DOCS_PAGE=docs/page.png, the desktop screenshot becomes the README's picture:
    1024 wide, 5 bits a channel (the simulator's noise makes a full PNG half a megabyte)."""
    target = os.environ.get("BRIDGE_DOCS_PAGE")
    if not target:
        return
    small = np.asarray(cv2.resize(screen, (1024, 576), interpolation=cv2.INTER_AREA), np.uint8)
    assert cv2.imwrite(target, (small & 0xF8) | 0x04, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"docs screenshot: {target}")


def test_three_layouts_zoom_and_the_gallery(browser: Any, tmp_path: Path) -> None:
    with bridge(tmp_path) as (sim, d, url):
        browser.get(url)
        picture_shown(browser)
        # One snapshot from the page and one from the borescope's button fill the gallery.
        wait_for(lambda: js(browser, "!document.getElementById('snap').disabled"), poll_s=POLL_S)
        browser.find_element("id", "snap").click()
        wait_for(lambda: len(d.jpgs()) == 1, what="the page's snapshot", poll_s=POLL_S)
        sim.press_button(1)
        wait_for(lambda: len(d.jpgs()) == 2, what="the button's snapshot", poll_s=POLL_S)
        names = {p.name for p in d.jpgs()}
        wait_for(
            lambda: js(browser, "document.querySelectorAll('#strip .item').length") == 2,
            what="both snapshots in the gallery",
            poll_s=POLL_S,
        )
        # Every bridge records (its status has a "recording" object); one instance: no links.
        assert not js(browser, "document.getElementById('record').hidden")
        assert js(browser, "document.getElementById('record').textContent") == "Record"
        assert js(browser, "document.getElementById('instances').hidden")

        for name in SIZES:
            size(browser, name)
            width, height, _ = SIZES[name]
            picture_shown(browser)
            live = settled_box(browser, "live")
            doc = js(
                browser,
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
            )
            assert doc[0] <= width and doc[1] <= height, (name, doc)  # no scrolling
            if name == "phone-portrait":
                assert live["width"] >= width - 10, (name, live)  # as wide as the phone
            else:
                assert live["height"] / height >= 0.75, (name, live)
            assert abs(live["width"] / live["height"] - 4 / 3) < 0.02, live  # not stretched
            for control in CONTROLS:
                assert reachable(browser, control), (name, control)
            assert js(browser, "document.getElementById('status').textContent").startswith(
                "streaming · 640x480"
            )
            # Every gallery item: its file to open and to download, the first one on screen.
            items = js(
                browser,
                "[...document.querySelectorAll('#strip .item')].map((el) => ({"
                " name: el.dataset.name,"
                " open: el.querySelector('a.open').href,"
                " save: el.querySelector('a.save').href,"
                " download: el.querySelector('a.save').getAttribute('download')}))",
            )
            assert {i["name"] for i in items} == names
            for i in items:
                assert i["open"].endswith(f"/snapshots/{i['name']}"), i
                assert i["save"].endswith(f"/snapshots/{i['name']}"), i
                assert i["download"] == i["name"], i
            assert js(
                browser,
                "(() => { const r = document.querySelector('#strip .item a.save')"
                ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()",
            ), name
            screen = shot(browser, f"viewer-{name}")
            if name == "desktop":
                save_for_docs(screen)

            # Zoom: the buttons, then the reset, at every size.
            browser.find_element("id", "zoom-in").click()
            assert "scale(1.5)" in transform(browser)
            zoomed = js(browser, BOX.format("live"))
            assert zoomed["width"] > live["width"] * 1.45, (zoomed, live)
            reset = js(browser, "document.getElementById('zoom-reset').textContent")
            assert reset == "1.5\N{MULTIPLICATION SIGN}", reset
            browser.find_element("id", "zoom-in").click()
            browser.find_element("id", "zoom-in").click()
            browser.find_element("id", "zoom-in").click()
            assert "scale(4)" in transform(browser)  # 1.5^4 > 4: held at the limit
            assert js(browser, "document.getElementById('zoom-in').disabled")
            shot(browser, f"viewer-{name}-zoomed")
            browser.find_element("id", "zoom-reset").click()
            assert "scale(1)" in transform(browser)
            assert js(browser, BOX.format("live")) == live

        # The mouse wheel zooms at the pointer (desktop); the reset brings the picture back.
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

        live = js(browser, BOX.format("live"))
        view = browser.find_element("id", "view")
        ActionChains(browser).scroll_from_origin(
            ScrollOrigin.from_element(view, 100, 50), 0, -300
        ).perform()
        wait_for(lambda: "scale(1)" not in transform(browser), what="wheel zoom", poll_s=POLL_S)
        z = float(js(browser, "document.body.dataset.zoom"))
        assert 1.2 < z <= 4, z
        # Zoomed at the pointer, right of and below the centre: the picture moved left and up.
        m = re.search(r"translate\((-?[\d.]+)px, (-?[\d.]+)px\)", transform(browser))
        assert m and float(m[1]) < 0 and float(m[2]) < 0, transform(browser)
        browser.find_element("id", "zoom-reset").click()
        assert js(browser, BOX.format("live")) == live

        # Full screen and back.
        browser.find_element("id", "fullscreen").click()
        wait_for(lambda: js(browser, "document.fullscreenElement !== null"), poll_s=POLL_S)
        browser.find_element("id", "fullscreen").click()
        wait_for(lambda: js(browser, "document.fullscreenElement === null"), poll_s=POLL_S)

        # No signal: the snapshot control is off, and says why; back on with the signal.
        sim.stop()
        wait_for(
            lambda: js(browser, "document.getElementById('snap').disabled"),
            what="the snapshot control off during no signal",
            poll_s=POLL_S,
        )
        assert "no signal" in js(browser, "document.getElementById('snap').title")

        def no_signal_picture() -> bool:
            screen = shot(browser, "viewer-desktop-no-signal")
            r = js(browser, BOX.format("live"))
            region = screen[round(r["top"]) + 2 : round(r["bottom"]) - 2, round(r["left"]) + 2 :]
            return bool(region[:, : round(r["width"]) - 4].mean() < 80)  # the dark picture

        wait_for(no_signal_picture, what="the no-signal picture", poll_s=0.5)


def test_pinch_zooms_and_pans_on_a_phone(browser: Any, tmp_path: Path) -> None:
    with bridge(tmp_path) as (_sim, _d, url):
        browser.get(url)
        size(browser, "phone-portrait")
        browser.refresh()
        picture_shown(browser)
        live = settled_box(browser, "live")
        cx, cy = live["x"] + live["width"] / 2, live["y"] + live["height"] / 2

        def touch(kind: str, points: list[tuple[float, float]]) -> None:
            browser.execute_cdp_cmd(
                "Input.dispatchTouchEvent",
                {
                    "type": kind,
                    "touchPoints": [{"x": x, "y": y, "id": k} for k, (x, y) in enumerate(points)],
                },
            )

        # Two fingers 60 px apart spread to 180 px: three times the size.
        touch("touchStart", [(cx - 30, cy), (cx + 30, cy)])
        for step in range(1, 7):
            touch("touchMove", [(cx - 30 - 10 * step, cy), (cx + 30 + 10 * step, cy)])
        touch("touchEnd", [])
        z = float(js(browser, "document.body.dataset.zoom"))
        assert 2.5 < z < 3.5, z
        # One finger drags the zoomed picture.
        before = js(browser, BOX.format("live"))
        touch("touchStart", [(cx, cy)])
        touch("touchMove", [(cx + 40, cy + 20)])
        touch("touchEnd", [])
        after = js(browser, BOX.format("live"))
        assert after["x"] > before["x"] and after["y"] > before["y"], (before, after)
        shot(browser, "viewer-phone-portrait-pinched")
        browser.find_element("id", "zoom-reset").click()
        assert js(browser, BOX.format("live")) == live


def test_a_failed_snapshot_says_why_in_full(browser: Any, tmp_path: Path) -> None:
    """Snapshots cannot be saved (their directory became a regular file): the borescope's
    button and the page's button each show the daemon's reason, whole and readable."""
    where = tmp_path / "snapshots"
    where.mkdir()
    with bridge(tmp_path, "--snapshot-dir", str(where)) as (sim, _d, url):
        # A start refuses a directory it cannot make; taken away while running, snapshots fail.
        where.rmdir()
        where.write_text("a file where the snapshot directory was\n")
        browser.get(url)
        size(browser, "phone-portrait")  # the narrowest: the longest message must still fit
        browser.refresh()
        picture_shown(browser)
        sim.press_button(1)
        text = wait_for(
            lambda: js(
                browser,
                "!document.getElementById('error').hidden"
                " && document.getElementById('error-text').textContent",
            ),
            what="the button's failure on the page",
            poll_s=POLL_S,
        )
        assert text.startswith("Snapshot failed (the borescope's button): cannot save snapshot")
        assert str(where) in text
        shot(browser, "viewer-phone-portrait-button-failed")

        def whole_and_readable() -> None:
            m = js(
                browser,
                """(() => {
                  const t = document.getElementById('error-text');
                  const e = document.getElementById('error');
                  const r = e.getBoundingClientRect();
                  return {sw: t.scrollWidth, cw: t.clientWidth, sh: t.scrollHeight,
                          ch: t.clientHeight, color: getComputedStyle(t).color,
                          bg: getComputedStyle(e).backgroundColor,
                          opacity: getComputedStyle(e).opacity,
                          box: [r.left, r.top, r.right, r.bottom],
                          ellipsis: getComputedStyle(t).textOverflow};
                })()""",
            )
            assert m["sw"] <= m["cw"] and m["sh"] <= m["ch"], m  # nothing cut off
            assert m["ellipsis"] != "ellipsis", m
            left, top, right, bottom = m["box"]
            assert left >= 0 and top >= 0 and right <= 390 and bottom <= 844, m
            assert m["opacity"] == "1", m
            assert contrast(m["color"], m["bg"]) >= 4.5, m  # WCAG AA for normal text
            r, g, b = rgb(m["bg"])
            assert r > g + 80 and r > b + 80, m  # an error's colour, not grey

        whole_and_readable()
        browser.find_element("id", "error-close").click()
        assert js(browser, "document.getElementById('error').hidden")

        # The page's own button: its reply's reason, in the same place.
        browser.find_element("id", "snap").click()
        text = wait_for(
            lambda: js(
                browser,
                "!document.getElementById('error').hidden"
                " && document.getElementById('error-text').textContent",
            ),
            what="the page's failure",
            poll_s=POLL_S,
        )
        assert text.startswith("Snapshot failed") and str(where) in text, text
        whole_and_readable()
        shot(browser, "viewer-phone-portrait-page-failed")


SHARE_SHIM = """
window.shared = [];
navigator.canShare = (data) => Boolean(data && data.files && data.files.length);
navigator.share = async (data) => {
  const f = data.files[0];
  const bytes = new Uint8Array(await f.arrayBuffer());
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  window.shared.push({name: f.name, type: f.type, size: f.size,
    sha: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")});
};
"""


def test_a_phone_saves_and_shares_a_snapshot(browser: Any, tmp_path: Path) -> None:
    """The download link fetches the very file; where the browser has the Web Share API (a
    phone's, here stood in for by a recording shim), the share button hands it the file."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SHARE_SHIM})
    with bridge(tmp_path) as (sim, d, url):
        browser.get(url)
        size(browser, "phone-portrait")
        browser.refresh()
        picture_shown(browser)
        sim.press_button(1)
        wait_for(
            lambda: js(browser, "document.querySelectorAll('#strip .item .share').length") == 1,
            what="the snapshot with its share button",
            poll_s=POLL_S,
        )
        snap = d.jpgs()[0]
        data = snap.read_bytes()
        browser.find_element("css selector", "#strip .item .share").click()
        shared = wait_for(lambda: js(browser, "window.shared[0]"), what="the share", poll_s=POLL_S)
        assert shared == {
            "name": snap.name,
            "type": "image/jpeg",
            "size": len(data),
            "sha": hashlib.sha256(data).hexdigest(),
        }
        shot(browser, "viewer-phone-portrait-gallery")
        browser.find_element("css selector", "#strip .item a.save").click()
        saved = downloads / snap.name
        wait_for(saved.exists, what="the downloaded file", poll_s=POLL_S)
        wait_for(lambda: saved.read_bytes() == data, what="the whole file", poll_s=POLL_S)
