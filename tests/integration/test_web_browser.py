# SPDX-License-Identifier: GPL-3.0-or-later
"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through
chromium-driver, against the real daemon fed by the simulator.

What a person would check, checked on the screenshot's pixels: the simulator's moving picture
is on the page; the snapshot button saves a frame that was sent; the borescope's own button
makes the page flash and adds to the strip; the no-signal picture when the borescope is gone
and the live picture again when it is back; at a phone's 390x844 the picture and the button
are on screen without scrolling. The screenshots are kept for a developer to look at, in
tests/support/browser.py's screenshot_dir().
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.browser import BOX, LIVE_WIDTH, NEEDS_CHROMIUM, js, shot
from support.daemon import Daemon, run_cli
from support.waiting import wait_for

from bridge.control.client import request
from bridge.pixels.nosignal import no_signal_bgr
from bridge.sim.server import Simulator, SimulatorConfig

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
SIZE = (640, 480)
# Mean absolute difference (0..255) between the page's picture and the best-matching sent
# frame. Chromium's scaling and JPEG decoding differ from OpenCV's by a few levels; another
# frame of the loop or the no-signal picture differs by tens.
MATCH = 10.0


def picture(driver: Any, screen: np.ndarray) -> np.ndarray:
    """The part of the screenshot where the page shows the picture (unrotated view)."""
    r = driver.execute_script(
        "const r = document.getElementById('live').getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height];"
    )
    x, y, w, h = (round(v) for v in r)
    assert w > 100 and h > 100, r
    # A pixel in from each edge: the scaled picture's border pixels blend with the background.
    return screen[y + 2 : y + h - 2, x + 2 : x + w - 2]


def best_match(region: np.ndarray, candidates: list[np.ndarray]) -> tuple[int, float]:
    h, w = region.shape[:2]
    scores = []
    for img in candidates:
        full = cv2.resize(img, (w + 4, h + 4), interpolation=cv2.INTER_AREA)
        scores.append(float(np.mean(cv2.absdiff(full[2 : h + 2, 2 : w + 2], region))))
    k = int(np.argmin(scores))
    return k, scores[k]


def decoded(frames: list[bytes]) -> list[np.ndarray]:
    images = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    unreadable = [k for k, img in enumerate(images) if img is None]
    assert not unreadable, f"OpenCV cannot decode simulator frames {unreadable}"
    return [img for img in images if img is not None]


@contextlib.contextmanager
def device(**kw: Any) -> Iterator[Simulator]:
    sim = Simulator(SimulatorConfig(bind="127.0.0.1", resolution=SIZE, seed=7, **kw))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def test_the_page_in_chromium(browser: Any, tmp_path: Path) -> None:
    stack = contextlib.ExitStack()
    sim = stack.enter_context(device(stream_port=0, event_port=0))
    d = Daemon(tmp_path, sim, "--linger", "0")
    try:
        d.wait_streaming()
        frames = decoded(sim.frames)
        nosignal = no_signal_bgr(*SIZE)
        r = run_cli("url", "--socket", d.sock)
        assert r.returncode == 0, r.stderr
        url = r.stdout.strip()

        # Loaded from `borescope-bridge url`: the page keeps the token, the address is clean.
        browser.get(url)
        wait_for(
            lambda: js(browser, LIVE_WIDTH) == 640,
            what="the picture on the page",
        )
        assert "token=" not in browser.current_url
        assert js(browser, "document.body.dataset.mode") == "stream"  # no fallback in Chromium
        wait_for(
            lambda: js(browser, "document.getElementById('status').textContent").startswith(
                "streaming · 640x480"
            ),
            what="the status line",
        )

        # The whole picture, as large as the view allows (the strip appearing later resizes it).
        def fits() -> bool:
            img, view = js(browser, BOX.format("live")), js(browser, BOX.format("view"))
            inside = all(
                view[a] - 0.5 <= img[a] and img[b] <= view[b] + 0.5
                for a, b in (("left", "right"), ("top", "bottom"))
            )
            full = max(img["width"] / view["width"], img["height"] / view["height"]) > 0.99
            return inside and full

        wait_for(fits, what="the picture to fit the view")

        # The simulator's moving picture: two screenshots match two different sent frames.
        seen = []
        for n in range(2):
            screen = shot(browser, f"desktop-live-{n}")
            k, score = best_match(picture(browser, screen), frames)
            assert score < MATCH, f"the page's picture matches no sent frame ({score:.1f})"
            _, ns = best_match(picture(browser, screen), [nosignal])
            assert ns > 3 * score
            seen.append(k)
            time.sleep(0.5)
        assert seen[0] != seen[1], "the picture does not move"

        # The snapshot button: a file byte-identical to a sent frame, a flash, the strip.
        browser.find_element("id", "snap").click()
        files = wait_for(lambda: d.jpgs(), what="the page's snapshot")
        assert files[0].read_bytes() in set(sim.frames)
        wait_for(lambda: js(browser, "document.body.dataset.flashes") == "1", what="a flash")
        wait_for(
            lambda: js(browser, "document.querySelectorAll('#strip .item').length") == 1,
            what="the strip",
        )
        assert js(browser, "document.querySelector('#strip .item').dataset.name") == files[0].name

        # The borescope's own button (the simulator's): flash, and first in the strip.
        sim.press_button(1)
        wait_for(
            lambda: js(browser, "document.body.dataset.flashes") == "2",
            what="a flash for the hardware button",
        )
        shot(browser, "desktop-button-flash")
        wait_for(lambda: len(d.jpgs()) == 2, what="the button's snapshot")
        newest = max(d.jpgs(), key=lambda p: p.stat().st_mtime)
        wait_for(
            lambda: (
                js(browser, "document.querySelector('#strip .item').dataset.name") == newest.name
            ),
            what="the new snapshot first in the strip",
        )
        assert newest.read_bytes() in set(sim.frames)
        # Tapping a snapshot opens it: the link serves the very file.
        href = js(browser, "document.querySelector('#strip .item a.open').href")
        assert href.endswith(f"/snapshots/{newest.name}")
        page_tab = browser.current_window_handle
        browser.find_element("css selector", "#strip a").click()
        wait_for(lambda: len(browser.window_handles) == 2, what="the snapshot's tab")
        browser.switch_to.window(next(h for h in browser.window_handles if h != page_tab))
        opened = browser.current_url
        assert f"/snapshots/{newest.name}?ticket=" in opened, opened
        wait_for(
            lambda: js(browser, "document.images.length && document.images[0].naturalWidth") == 640,
            what="the snapshot in its tab",
        )
        browser.close()
        browser.switch_to.window(page_tab)
        # Its ticket was used: the address of that tab opens nothing again.
        parts = urllib.parse.urlsplit(opened)
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=20)
        conn.request("GET", f"{parts.path}?{parts.query}")
        assert conn.getresponse().status == 401
        conn.close()
        time.sleep(0.5)  # let the flash fade before the next screenshot
        wait_for(fits, what="the picture to fit the view above the strip")
        screen = shot(browser, "desktop-strip")
        assert best_match(picture(browser, screen), frames)[1] < MATCH

        # Rotate for this viewer: kept by the browser, picture turned on screen.
        browser.find_element("id", "rotate").click()
        browser.refresh()
        wait_for(
            lambda: js(browser, LIVE_WIDTH) == 640,
            what="the picture after reload",
        )
        rect = wait_for(
            lambda: (r := js(browser, BOX.format("live")))["height"] > r["width"] and r,
            what="the picture turned by 90 degrees (4:3 becomes 3:4)",
        )
        time.sleep(0.3)
        rect = js(browser, BOX.format("live"))
        screen = shot(browser, "desktop-rotated")
        region = screen[
            round(rect["y"]) + 2 : round(rect["y"] + rect["height"]) - 2,
            round(rect["x"]) + 2 : round(rect["x"] + rect["width"]) - 2,
        ]
        turned = [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in frames]
        assert best_match(region, turned)[1] < MATCH
        # Mirror on top of the rotation: left and right swap as the viewer sees them.
        browser.find_element("id", "mirror").click()
        time.sleep(0.3)
        screen = shot(browser, "desktop-rotated-mirrored")
        region = screen[
            round(rect["y"]) + 2 : round(rect["y"] + rect["height"]) - 2,
            round(rect["x"]) + 2 : round(rect["x"] + rect["width"]) - 2,
        ]
        assert best_match(region, [cv2.flip(f, 1) for f in turned])[1] < MATCH
        browser.find_element("id", "mirror").click()
        browser.find_element("id", "rotate").click()
        browser.find_element("id", "rotate").click()
        browser.find_element("id", "rotate").click()  # back to 0 for the phone

        # A phone: 390x844, the picture and the big button on screen without scrolling.
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        browser.refresh()
        wait_for(
            lambda: js(browser, LIVE_WIDTH) == 640,
            what="the picture on the phone",
        )
        time.sleep(0.3)
        layout = js(
            browser,
            "{view: [innerWidth, innerHeight],"
            " scroll: [document.documentElement.scrollWidth,"
            " document.documentElement.scrollHeight],"
            " img: document.getElementById('live').getBoundingClientRect().toJSON(),"
            " snap: document.getElementById('snap').getBoundingClientRect().toJSON()}",
        )
        assert layout["view"] == [390, 844], layout
        assert layout["scroll"][0] <= 390 and layout["scroll"][1] <= 844, layout
        for key in ("img", "snap"):
            box = layout[key]
            assert box["left"] >= 0 and box["top"] >= 0, layout
            assert box["right"] <= 390 + 0.5 and box["bottom"] <= 844 + 0.5, layout
        assert layout["img"]["width"] >= 380  # as large as the screen allows
        assert layout["snap"]["height"] >= 48 and layout["snap"]["width"] >= 150  # a big button
        screen = shot(browser, "phone-live")
        assert best_match(picture(browser, screen), frames)[1] < MATCH

        # Safari's path, forced: single pictures from /frame.jpg in a loop.
        browser.get(url.split("?")[0] + "?poll=1")
        wait_for(
            lambda: js(browser, LIVE_WIDTH) == 640,
            what="the polled picture",
        )
        assert js(browser, "document.body.dataset.mode") == "poll"
        screen = shot(browser, "phone-polling")
        assert best_match(picture(browser, screen), frames)[1] < MATCH
        browser.get(url.split("?")[0])

        # The borescope goes away: the no-signal picture and status; back by itself after.
        ports = (sim.stream_port, sim.event_port)
        stack.close()
        wait_for(
            lambda: "no signal" in js(browser, "document.getElementById('status').textContent"),
            what="no signal in the status line",
        )

        def shows_no_signal() -> bool:
            screen = shot(browser, "phone-no-signal")
            return best_match(picture(browser, screen), [nosignal])[1] < MATCH

        wait_for(shows_no_signal, what="the no-signal picture", poll_s=0.5)
        sim = stack.enter_context(device(stream_port=ports[0], event_port=ports[1]))
        frames = decoded(sim.frames)

        def live_again() -> bool:
            screen = shot(browser, "phone-back")
            return best_match(picture(browser, screen), frames)[1] < MATCH

        wait_for(live_again, what="the live picture again", poll_s=0.5)
        assert js(browser, "document.getElementById('status').textContent").startswith("streaming")
        # Closing the page closes its stream.
        browser.get("about:blank")
        wait_for(lambda: d.status()["stream_clients"] == 0, what="the stream to close")
    finally:
        d.close()
        stack.close()


ATTACK_PAGE = """<!doctype html><meta charset=utf-8><title>cats</title>
<iframe name=sink></iframe><iframe name=sink2></iframe>
<form id=form method=post action="http://127.0.0.1:{port}/api/snapshot" target=sink>
<input name=a value=1></form>
<form id=form2 method=post action="http://127.0.0.1:{port}/api/record/start" target=sink2>
<input name=a value=1></form>
<script>
const out = {{}};
window.attack = out;
out.pixels = "no picture";
const img = new Image();
img.onload = () => {{
  out.img = "shown " + img.naturalWidth;
  try {{
    const c = document.createElement("canvas");
    c.width = 8; c.height = 8;
    c.getContext("2d").drawImage(img, 0, 0, 8, 8);
    out.pixels = "READ " + c.getContext("2d").getImageData(0, 0, 1, 1).data.join(",");
  }} catch (e) {{ out.pixels = "refused"; }}
}};
img.onerror = () => {{ out.img = "refused"; }};
img.src = "http://127.0.0.1:{port}/frame.jpg";  // after the handlers: no event missed
document.body.append(img);
fetch("http://127.0.0.1:{port}/api/status", {{credentials: "include"}})
  .then((r) => r.text()).then((t) => {{ out.status = "READ " + t.slice(0, 40); }})
  .catch(() => {{ out.status = "refused"; }});
fetch("http://127.0.0.1:{port}/api/snapshot", {{method: "POST", credentials: "include",
  headers: {{"X-Borescope-Token": "guess"}}}})
  .then((r) => {{ out.post = "status " + r.status; }})
  .catch(() => {{ out.post = "refused"; }});
fetch("http://127.0.0.1:{port}/api/record/start", {{method: "POST", credentials: "include",
  headers: {{"X-Borescope-Token": "guess"}}}})
  .then((r) => {{ out.post2 = "status " + r.status; }})
  .catch(() => {{ out.post2 = "refused"; }});
form.submit();
form2.submit();
</script>"""


def test_other_sites_in_the_same_browser_see_nothing(browser: Any, tmp_path: Path) -> None:
    """The user has the page open (cookie set); a site of the attacker's, in the same browser,
    tries to show the picture, read the status, take snapshots, start a recording, and rebinds
    its name to 127.0.0.1 to talk to the page as if it were its own."""
    with device(stream_port=0, event_port=0) as sim:
        d = Daemon(tmp_path, sim)
        try:
            d.wait_streaming()
            url = run_cli("url", "--socket", d.sock).stdout.strip()
            port = int(url.split(":")[2].split("/")[0])
            browser.get(url)
            wait_for(
                lambda: js(browser, LIVE_WIDTH) == 640,
                what="the page, with its cookie",
            )
            page = ATTACK_PAGE.format(port=port).encode()
            token = url.split("token=", 1)[1]
            received: list[str] = []

            class Attacker(http.server.BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    received.append(f"{self.requestline}\n{self.headers}")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(page)

                def log_message(self, *args: Any) -> None:
                    pass

            evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
            threading.Thread(target=evil.serve_forever, daemon=True).start()
            results = {}
            try:
                # Another site; and another port of 127.0.0.1 (another local user's server),
                # which browsers count as the same site: cookies would go along.
                for where in ("evil.test", "127.0.0.1"):
                    browser.get(f"http://{where}:{evil.server_address[1]}/")
                    results[where] = wait_for(
                        lambda: js(
                            browser,
                            "window.attack && window.attack.img && window.attack.status"
                            " && window.attack.post && window.attack.post2 && window.attack",
                        ),
                        what="the attack page to finish",
                    )
                    shot(browser, f"attacker-page-{where}")
            finally:
                evil.shutdown()
                evil.server_close()
            cross_site, other_port = results["evil.test"], results["127.0.0.1"]
            # The browser holds no credential it sends by itself, to us or to the attacker's
            # server on another port: nothing is shown, nothing read.
            assert len(received) >= 2 and all(token not in r for r in received), received
            assert not [r for r in received if "cookie:" in r.lower()], received
            for out in (cross_site, other_port):
                assert out["img"] == "refused", out
                assert out["pixels"] == "no picture", out
                assert out["status"] == "refused", out
                assert out["post"] == "refused", out  # its preflight gets 401
                assert out["post2"] == "refused", out
            assert d.snapshot()["ok"]  # sync: a snapshot the attacks queued would show too
            assert len(d.jpgs()) == 1  # the form POSTs took none
            assert d.status()["recording"]["name"] is None  # and started no recording

            # DNS rebinding: the attacker's name now points at 127.0.0.1, so its page would be
            # same-origin with the bridge. The Host header gives it away.
            browser.get(f"http://evil.test:{port}/api/status")
            body = browser.find_element("tag name", "body").text
            assert "not this machine's loopback address" in body, body
            assert "state" not in body
            shot(browser, "dns-rebinding-refused")
        finally:
            d.close()


class Squatter(http.server.ThreadingHTTPServer):
    """What takes the daemon's port while it is down: records every request the open tab makes
    and plays along (a nonce of the real daemon's, a session, tickets) to draw out more."""

    def __init__(self, port: int, nonce: str) -> None:
        self.requests: list[str] = []
        self.proofs: list[bytes] = []
        squatter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                squatter.requests.append(f"{self.requestline}\n{self.headers}")
                if self.path.startswith("/api/challenge"):
                    self._answer(200, {"ok": True, "nonce": nonce})
                else:
                    self._answer(401, {"ok": False, "error": "no"})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                squatter.requests.append(f"{self.requestline}\n{self.headers}\n{body!r}")
                if self.path.startswith("/api/session"):
                    squatter.proofs.append(body)
                    self._answer(200, {"ok": True, "session": "squatter-session"})
                elif self.path.startswith("/api/ticket"):
                    self._answer(200, {"ok": True, "ticket": "squatter-ticket"})
                else:
                    self._answer(401, {"ok": False, "error": "no"})

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def test_no_ambient_credential_and_the_page_survives_a_restart(
    browser: Any, tmp_path: Path
) -> None:
    """The issue's attacks in Chromium: every cookie the browser holds, replayed alone, gets
    401; while the daemon is down a squatter on its port hears the open tab but gets neither
    the token nor anything a later daemon accepts; the tab shows the picture again by itself."""
    with device(stream_port=0, event_port=0) as sim:
        frames = decoded(sim.frames)
        d = Daemon(tmp_path, sim)
        try:
            d.wait_streaming()
            url = run_cli("url", "--socket", d.sock).stdout.strip()
            port = int(url.split(":")[2].split("/")[0])
            token = url.split("token=", 1)[1]
            browser.get(url)
            wait_for(
                lambda: js(browser, LIVE_WIDTH) == 640,
                what="the picture",
            )
            # The address bar and this tab's history entry lost the token at once.
            assert "token" not in browser.current_url and browser.current_url.endswith(f":{port}/")
            browser.back()  # the tab's history: its entry for the page was replaced too
            browser.forward()
            assert "token" not in browser.current_url and browser.current_url.endswith(f":{port}/")
            wait_for(  # loaded again from the entry: from storage, as after a browser restart
                lambda: js(browser, LIVE_WIDTH) == 640,
                what="the picture, the page loaded from its history entry",
            )
            # The page keeps the token in its origin's storage, and nothing in cookies.
            assert js(browser, "localStorage.getItem('borescope-bridge.token')") == token
            cookies = browser.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
            jar = [f"{c['name']}={c['value']}" for c in cookies]
            jar.append(f"borescope_token_{port}={token}")  # what the old page's cookie was
            for cookie in jar:
                for path in ("/api/status", "/frame.jpg", "/stream.mjpeg", "/api/snapshots"):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                    conn.request("GET", path, headers={"Cookie": cookie})
                    assert conn.getresponse().status == 401, (cookie, path)
                    conn.close()

            # The daemon stops (the scope unplugged); a squatter takes its port at once, with a
            # nonce it fetched from the real daemon before, to relay the tab's proof.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("GET", "/api/challenge")
            real_nonce = json.loads(conn.getresponse().read())["nonce"]
            conn.close()
            assert d.terminate() == 0
            d.close()
            squatter = Squatter(port, real_nonce)
            try:
                wait_for(
                    lambda: (
                        squatter.proofs
                        and any("ticket=squatter-ticket" in r for r in squatter.requests)
                    ),
                    what="the open tab to talk to the squatter",
                )
                time.sleep(2)  # let the tab retry a few more times
            finally:
                squatter.close()
            heard = list(squatter.requests)
            assert not [r for r in heard if token in r], "the squatter received the token"
            assert not [r for r in heard if "cookie:" in r.lower()], heard

            # The daemon is back on its port (same token file): nothing the squatter heard
            # opens it, the relayed proof included.
            (tmp_path / "notify.sock").unlink()
            d = Daemon(tmp_path, sim, "--http", f"127.0.0.1:{port}")
            d.wait_streaming()
            values = set()
            for r in heard:
                for line in r.splitlines()[1:]:
                    values.add(line.partition(":")[2].strip())
                values.update(re.findall(r"[?&]ticket=([^\s&]+)", r))
            values.discard("")
            for v in values:
                for headers, path in (
                    ({"X-Borescope-Session": v}, "/api/status"),
                    ({"X-Borescope-Token": v}, "/api/status"),
                    ({"Authorization": f"Bearer {v}"}, "/api/status"),
                    ({}, f"/frame.jpg?ticket={urllib.parse.quote(v)}"),
                ):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                    conn.request("GET", path, headers=headers)
                    assert conn.getresponse().status == 401, (headers, path)
                    conn.close()
            for proof in squatter.proofs:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                conn.request("POST", "/api/session", body=proof)
                assert conn.getresponse().status != 200, proof
                conn.close()

            # The open tab shows the live picture again, with no user action.
            def live_again() -> bool:
                screen = shot(browser, "after-restart")
                return best_match(picture(browser, screen), frames)[1] < MATCH

            wait_for(live_again, what="the live picture after the restart", poll_s=0.5)
            wait_for(
                lambda: js(browser, "document.getElementById('status').textContent").startswith(
                    "streaming"
                ),
                what="the status line after the restart",
            )
            assert "token" not in browser.current_url

            # A new token: the open tab loses its access at once and says what to do.
            renewed = run_cli("url", "--new-token", "--socket", d.sock)
            assert renewed.returncode == 0 and token not in renewed.stdout, renewed.stderr
            wait_for(
                lambda: (
                    "open the address"
                    in js(browser, "document.getElementById('status').textContent")
                ),
                what="the page to say its access is gone",
            )
            wait_for(lambda: d.status()["stream_clients"] == 0, what="the old stream to close")
        finally:
            d.close()


def test_the_page_from_a_one_time_code(browser: Any, tmp_path: Path) -> None:
    """`borescope-bridge open`'s address in a browser that holds nothing yet: the page trades
    the code for the token, keeps it, cleans the address; the code does not work twice."""
    with device(stream_port=0, event_port=0) as sim:
        d = Daemon(tmp_path, sim)
        try:
            d.wait_streaming()
            reply = request(d.sock, {"cmd": "code"}, timeout=10)
            token = request(d.sock, {"cmd": "url"}, timeout=10)["token"]
            address = f"http://127.0.0.1:{reply['port']}/?code={reply['code']}"
            browser.get(address)
            wait_for(
                lambda: js(browser, LIVE_WIDTH) == 640,
                what="the picture from a one-time code",
            )
            assert "code" not in browser.current_url
            assert js(browser, "localStorage.getItem('borescope-bridge.token')") == token
            # The same address again, in a browser that forgot the token: no access.
            browser.execute_script("localStorage.clear()")
            browser.get(address)
            body = browser.find_element("tag name", "body").text
            assert "borescope-bridge open" in body and "again" in body, body
            assert js(browser, "localStorage.getItem('borescope-bridge.token')") is None
        finally:
            d.close()


def test_the_page_where_web_crypto_is_missing(browser: Any, tmp_path: Path) -> None:
    """A phone opens the page by the machine's network address: plain HTTP on a name that is
    not loopback, so no secure context and no Web Crypto. The page's own HMAC works there, and
    the address from `url` is cleaned as on 127.0.0.1."""
    with device(stream_port=0, event_port=0) as sim:
        d = Daemon(tmp_path, sim, "--http", "0.0.0.0:0")
        try:
            d.wait_streaming()
            reply = request(d.sock, {"cmd": "url"}, timeout=10)
            # evil.test resolves to 127.0.0.1 in this browser: a LAN name, as far as it knows.
            browser.get(f"http://evil.test:{reply['port']}/?token={reply['token']}")
            assert js(browser, "window.isSecureContext") is False
            assert js(browser, "typeof crypto.subtle") == "undefined"
            wait_for(
                lambda: js(browser, LIVE_WIDTH) == 640,
                what="the picture without Web Crypto",
            )
            assert "token" not in browser.current_url
            browser.find_element("id", "snap").click()
            files = wait_for(lambda: d.jpgs(), what="a snapshot from the page's session")
            assert files[0].read_bytes() in set(sim.frames)
        finally:
            d.close()


def test_the_record_button_at_a_phone_viewport(browser: Any, tmp_path: Path) -> None:
    """Tap Record: the button counts the time; tap again: a recording the API lists, ffprobe
    plays, and the strip offers as a download. Only the button's id and text are relied on."""
    import urllib.request

    from support.media import extract_frames, need_ffmpeg

    need_ffmpeg()
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    with device(stream_port=0, event_port=0) as sim:
        d = Daemon(tmp_path, sim, "--linger", "0", "--recordings-dir", str(tmp_path / "videos"))
        try:
            d.wait_streaming()
            url = run_cli("url", "--socket", d.sock).stdout.strip()
            base, token = url.split("/?token=")
            browser.get(url)
            button = browser.find_element("id", "record")
            wait_for(lambda: button.text == "Record", what="the idle Record button")
            box = js(browser, BOX.format("record"))
            assert box["right"] <= 390 + 0.5 and box["bottom"] <= 844 + 0.5, box
            button.click()
            wait_for(lambda: re.fullmatch(r"● 0:0[2-9]", button.text), what="the elapsed time, 2 s")
            shot(browser, "phone-recording")
            assert d.status()["recording"]["running"] is True
            button.click()
            wait_for(lambda: button.text == "Record", what="Record again after the stop")
            req = urllib.request.Request(
                base + "/api/recordings", headers={"X-Borescope-Token": token}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                (entry,) = json.loads(resp.read())
            assert entry["duration"] >= 2.0
            link = wait_for(
                lambda: js(
                    browser,
                    "document.querySelector("
                    f"'#strip a[download][href=\"/recordings/{entry['name']}\"]')",
                ),
                what="the recording in the strip",
            )
            assert link.get_attribute("download") == entry["name"]
            frames = extract_frames(tmp_path / "videos" / entry["name"])
            assert frames and set(frames) <= set(sim.frames)
            assert len(frames) == d.status()["recording"]["frames"]
        finally:
            d.close()
