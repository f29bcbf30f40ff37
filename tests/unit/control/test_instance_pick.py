# SPDX-License-Identifier: GPL-3.0-or-later
"""Which instance a client command means, and what the page links to."""

from __future__ import annotations

import pytest

from bridge.app.status import instance_links
from bridge.control.instances import Instance, pick
from bridge.errors import ControlError

A = Instance("/run/borescope-bridge/usb0/control.sock", "usb0", {"state": "streaming"})
B = Instance("/run/borescope-bridge/usb1/control.sock", "usb1", {"state": "streaming"})
PLAIN = Instance("/run/borescope-bridge/control.sock", None, {})


def test_the_only_one_needs_no_name() -> None:
    assert pick([A], None) is A
    assert pick([PLAIN], None) is PLAIN


def test_several_need_a_name_and_the_error_lists_them() -> None:
    with pytest.raises(ControlError) as exc:
        pick([A, B, PLAIN], None)
    text = str(exc.value)
    assert "--interface" in text and "usb0" in text and "usb1" in text
    assert "(no --interface)" in text
    assert pick([A, B], "usb1") is B


def test_a_name_that_does_not_run_says_how_to_start_it() -> None:
    with pytest.raises(ControlError, match=r"borescope-bridge@usb7.*--interface usb7"):
        pick([A, B], "usb7")
    with pytest.raises(ControlError, match="is borescope-bridge running"):
        pick([], None)


def test_the_page_links_to_served_pages_only() -> None:
    links = instance_links(
        [
            ("usb0", {"http": "127.0.0.1:8040", "state": "streaming"}),
            ("usb1", {"http": "off"}),
            ("usb2", {"http": "127.0.0.1:8041", "http_error": "port in use"}),
            (None, {"http": "0.0.0.0:8031", "state": "waiting for device"}),
        ]
    )
    assert links == [
        {"interface": "usb0", "host": "127.0.0.1", "port": 8040, "state": "streaming"},
        {"interface": None, "host": "0.0.0.0", "port": 8031, "state": "waiting for device"},
    ]
