# SPDX-License-Identifier: GPL-3.0-or-later
"""Effective settings of `borescope-bridge run`: built-in defaults < config file < flags.

The config file is flat TOML whose keys mirror the `run` flags (``device_ip`` for
``--device-ip``). Every key is validated, and each error names the file, the key
and the bad value, so a typo in /etc/borescope-bridge/config.toml is a one-line fix.
Unset optional values (``interface``, ``record``) are written as empty strings,
because TOML has no null.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import pwd
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.core.protocol import DEVICE_IP, EVENT_PORT, STREAM_PORT
from bridge.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/borescope-bridge/config.toml"
SYSTEM_SNAPSHOT_DIR = "/var/lib/borescope-bridge/snapshots"
SYSTEM_CONTROL_SOCKET = "/run/borescope-bridge/control.sock"
ROTATIONS = (0, 90, 180, 270)
FLIPS = ("none", "horizontal", "vertical")
FORMATS = ("raw", "mjpeg")
# 8 MiB: a 1080p frame burst is ~180 datagrams; the kernel default (208 KiB) loses most of them.
DEFAULT_RCVBUF_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
# A 1080p JPEG at q95 is ~1 MiB, a 4K one ~4 MiB. The reassembler may hold 8x this at once
# (bridge/core/reassembly.py), so 16 MiB keeps its worst case (128 MiB) well under the unit's
# MemoryMax.
MAX_FRAME_BYTES_CAP = 16 * 1024 * 1024
# The web page: loopback only unless the user opens it to the network on purpose.
DEFAULT_HTTP = "127.0.0.1:8031"
SYSTEM_STATE_DIR = "/var/lib/borescope-bridge"


@dataclass(frozen=True)
class Config:
    """Everything `run` needs; every path is here so tests can point it anywhere."""

    interface: str | None = None
    device_ip: str = DEVICE_IP
    stream_port: int = STREAM_PORT
    event_port: int = EVENT_PORT
    camera: str = "auto"
    snapshot_dir: str = ""
    record: str | None = None
    control_socket: str = ""
    rotate: int = 0
    flip: str = "none"
    wait: float = 30.0
    linger: float = 600.0
    format: str = "raw"
    fps_hint: float = 30.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
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


def is_system_service() -> bool:
    """True when systemd runs us as a service or we run as a system account (no home of our own)."""
    if os.environ.get("STATE_DIRECTORY"):
        return True
    uid = os.getuid()
    if uid == 0:
        return bool(os.environ.get("INVOCATION_ID"))
    return uid < 1000


def default_snapshot_dir() -> str:
    """The service's state directory, else the user's XDG pictures directory + Borescope/."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return str(Path(state.split(":")[0]) / "snapshots")
    if is_system_service():
        return SYSTEM_SNAPSHOT_DIR
    return str(Path(_pictures_dir()) / "Borescope")


def _pictures_dir() -> str:
    env = os.environ.get("XDG_PICTURES_DIR")
    if env:
        return os.path.expanduser(env)
    try:
        out = subprocess.run(
            ["xdg-user-dir", "PICTURES"], capture_output=True, text=True, timeout=2, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    home = _home()
    # xdg-user-dir answers $HOME when PICTURES is not configured: that would litter the home dir.
    if out and os.path.isabs(out) and os.path.normpath(out) != os.path.normpath(home):
        return out
    return str(Path(home) / "Pictures")


def _home() -> str:
    home = os.environ.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/tmp"


def default_state_dir() -> str:
    """Where the daemon keeps state (the web page's token): the service's state directory,
    else the user's XDG state directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return state.split(":")[0]
    if is_system_service():
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else str(Path(_home()) / ".local" / "state")
    return str(Path(base) / "borescope-bridge")


def parse_http(text: str) -> tuple[str, int] | None:
    """`http` / `--http`: None for "off", else (IPv4 address, port); ValueError says why not.

    IPv4 only: the service may use AF_INET and AF_UNIX sockets, nothing else. Port 0 picks a
    free port (`borescope-bridge url` tells which).
    """
    if text.strip().lower() == "off":
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError('use HOST:PORT such as 127.0.0.1:8031 or 0.0.0.0:8031, or "off"')
    if host == "localhost":
        host = "127.0.0.1"
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IPv4 address (use 127.0.0.1 for this machine only, "
            "0.0.0.0 for every network, or one of this machine's addresses)"
        ) from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a port number (0..65535; 0 = a free port)")
    return host, int(port_text)


def default_control_socket() -> str:
    """$RUNTIME_DIRECTORY under systemd, /run/... for root, $XDG_RUNTIME_DIR/... for a user."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return str(Path(runtime.split(":")[0]) / "control.sock")
    if os.getuid() == 0:
        return SYSTEM_CONTROL_SOCKET
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return str(Path(xdg) / "borescope-bridge" / "control.sock")
    return fallback_control_socket()


def fallback_control_socket() -> str:
    """Without XDG_RUNTIME_DIR: $TMPDIR (or /tmp)/borescope-bridge-UID/, which must be ours, 0700.

    The directory sits where any user may create files, so bridge.control.sockdir refuses it unless
    it is a real directory owned by this user with mode 0700 (as ssh-agent and tmux do).
    """
    base = os.environ.get("TMPDIR") or "/tmp"
    return str(Path(base) / f"borescope-bridge-{os.getuid()}" / "control.sock")


def control_socket_candidates() -> list[str]:
    """Where a client looks for a daemon when no --socket is given, most specific first."""
    out: list[str] = []
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        out.append(str(Path(runtime.split(":")[0]) / "control.sock"))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        out.append(str(Path(xdg) / "borescope-bridge" / "control.sock"))
    out.append(SYSTEM_CONTROL_SOCKET)
    # A templated unit may use one runtime directory per interface.
    run_dir = Path(SYSTEM_CONTROL_SOCKET).parent
    with contextlib.suppress(OSError):
        out.extend(sorted(str(p) for p in run_dir.glob("*/control.sock")))
    out.append(fallback_control_socket())
    seen: list[str] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


# ---- validation -------------------------------------------------------------------------


def _fail(source: str, key: str, value: Any, why: str) -> ConfigError:
    if source.startswith("--"):
        return ConfigError(f"{source} {value!r}: {why}")
    return ConfigError(f"{source}: key '{key}' = {value!r}: {why}")


def _port(source: str, key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise _fail(source, key, v, "must be a port number from 1 to 65535")
    return v


def _nonneg_number(source: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or v != v:
        raise _fail(source, key, v, "must be a number of seconds >= 0 (0 = forever)")
    return float(v)


def _positive_number(source: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1000:
        raise _fail(source, key, v, "must be a number > 0 and <= 1000")
    return float(v)


def _size(source: str, key: str, v: Any, most: int = 1 << 30) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 4096 <= v <= most:
        raise _fail(source, key, v, f"must be a byte count from 4096 to {most}")
    return v


def _string(source: str, key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _fail(source, key, v, "must be a string (in quotes)")
    return v


def _path(source: str, key: str, v: Any, optional: bool) -> str | None:
    s = _string(source, key, v)
    if not s:
        if optional:
            return None
        raise _fail(source, key, v, "must not be empty")
    if "\0" in s:
        raise _fail(source, key, v, "contains a NUL byte")
    return os.path.abspath(os.path.expanduser(s))


def _ip(source: str, key: str, v: Any) -> str:
    s = _string(source, key, v)
    try:
        return str(ipaddress.IPv4Address(s))
    except ValueError:
        raise _fail(source, key, v, "must be an IPv4 address such as 192.168.10.123") from None


def _interface(source: str, key: str, v: Any) -> str | None:
    s = _string(source, key, v)
    if not s:
        return None
    if len(s) > 15 or "/" in s or any(c.isspace() for c in s):
        raise _fail(source, key, v, "is not a network interface name (see `ip link`)")
    return s


def _camera(source: str, key: str, v: Any) -> str:
    s = _string(source, key, v)
    if s in ("auto", "none") or s.startswith("/"):
        return s
    raise _fail(source, key, v, 'must be "auto", "none" or a device path such as /dev/video2')


def _http(source: str, key: str, v: Any) -> str:
    s = _string(source, key, v)
    try:
        where = parse_http(s)
    except ValueError as exc:
        raise _fail(source, key, v, str(exc)) from None
    return "off" if where is None else f"{where[0]}:{where[1]}"


def _choice(source: str, key: str, v: Any, choices: tuple[Any, ...]) -> Any:
    if isinstance(v, bool) or v not in choices:
        raise _fail(source, key, v, "must be one of " + ", ".join(str(c) for c in choices))
    return v


def _validate(key: str, v: Any, source: str) -> Any:
    match key:
        case "interface":
            return _interface(source, key, v)
        case "device_ip":
            return _ip(source, key, v)
        case "stream_port" | "event_port":
            return _port(source, key, v)
        case "camera":
            return _camera(source, key, v)
        case "snapshot_dir" | "control_socket":
            return _path(source, key, v, optional=False)
        case "record":
            return _path(source, key, v, optional=True)
        case "rotate":
            return _choice(source, key, v, ROTATIONS)
        case "flip":
            return _choice(source, key, v, FLIPS)
        case "format":
            return _choice(source, key, v, FORMATS)
        case "wait" | "linger":
            return _nonneg_number(source, key, v)
        case "fps_hint":
            return _positive_number(source, key, v)
        case "max_frame_bytes":
            return _size(source, key, v, MAX_FRAME_BYTES_CAP)
        case "receive_buffer_bytes":
            return _size(source, key, v)
        case "http":
            return _http(source, key, v)
    raise AssertionError(key)


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
            raise ConfigError(f"{path}: unknown key '{key}' (known keys: {', '.join(KEYS)})")
        values[key] = _validate(key, v, path)
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
        values[key] = _validate(key, v, "--" + key.replace("_", "-"))
    if values.get("format") == "mjpeg" and (
        values.get("rotate", 0) or values.get("flip", "none") != "none"
    ):
        raise ConfigError(
            f"rotate = {values.get('rotate', 0)} / flip = {values.get('flip', 'none')!r} need "
            'decoding, but format = "mjpeg" passes the device\'s JPEGs through untouched: '
            "use format raw (--format raw) to rotate or flip"
            + (f" (settings from {used_path} and flags)" if used_path else "")
        )
    if not values.get("snapshot_dir"):
        values["snapshot_dir"] = default_snapshot_dir()
    if not values.get("control_socket"):
        values["control_socket"] = default_control_socket()
    return Config(config_path=used_path, **values)
