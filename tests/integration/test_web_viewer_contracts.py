# SPDX-License-Identifier: GPL-3.0-or-later
"""The viewer against the contracts of features other parts of the bridge serve: recordings,
several instances and the scope's zoom keys (faked in the page, see CONTRACTS_SHIM), and a
credential the bridge no longer accepts (real: the bridge restarted with another token)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.browser import BOX, NEEDS_CHROMIUM, js, shot
from support.daemon import Daemon, run_cli
from support.sim import simulator
from support.viewer import POLL_S, SIZES, bridge, picture_shown, reachable, size, transform
from support.waiting import wait_for

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]


# The other helpers' contracts (recordings, several instances, the scope's zoom keys) are not
# served on this branch: a stand-in in the page answers those requests as the contracts say,
# and hands the test the page's EventSource to send their events on. Everything else is real.
CONTRACTS_SHIM = """
window.fake = {recording: {running: false, name: null, duration_s: 0, last_error: null},
  posts: [], recordings: [], instances: [
    {interface: "enx00e04c680001", port: 8032},
    {interface: "enx00e04c680002", port: 8033, url: "http://127.0.0.1:8033/"}]};
window.sources = [];
const RealSource = window.EventSource;
window.EventSource = class extends RealSource {
  constructor(...args) { super(...args); window.sources.push(this); }
};
const realFetch = window.fetch.bind(window);
const reply = (v) => new Response(JSON.stringify(v),
  {headers: {"Content-Type": "application/json"}});
window.fetch = async (url, init = {}) => {
  const path = new URL(url, location.href).pathname;
  if (path === "/api/status") {
    const status = await (await realFetch(url, init)).json();
    return reply({...status, recording: {...fake.recording}});
  }
  if (path.startsWith("/api/record/")) {
    const h = new Headers(init.headers);
    fake.posts.push([path, h.get("X-Borescope-Session"), h.get("X-Borescope-Token")]);
    const start = path.endsWith("/start");
    Object.assign(fake.recording, {running: start, duration_s: start ? 7 : 0});
    return reply({ok: true});
  }
  if (path === "/api/recordings") return reply(fake.recordings);
  if (path === "/api/instances") return reply(fake.instances);
  return realFetch(url, init);
};
window.sendEvent = (kind, data) => {
  const es = window.sources[window.sources.length - 1];
  es.dispatchEvent(new MessageEvent(kind, {data: JSON.stringify(data)}));
};
"""


def test_record_instances_and_zoom_keys_as_the_contracts_say(browser: Any, tmp_path: Path) -> None:
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CONTRACTS_SHIM})
    with bridge(tmp_path) as (_sim, d, url):
        token = run_cli("url", "--socket", d.sock).stdout.strip().split("token=")[1]
        browser.get(url)
        size(browser, "desktop")
        picture_shown(browser)

        # The header: links to the other instances.
        links = wait_for(
            lambda: js(
                browser,
                "[...document.querySelectorAll('#instances a')]"
                ".map((a) => [a.textContent, a.href])",
            ),
            what="the other instances in the header",
            poll_s=POLL_S,
        )
        assert links == [
            ["enx00e04c680001", "http://127.0.0.1:8032/"],
            ["enx00e04c680002", "http://127.0.0.1:8033/"],
        ]

        # Record: shown because the status has a "recording" object; the elapsed time while on.
        record = browser.find_element("id", "record")
        wait_for(lambda: record.is_displayed(), what="the Record button", poll_s=POLL_S)
        assert record.text == "Record"
        assert reachable(browser, "record")
        record.click()
        wait_for(
            lambda: re.fullmatch("\N{BLACK CIRCLE} 0:0[7-9]", record.text),
            what="the elapsed time",
            poll_s=POLL_S,
        )
        # The page's session credential goes with the POST; the token itself never does.
        [(path, session, sent_token)] = js(browser, "fake.posts")
        assert path == "/api/record/start" and session and session != token
        assert sent_token is None
        # With Record on screen too, every layout keeps its controls reachable.
        for name in SIZES:
            size(browser, name)
            for control in ("record", "snap", "rotate", "mirror", "zoom-in", "zoom-reset"):
                assert reachable(browser, control), (name, control)
            if name == "phone-portrait":
                assert js(browser, BOX.format("snap"))["width"] >= 150  # still a big button
            shot(browser, f"viewer-{name}-recording")
        size(browser, "desktop")

        # It stops on an error: the reason in the banner, the recording in the gallery.
        name = "borescope-20260101-120000-000.mkv"
        browser.execute_script(
            "fake.recording.running = false;"
            "fake.recordings = [{name: arguments[0], bytes: 1000, time: Date.now() / 1000,"
            " duration: 42}];"
            "sendEvent('recording', {state: 'stopped', name: arguments[0],"
            " reason: 'disk nearly full: recording stopped in /var/lib/borescope-bridge'});",
            name,
        )
        text = wait_for(
            lambda: (
                not js(browser, "document.getElementById('error').hidden")
                and js(browser, "document.getElementById('error-text').textContent")
            ),
            what="the recording's error",
            poll_s=POLL_S,
        )
        assert text == (
            "Recording stopped: disk nearly full: recording stopped in /var/lib/borescope-bridge"
        )
        assert record.text == "Record"
        item = wait_for(
            lambda: js(
                browser,
                "(() => { const el = document.querySelector('#strip .item[data-kind=recording]');"
                " return el && {name: el.dataset.name,"
                " text: el.querySelector('a.open').textContent,"
                " save: el.querySelector('a.save').href,"
                " download: el.querySelector('a.save').getAttribute('download')}; })()",
            ),
            what="the recording in the gallery",
            poll_s=POLL_S,
        )
        assert item == {
            "name": name,
            "text": "0:42",
            "save": f"{url.split('?')[0]}recordings/{name}",
            "download": name,
        }
        shot(browser, "viewer-desktop-recording-failed")
        browser.find_element("id", "error-close").click()

        # A stop the status reports (last_error) shows too, once.
        browser.execute_script("fake.recording.last_error = 'the USB stick went away'")
        wait_for(
            lambda: (
                js(browser, "document.getElementById('error-text').textContent")
                == "Recording stopped: the USB stick went away"
            ),
            what="the status's recording error",
            poll_s=POLL_S,
        )

        # Tapping toggles: start, then stop.
        record.click()
        wait_for(lambda: record.text.startswith("\N{BLACK CIRCLE}"), poll_s=POLL_S)
        record.click()
        wait_for(lambda: record.text == "Record", what="Record again", poll_s=POLL_S)
        assert [p for p, *_ in js(browser, "fake.posts")] == [
            "/api/record/start",
            "/api/record/start",
            "/api/record/stop",
        ]

        # The scope's zoom keys drive the page's zoom.
        browser.execute_script("sendEvent('zoom', {direction: 'in'})")
        assert js(browser, "document.body.dataset.zoom") == "1.50"
        assert "scale(1.5)" in transform(browser)
        browser.execute_script("sendEvent('zoom', {direction: 'out'})")
        assert js(browser, "document.body.dataset.zoom") == "1.00"


def test_a_page_whose_access_is_refused_says_what_to_do(browser: Any, tmp_path: Path) -> None:
    """The bridge comes back on the same port with another token (its state was wiped): the
    open page's requests get 401, and it tells the user to open the address again."""
    with simulator() as sim:
        first = Daemon(tmp_path, sim, "--linger", "0")
        try:
            first.wait_streaming()
            url = run_cli("url", "--socket", first.sock).stdout.strip()
            browser.get(url)
            picture_shown(browser)
        finally:
            first.close()
        port = url.split(":")[2].split("/")[0]
        again = tmp_path / "again"
        again.mkdir()
        second = Daemon(again, sim, "--linger", "0", "--http", f"127.0.0.1:{port}")
        try:
            second.wait_streaming()
            text = wait_for(
                lambda: (
                    not js(browser, "document.getElementById('error').hidden")
                    and js(browser, "document.getElementById('error-text').textContent")
                ),
                what="the page to say its access was refused",
                poll_s=POLL_S,
            )
            assert "open the address that `borescope-bridge url` prints again" in text, text
            assert js(browser, "document.getElementById('snap').disabled")
            shot(browser, "viewer-desktop-access-refused")
        finally:
            second.close()
