# SPDX-License-Identifier: GPL-3.0-or-later
"""The settings table: the Config dataclass, the config keys and the `run` flags agree with it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from bridge.app import settings
from bridge.app.config import KEYS, Config
from bridge.errors import ConfigError


def test_config_fields_and_defaults_are_the_tables() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(Config) if f.name != "config_path"}
    assert set(fields) == {s.name for s in settings.SETTINGS}
    for s in settings.SETTINGS:
        assert fields[s.name] == s.default, s.name
    assert set(KEYS) == set(fields)


def test_flags_come_from_the_table_and_config_only_keys_have_none() -> None:
    p = argparse.ArgumentParser()
    settings.add_run_flags(p)
    args = p.parse_args(["--device-ip", "10.0.0.9", "--rotate", "90", "--snapshot-dir", "/x"])
    over = settings.flag_overrides(args)
    assert over["device_ip"] == "10.0.0.9"
    assert over["rotate"] == 90
    assert over["snapshot_dir"] == "/x"
    assert over["wait"] is None
    assert {"fps_hint", "max_frame_bytes", "receive_buffer_bytes"}.isdisjoint(over)
    with pytest.raises(SystemExit):
        p.parse_args(["--fps-hint", "10"])
    with pytest.raises(SystemExit):
        p.parse_args(["--rotate", "45"])


def test_live_keys_are_the_ones_a_reload_can_apply() -> None:
    assert set(settings.LIVE_KEYS) == {
        "snapshot_dir",
        "record",
        "recordings_dir",
        "record_max_bytes",
        "record_max_seconds",
        "wait",
        "linger",
        "rotate",
        "flip",
    }


def test_validate_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^--wait -1: must be a number of seconds"):
        settings.validate("wait", -1, "--wait")
    with pytest.raises(ConfigError, match=r"^/etc/x\.toml: key 'flip' = 'up': must be one of"):
        settings.validate("flip", "up", "/etc/x.toml")
    with pytest.raises(ConfigError, match="unknown setting"):
        settings.validate("nope", 1, "--nope")
    assert settings.validate("record", "", "--record") is None


def test_max_picture_size_is_width_x_height_within_bounds() -> None:
    assert settings.validate("max_picture_size", "1920X1080", "--max-picture-size") == "1920x1080"
    assert settings.parse_picture_size(settings.DEFAULT_MAX_PICTURE) == (4096, 4096)
    for bad, why in (
        ("4096", "WIDTHxHEIGHT"),
        ("4096x", "WIDTHxHEIGHT"),
        ("-1x10", "WIDTHxHEIGHT"),
        ("30000x30000", "from 16 to 8192"),
        ("8x8", "from 16 to 8192"),
    ):
        with pytest.raises(ConfigError, match=why):
            settings.validate("max_picture_size", bad, "/etc/x.toml")
    with pytest.raises(ConfigError, match="in quotes"):
        settings.validate("max_picture_size", 4096, "/etc/x.toml")
    p = argparse.ArgumentParser()
    settings.add_run_flags(p)
    over = settings.flag_overrides(p.parse_args(["--max-picture-size", "640x480"]))
    assert over["max_picture_size"] == "640x480"
