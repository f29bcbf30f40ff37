# SPDX-License-Identifier: GPL-3.0-or-later
"""The web page's pure rules and the token file: Host allow-list, bearer parsing, constant-time
comparison, the `http` setting, and a token made once, atomically, with the right mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bridge.app.config import parse_http
from bridge.capture.names import SNAPSHOT_NAME
from bridge.web import auth


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8031", True),
        ("localhost:8031", True),
        ("LocalHost:8031", True),
        ("[::1]:8031", True),
        ("127.0.0.1:8032", False),
        ("127.0.0.1", False),  # port 80 implied
        ("localhost", False),
        ("evil.example:8031", False),
        ("localhost.evil.example:8031", False),
        ("127.0.0.1.nip.io:8031", False),
        ("127.0.0.2:8031", False),
        ("[::1]", False),
        ("[::1]x:8031", False),
        ("[::1:8031", False),
        ("127.0.0.1:+8031", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allow_list(host: str | None, ok: bool) -> None:
    assert auth.host_ok(host, 8031) is ok


def test_host_without_port_only_on_port_80() -> None:
    assert auth.host_ok("localhost", 80)
    assert not auth.host_ok("localhost:8031", 80)


def test_bearer_and_token_comparison() -> None:
    assert auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("bearer  abc ") == "abc"
    assert auth.bearer("Basic abc") is None
    assert auth.bearer("Bearer") is None
    assert auth.bearer(None) is None
    token = "A" * 32
    assert auth.token_ok(token, token)
    assert not auth.token_ok("A" * 31, token)
    assert not auth.token_ok("", token)
    assert not auth.token_ok(None, token)
    assert not auth.token_ok("Ä" * 32, token)  # non-ASCII input neither matches nor raises


def test_token_is_made_once_atomically_with_its_mode(tmp_path: Path) -> None:
    state = tmp_path / "state" / "borescope-bridge"
    token = auth.load_or_create_token(str(state), 0o640)
    path = state / auth.TOKEN_FILE
    assert len(token) >= 22 and path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(state) == [auth.TOKEN_FILE]  # no temporary file left
    assert auth.load_or_create_token(str(state), 0o640) == token  # kept
    other = auth.load_or_create_token(str(tmp_path / "elsewhere"), 0o600)
    assert other != token
    # A damaged file is replaced with a new token, never used as a weak one.
    path.write_text("short\n")
    fresh = auth.load_or_create_token(str(state), 0o600)
    assert fresh not in (token, "short") and len(fresh) >= 22
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_directory_that_cannot_be_made_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        auth.load_or_create_token(str(blocker / "sub"), 0o600)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("off", None),
        ("OFF", None),
        ("127.0.0.1:8031", ("127.0.0.1", 8031)),
        ("localhost:8031", ("127.0.0.1", 8031)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("192.168.1.20:0", ("192.168.1.20", 0)),
    ],
)
def test_http_setting(text: str, parsed: tuple[str, int] | None) -> None:
    assert parse_http(text) == parsed


@pytest.mark.parametrize(
    "text", ["8031", ":8031", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:65536", "[::1]:8031", "a.b:1"]
)
def test_http_setting_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_http(text)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("borescope-20261201-090929-727.jpg", True),
        ("borescope-20261201-090929-727-1.jpg", True),
        ("borescope-20261201-090929-727-9999.jpg", True),
        ("borescope-20261201-090929-72.jpg", False),
        ("borescope-20261201-090929-727.jpeg", False),
        (".borescope-abc.tmp", False),
        ("../borescope-20261201-090929-727.jpg", False),
        ("borescope-20261201-090929-727.jpg/..", False),
        ("borescope-20261201-090929-727.jpg\n", False),
        ("borescope-\u0662\u0660261201-090929-727.jpg", False),  # Arabic-Indic digits
    ],
)
def test_snapshot_name_pattern(name: str, ours: bool) -> None:
    assert bool(SNAPSHOT_NAME.fullmatch(name)) is ours


def test_a_new_token_replaces_the_old_one_whole(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = auth.load_or_create_token(str(state), 0o600)
    new = auth.replace_token(str(state), 0o640)
    path = state / auth.TOKEN_FILE
    assert new != old and len(new) >= 22 and path.read_text() == new + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(state) == [auth.TOKEN_FILE]  # no temporary file left
    assert auth.load_or_create_token(str(state), 0o600) == new  # the next start keeps it


def test_a_new_token_that_cannot_be_written_raises_and_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "blocker").write_text("x")
    with pytest.raises(OSError):
        auth.replace_token(str(state / "blocker"), 0o600)  # not a directory
    (state / "blocker").unlink()
    (state / auth.TOKEN_FILE).mkdir()  # the name is taken by a directory: the rename fails
    with pytest.raises(OSError):
        auth.replace_token(str(state), 0o600)
    assert os.listdir(state) == [auth.TOKEN_FILE]  # the temporary file was removed
