# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket's wire format: one JSON object per line, every bad line named."""

from __future__ import annotations

import json

import pytest

from bridge.control.wire import MAX_SNAPSHOT_TIMEOUT_S, encode_reply, parse_request


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"status"', "not a JSON object"),
        (b'{"cmd": "st\xff\xfeatus"}', "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=["text", "empty", "array", "string", "not-utf8", "brackets"],
)
def test_a_bad_line_is_named(line: bytes, expected: str) -> None:
    reason = parse_request(line)
    assert isinstance(reason, str) and expected in reason


def test_a_request_object_is_parsed() -> None:
    assert parse_request(b'{"cmd": "snapshot", "timeout": 5}') == {"cmd": "snapshot", "timeout": 5}


def test_a_reply_is_one_json_line() -> None:
    data = encode_reply({"ok": False, "error": "a\nb"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"ok": False, "error": "a\nb"}


def test_a_reply_json_cannot_carry_raises() -> None:
    with pytest.raises(TypeError):
        encode_reply({"ok": True, "when": object()})


def test_the_snapshot_timeout_bound_is_positive() -> None:
    assert MAX_SNAPSHOT_TIMEOUT_S > 0
