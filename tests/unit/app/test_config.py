# SPDX-License-Identifier: GPL-3.0-or-later
"""Config: defaults < file < flags, every key validated with file, key and value in the message."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bridge.app import config as cfg
from bridge.app import paths
from bridge.app.config import Config, load
from bridge.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return str(p)


def test_file_values_are_read_and_flags_override_them(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_ip = "10.0.0.5"\nrotate = 90\nlinger = 0\ninterface = "usb0"\n')
    c = load(path, {"rotate": 180, "device_ip": None})
    assert c.device_ip == "10.0.0.5"
    assert c.rotate == 180
    assert c.linger == 0.0
    assert c.interface == "usb0"
    assert c.config_path == path


def test_empty_strings_mean_unset(tmp_path: Path) -> None:
    c = load(write(tmp_path, 'interface = ""\nrecord = ""\n'))
    assert c.interface is None
    assert c.record is None


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "nope.toml"))


def test_missing_default_file_is_fine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cfg, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.toml"))
    c = load(None, {})
    assert c.config_path is None
    assert c.device_ip == "192.168.10.123"
    assert (c.stream_port, c.event_port, c.wait, c.linger) == (8030, 50000, 30.0, 600.0)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("rotate = 45", "rotate", "45"),
        ('flip = "diagonal"', "flip", "diagonal"),
        ('format = "h264"', "format", "h264"),
        ("stream_port = 70000", "stream_port", "70000"),
        ('event_port = "50000"', "event_port", "50000"),
        ('device_ip = "192.168.10.300"', "device_ip", "192.168.10.300"),
        ("wait = -1", "wait", "-1"),
        ("linger = true", "linger", "True"),
        ('camera = "video2"', "camera", "video2"),
        ('interface = "my iface"', "interface", "my iface"),
        ("max_frame_bytes = 12", "max_frame_bytes", "12"),
        ("max_frame_bytes = 1073741824", "max_frame_bytes", "1073741824"),
        ("snapshot_dir = 5", "snapshot_dir", "5"),
    ],
)
def test_bad_values_name_file_key_and_value(
    tmp_path: Path, text: str, key: str, value: str
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    msg = str(info.value)
    assert path in msg
    assert f"'{key}'" in msg
    assert value in msg


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "rotation = 90\n")
    with pytest.raises(ConfigError, match="unknown key 'rotation'") as info:
        load(path)
    assert path in str(info.value)
    assert "did you mean 'rotate'?" in str(info.value)
    nothing_like = write(tmp_path, "zzz = 1\n")
    with pytest.raises(ConfigError) as info:
        load(nothing_like)
    assert "did you mean" not in str(info.value) and "known keys: interface" in str(info.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "rotate = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load(path)
    assert path in str(info.value)


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--device-ip"):
        load(None, {"device_ip": "not-an-ip"})


def test_print_config_round_trips(tmp_path: Path) -> None:
    c = load(
        None,
        {
            "device_ip": "127.0.0.1",
            "stream_port": 1234,
            "rotate": 270,
            "record": str(tmp_path / 'a "b".mjpeg'),
            "snapshot_dir": str(tmp_path),
            "control_socket": str(tmp_path / "c.sock"),
            "wait": 2.5,
        },
    )
    text = c.to_toml()
    parsed = tomllib.loads(text)
    assert parsed["device_ip"] == "127.0.0.1"
    assert parsed["record"] == str(tmp_path / 'a "b".mjpeg')
    again = load(write(tmp_path, text))
    assert again == Config(**{**c.__dict__, "config_path": again.config_path})


def test_service_defaults_follow_systemd_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/borescope-bridge")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/borescope-bridge")
    c = load(None, {})
    assert c.snapshot_dir == "/var/lib/borescope-bridge/snapshots"
    assert c.control_socket == "/run/borescope-bridge/control.sock"


def test_user_defaults_use_pictures_and_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY", "INVOCATION_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "Bilder"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(cfg.os, "getuid", lambda: 1000)
    assert cfg.default_snapshot_dir() == str(tmp_path / "Bilder" / "Borescope")
    assert cfg.default_control_socket() == str(
        tmp_path / "run" / "borescope-bridge" / "control.sock"
    )


def test_user_without_runtime_dir_falls_back_to_tmpdir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cfg.os, "getuid", lambda: 1000)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    expected = str(tmp_path / "borescope-bridge-1000" / "control.sock")
    assert cfg.default_control_socket() == expected
    assert cfg.control_socket_candidates()[-2:] == [expected, paths.demo_control_socket()]
    monkeypatch.delenv("TMPDIR")
    assert cfg.default_control_socket() == "/tmp/borescope-bridge-1000/control.sock"


def test_mjpeg_cannot_rotate_or_flip(tmp_path: Path) -> None:
    path = write(tmp_path, 'format = "mjpeg"\n')
    assert load(path).format == "mjpeg"
    with pytest.raises(ConfigError, match="rotate = 90"):
        load(path, {"rotate": 90})
    with pytest.raises(ConfigError, match="horizontal"):
        load(path, {"flip": "horizontal"})


def test_the_demo_socket_is_beside_a_users_own_and_looked_for_last(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setattr(cfg.os, "getuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    demo = str(tmp_path / "run" / "borescope-bridge" / "demo.sock")
    assert paths.demo_control_socket() == demo
    candidates = cfg.control_socket_candidates()
    assert candidates[-1] == demo
    assert candidates.index(cfg.default_control_socket()) < candidates.index(demo)
    assert candidates.index(cfg.SYSTEM_CONTROL_SOCKET) < candidates.index(demo)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert paths.demo_control_socket() == str(tmp_path / "borescope-bridge-1000" / "demo.sock")


def test_the_default_snapshot_folder_is_made_with_its_parents(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only a folder someone typed must have an existing parent; ~/Pictures may not exist."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setattr(paths.os, "getuid", lambda: 1000)
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "new" / "Pictures"))
    default = paths.default_snapshot_dir()
    paths.check_snapshot_dir(default, strict=True)
    assert Path(default).is_dir()
    with pytest.raises(ConfigError, match="does not exist \\(a typo\\?\\)"):
        paths.check_snapshot_dir(str(tmp_path / "Pictrues" / "Borescope"), strict=True)
    paths.check_snapshot_dir(str(tmp_path / "Pictrues" / "Borescope"))  # a reload: warned
    assert not (tmp_path / "Pictrues").exists()
