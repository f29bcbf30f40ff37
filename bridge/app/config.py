# SPDX-License-Identifier: GPL-3.0-or-later
"""Effective settings of `borescope-bridge run`: built-in defaults < config file < flags.

The config file is flat TOML whose keys mirror the `run` flags (``device_ip`` for
``--device-ip``). Every key is validated, and each error names the file, the key
and the bad value, so a typo in /etc/borescope-bridge/config.toml is a one-line fix.
Unset optional values (``interface``, ``record``) are written as empty strings,
because TOML has no null. The settings themselves are declared once, in
bridge.app.settings; this module reads and merges them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.app.paths import (
    SYSTEM_CONTROL_SOCKET,
    SYSTEM_SNAPSHOT_DIR,
    SYSTEM_STATE_DIR,
    control_socket_candidates,
    default_control_socket,
    default_snapshot_dir,
    default_state_dir,
    fallback_control_socket,
    is_system_service,
)
from bridge.app.settings import (
    BY_NAME,
    DEFAULT_HTTP,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_PICTURE,
    DEFAULT_RCVBUF_BYTES,
    FLIPS,
    FORMATS,
    MAX_FRAME_BYTES_CAP,
    ROTATIONS,
    SETTINGS,
    parse_http,
)
from bridge.capture.recordings import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS
from bridge.core.protocol import DEVICE_IP, EVENT_PORT, STREAM_PORT
from bridge.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_HTTP",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_RCVBUF_BYTES",
    "FLIPS",
    "FORMATS",
    "KEYS",
    "MAX_FRAME_BYTES_CAP",
    "ROTATIONS",
    "SYSTEM_CONTROL_SOCKET",
    "SYSTEM_SNAPSHOT_DIR",
    "SYSTEM_STATE_DIR",
    "Config",
    "control_socket_candidates",
    "default_control_socket",
    "default_snapshot_dir",
    "default_state_dir",
    "fallback_control_socket",
    "is_system_service",
    "load",
    "parse_http",
    "read_config_file",
]

DEFAULT_CONFIG_PATH = "/etc/borescope-bridge/config.toml"


@dataclass(frozen=True)
class Config:
    """Everything `run` needs; every path is here so tests can point it anywhere."""

    interface: str | None = None
    model: str = "auto"
    device_ip: str = DEVICE_IP
    stream_port: int = STREAM_PORT
    event_port: int = EVENT_PORT
    camera: str = "auto"
    snapshot_dir: str = ""
    record: str | None = None
    recordings_dir: str = ""
    record_max_bytes: int = DEFAULT_MAX_BYTES
    record_max_seconds: float = DEFAULT_MAX_SECONDS
    control_socket: str = ""
    rotate: int = 0
    flip: str = "none"
    wait: float = 30.0
    linger: float = 600.0
    format: str = "raw"
    fps_hint: float = 30.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_picture_size: str = DEFAULT_MAX_PICTURE
    receive_buffer_bytes: int = DEFAULT_RCVBUF_BYTES
    http: str = DEFAULT_HTTP
    config_path: str | None = None

    def to_toml(self) -> str:
        """The effective settings as TOML that `--config` reads back unchanged."""
        lines = [
            "# Effective settings of borescope-bridge run",
            f"# (built-in defaults < {self.config_path or 'no config file'} < flags)",
        ]
        for f in dataclasses.fields(self):
            if f.name == "config_path":
                continue
            value = getattr(self, f.name)
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "config_path")


def read_config_file(path: str) -> dict[str, Any]:
    """Parse and validate one TOML file; raises ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    values: dict[str, Any] = {}
    for key, v in data.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{path}: unknown key '{key}' ({guess}known keys: {', '.join(KEYS)})")
        values[key] = BY_NAME[key].validate(v, path)
    return values


def load(config_path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the effective Config.

    A missing default file is fine (most installs need no config); a missing file named
    with --config is an error. `overrides` are flag values (None = flag not given).
    """
    values: dict[str, Any] = {}
    used_path: str | None = None
    if config_path is not None:
        values.update(read_config_file(config_path))
        used_path = config_path
    elif os.path.exists(DEFAULT_CONFIG_PATH):
        values.update(read_config_file(DEFAULT_CONFIG_PATH))
        used_path = DEFAULT_CONFIG_PATH
    for key, v in (overrides or {}).items():
        if v is None:
            continue
        if key not in KEYS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = BY_NAME[key].validate(v, BY_NAME[key].flag)
    if values.get("format") == "mjpeg" and (
        values.get("rotate", 0) or values.get("flip", "none") != "none"
    ):
        raise ConfigError(
            f"rotate = {values.get('rotate', 0)} / flip = {values.get('flip', 'none')!r} need "
            'decoding, but format = "mjpeg" passes the device\'s JPEGs through untouched: '
            "use format raw (--format raw) to rotate or flip"
            + (f" (settings from {used_path} and flags)" if used_path else "")
        )
    for setting in SETTINGS:
        if setting.default_factory is not None and not values.get(setting.name):
            values[setting.name] = setting.default_factory(values.get("interface"))
    return Config(config_path=used_path, **values)
