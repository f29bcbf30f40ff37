# SPDX-License-Identifier: GPL-3.0-or-later
"""The one Chromium for page tests: Debian's chromium, headless, driven by Selenium through
chromium-driver; screenshots kept for a developer to look at.

Screenshots go to $BRIDGE_TEST_ARTEFACTS/web (or $BORESCOPE_SCREENSHOTS), else
.pytest-artifacts/web/ in the repository.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from support.paths import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (make deps installs them: "
    "apt-get install chromium chromium-driver)",
)
BOX = "document.getElementById('{}').getBoundingClientRect().toJSON()"
# The width of the page's live picture; undefined (not an exception) while the document being
# loaded is not the page yet, so a wait keeps polling through it.
LIVE_WIDTH = "document.getElementById('live')?.naturalWidth"


def screenshot_dir() -> Path:
    artefacts = os.environ.get("BRIDGE_TEST_ARTEFACTS")
    d = Path(
        (Path(artefacts) / "web" if artefacts else None)
        or os.environ.get("BORESCOPE_SCREENSHOTS")
        or REPO / ".pytest-artifacts" / "web"
    )
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a profile of its own, at 1280x800 and device scale 1."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
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
    """Save a screenshot as NAME.png in screenshot_dir() and return it as a BGR image."""
    png = driver.get_screenshot_as_png()
    path = screenshot_dir() / f"{name}.png"
    path.write_bytes(png)
    print(f"screenshot: {path}")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def js(driver: Any, expr: str) -> Any:
    return driver.execute_script(f"return {expr};")


def viewport(driver: Any, width: int, height: int, mobile: bool) -> None:
    """Emulate a screen of width x height CSS pixels (a phone: mobile, touch)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})
