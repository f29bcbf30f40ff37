# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the integration tests that drive a browser (tests/support/browser.py)."""

from collections.abc import Iterator
from typing import Any

import pytest
from support.browser import chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Selenium, quit at the end."""
    with chromium() as driver:
        yield driver
