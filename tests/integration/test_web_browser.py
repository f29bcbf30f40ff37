# SPDX-License-Identifier: GPL-3.0-or-later
"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through
chromium-driver, against the real daemon fed by the simulator.

What a person would check, checked on the screenshot's pixels: the simulator's moving picture
is on the page; the snapshot button saves a frame that was sent; the borescope's own button
makes the page flash and adds to the strip; the no-signal picture when the borescope is gone
and the live picture again when it is back; at a phone's 390x844 the picture and the button
are on screen without scrolling. The screenshots are kept for a developer to look at, in
$BORESCOPE_SCREENSHOTS or .pytest-artifacts/web/.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.daemon import REPO, Daemon, run_cli
from support.waiting import wait_for

from bridge.pixels.nosignal import no_signal_bgr
from bridge.sim.server import Simulator, SimulatorConfig

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromium-driver (make deps installs them: "
        "apt-get install chromium chromium-driver)",
    ),
]
SIZE = (640, 480)
# Mean absolute difference (0..255) between the page's picture and the best-matching sent
# frame. Chromium's scaling and JPEG decoding differ from OpenCV's by a few levels; another
# frame of the loop or the no-signal picture differs by tens.
MATCH = 10.0
BOX = "document.getElementById('{}').getBoundingClientRect().toJSON()"


def screenshot_dir() -> Path:
    d = Path(os.environ.get("BORESCOPE_SCREENSHOTS") or REPO / ".pytest-artifacts" / "web")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="borescope-chromium-")
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,800",
        # The attacker's name: evil.test resolves to 127.0.0.1, as after DNS rebinding.
        "--host-resolver-rules=MAP evil.test 127.0.0.1",
        "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: Any, name: str) -> np.ndarray:
    png = driver.get_screenshot_as_png()
    (screenshot_dir() / f"{name}.png").write_bytes(png)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


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


def js(driver: Any, expr: str) -> Any:
    return driver.execute_script(f"return {expr};")


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

        # Loaded from `borescope-bridge url`: the token becomes a cookie, the address is clean.
        browser.get(url)
        wait_for(
            lambda: js(browser, "document.getElementById('live').naturalWidth") == 640,
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
            lambda: js(browser, "document.querySelectorAll('#strip a').length") == 1,
            what="the strip",
        )
        assert js(browser, "document.querySelector('#strip a').dataset.name") == files[0].name

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
            lambda: js(browser, "document.querySelector('#strip a').dataset.name") == newest.name,
            what="the new snapshot first in the strip",
        )
        assert newest.read_bytes() in set(sim.frames)
        # Tapping a snapshot opens it: the link serves the very file.
        href = js(browser, "document.querySelector('#strip a').href")
        assert href.endswith(f"/snapshots/{newest.name}")
        time.sleep(0.5)  # let the flash fade before the next screenshot
        wait_for(fits, what="the picture to fit the view above the strip")
        screen = shot(browser, "desktop-strip")
        assert best_match(picture(browser, screen), frames)[1] < MATCH

        # Rotate for this viewer: kept by the browser, picture turned on screen.
        browser.find_element("id", "rotate").click()
        browser.refresh()
        wait_for(
            lambda: js(browser, "document.getElementById('live').naturalWidth") == 640,
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
            lambda: js(browser, "document.getElementById('live').naturalWidth") == 640,
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
            lambda: js(browser, "document.getElementById('live').naturalWidth") == 640,
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
                lambda: js(browser, "document.getElementById('live').naturalWidth") == 640,
                what="the page, with its cookie",
            )
            page = ATTACK_PAGE.format(port=port).encode()

            class Attacker(http.server.BaseHTTPRequestHandler):
                def do_GET(self) -> None:
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
                # which browsers count as the same site, so the cookie goes along.
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
            # Another site: no cookie (SameSite=Strict), so 401: nothing shown, nothing read.
            assert cross_site["img"] == "refused", cross_site
            assert cross_site["pixels"] == "no picture", cross_site
            # Another local port: the browser may show the user the picture, but the attacker's
            # script can read none of it (no CORS: tainted canvas, unreadable responses).
            assert other_port["img"] == "shown 640", other_port
            assert other_port["pixels"] == "refused", other_port
            for out in (cross_site, other_port):
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


def test_the_record_button_at_a_phone_viewport(browser: Any, tmp_path: Path) -> None:
    """Tap Record: the button counts the time; tap again: a recording the API lists, ffprobe
    plays, and the strip offers as a download. Only the button's id and text are relied on."""
    import json
    import re
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
                    f"document.querySelector('#strip a[href=\"/recordings/{entry['name']}\"]')",
                ),
                what="the recording in the strip",
            )
            assert link.get_attribute("download") == entry["name"]
            frames = extract_frames(tmp_path / "videos" / entry["name"])
            assert frames and set(frames) <= set(sim.frames)
            assert len(frames) == d.status()["recording"]["frames"]
        finally:
            d.close()
