# SPDX-License-Identifier: GPL-3.0-or-later
"""The one table of `run`'s settings: each declared once, everything else derived from it.

A row gives a setting's type, default, validator, help text, flag, metavar, help group and
whether a reload applies it live. From the table come the config file's keys and their
validation (bridge.app.config), the `run` flags with their help (`add_run_flags`), the flag
values handed to the config loader (`flag_overrides`) and the daemon's live-reload keys
(`LIVE_KEYS`). bridge.app.config.Config is a typed dataclass a unit test holds to this table.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.app.paths import (
    default_control_socket,
    default_recordings_dir,
    default_snapshot_dir,
    default_state_dir,
)
from bridge.app.ports import instance_port
from bridge.camera.guard import DEFAULT_MAX_PICTURE_SIZE
from bridge.capture.recordings import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS
from bridge.core import models
from bridge.core.protocol import DEVICE_IP, EVENT_PORT, STREAM_PORT
from bridge.errors import ConfigError

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
DEFAULT_MAX_PICTURE = "{}x{}".format(*DEFAULT_MAX_PICTURE_SIZE)
# A raw picture needs a few buffers of its size (I420, BGR, the camera's); at 8192x8192 they
# already take a good part of the service's MemoryMax.
MAX_PICTURE_SIDE = 8192
MIN_PICTURE_SIDE = 16
# The web page: loopback only unless the user opens it to the network on purpose.
DEFAULT_HTTP = "127.0.0.1:8031"
# Recording limits: always some, so a forgotten recording cannot fill the disk.
MIN_RECORD_BYTES = 64 * 1024
MAX_RECORD_SECONDS = 24 * 3600

Check = Callable[[str, str, Any], Any]


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


def parse_picture_size(text: str) -> tuple[int, int]:
    """`max_picture_size` / `--max-picture-size`: "WxH" as (width, height); ValueError says
    why not."""
    w_text, sep, h_text = text.strip().lower().partition("x")
    if not sep or not w_text.isdigit() or not h_text.isdigit():
        raise ValueError('use WIDTHxHEIGHT such as "4096x4096"')
    size = int(w_text), int(h_text)
    if not all(MIN_PICTURE_SIDE <= side <= MAX_PICTURE_SIDE for side in size):
        raise ValueError(f"width and height must be from {MIN_PICTURE_SIDE} to {MAX_PICTURE_SIDE}")
    return size


# ---- validators: (source, key, value) -> the value to use, or ConfigError -----------------


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


def _record_bytes(source: str, key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not MIN_RECORD_BYTES <= v <= 1 << 40:
        raise _fail(source, key, v, f"must be a byte count from {MIN_RECORD_BYTES} to {1 << 40}")
    return v


def _record_seconds(source: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= MAX_RECORD_SECONDS:
        raise _fail(
            source, key, v, f"must be a number of seconds above 0 and at most {MAX_RECORD_SECONDS}"
        )
    return float(v)


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


def _model(source: str, key: str, v: Any) -> str:
    s = _string(source, key, v).strip().lower()
    if s == models.AUTO or models.find(s) is not None:
        return s
    raise _fail(
        source,
        key,
        v,
        f'must be "auto" or one of {", ".join(models.NAMES)} (see `borescope-bridge models`)',
    )


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


def _picture_size(source: str, key: str, v: Any) -> str:
    try:
        size = parse_picture_size(_string(source, key, v))
    except ValueError as exc:
        raise _fail(source, key, v, str(exc)) from None
    return f"{size[0]}x{size[1]}"


def _choice(source: str, key: str, v: Any, choices: tuple[Any, ...]) -> Any:
    if isinstance(v, bool) or v not in choices:
        raise _fail(source, key, v, "must be one of " + ", ".join(str(c) for c in choices))
    return v


# ---- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting of `run`: config key `name`, flag `--name-with-dashes` unless help is None."""

    name: str
    type: type
    default: Any
    check: Check | None = None  # None: one of `choices`
    help: str | None = None  # None: a config-file key without a flag
    metavar: str | None = None
    group: str | None = None  # the help section of its flag
    choices: tuple[Any, ...] | None = None
    live: bool = False  # a reload applies it without a restart
    # An empty or missing value means "this default", computed when the settings are loaded
    # from the instance's interface (None for the single daemon).
    default_factory: Callable[[str | None], str] | None = None

    @property
    def flag(self) -> str:
        """How a value given on the command line is named in errors (and the flag itself)."""
        return "--" + self.name.replace("_", "-")

    @property
    def has_flag(self) -> bool:
        return self.help is not None

    def validate(self, value: Any, source: str) -> Any:
        """The value to use; a ConfigError naming `source` (a file or a flag), key and value."""
        if self.check is not None:
            return self.check(source, self.name, value)
        assert self.choices is not None
        return _choice(source, self.name, value, self.choices)


def default_http(interface: str | None) -> str:
    """127.0.0.1:8031, or for an instance its port (bridge.app.ports)."""
    if not interface:
        return DEFAULT_HTTP
    return f"127.0.0.1:{instance_port(interface, default_state_dir())}"


def _snapshot_dir(interface: str | None) -> str:
    return default_snapshot_dir()


def _recordings_dir(interface: str | None) -> str:
    return default_recordings_dir()


def _optional_path(source: str, key: str, v: Any) -> str | None:
    return _path(source, key, v, optional=True)


def _required_path(source: str, key: str, v: Any) -> str | None:
    return _path(source, key, v, optional=False)


def _frame_size(source: str, key: str, v: Any) -> int:
    return _size(source, key, v, MAX_FRAME_BYTES_CAP)


def _buffer_size(source: str, key: str, v: Any) -> int:
    return _size(source, key, v)


# In the order of `run --help`; the config file and --print-config follow Config's field order.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "interface",
        str,
        None,
        _interface,
        "this instance's network interface (one instance per borescope when there are "
        "several, each on its own adapter, or a LAN that is 192.168.10.0/24 too): datagrams "
        "from the device count only if they arrive on it, and everything sent to it leaves by "
        "it. It also gives the instance its own control socket, web port, camera and snapshot "
        "names (see docs/several-scopes.md); default: the interface the kernel routes the "
        "device's address through",
        metavar="IFACE",
        group="device",
    ),
    Setting(
        "model",
        str,
        models.AUTO,
        _model,
        'which scope: "auto" (default: probe the family\'s addresses and ports that have a '
        "direct link, take the first framing that sends a valid frame) or a name from "
        "`borescope-bridge models`. A name sets the address and ports, unless --device-ip or "
        "a port is given too",
        metavar="NAME|auto",
        group="device",
    ),
    Setting(
        "device_ip",
        str,
        DEVICE_IP,
        _ip,
        "the borescope's address (default 192.168.10.123)",
        metavar="ADDR",
        group="device",
    ),
    Setting(
        "stream_port",
        int,
        STREAM_PORT,
        _port,
        "UDP port for heartbeat and video (default 8030)",
        metavar="PORT",
        group="device",
    ),
    Setting(
        "event_port",
        int,
        EVENT_PORT,
        _port,
        "UDP port for the snapshot button (default 50000)",
        metavar="PORT",
        group="device",
    ),
    Setting(
        "wait",
        float,
        30.0,
        _nonneg_number,
        "exit 0 when no borescope answers within S seconds (default 30; 0 = wait forever)",
        metavar="S",
        group="device",
        live=True,
    ),
    Setting(
        "linger",
        float,
        600.0,
        _nonneg_number,
        "exit 0 after the borescope has been gone for S seconds (default 600; 0 = stay forever)",
        metavar="S",
        group="device",
        live=True,
    ),
    Setting(
        "camera",
        str,
        "auto",
        _camera,
        'v4l2loopback device: "auto" (default: the one labelled Borescope, else '
        'the first free one), a device path, or "none"',
        metavar="auto|none|/dev/videoN",
        group="outputs",
    ),
    Setting(
        "format",
        str,
        "raw",
        None,
        "what the camera gets: raw decoded YUV (default, every app) or the "
        "device's MJPEG as is (no decoding; no rotate/flip)",
        group="outputs",
        choices=FORMATS,
    ),
    Setting(
        "rotate",
        int,
        0,
        None,
        "rotate the camera picture clockwise (default 0)",
        group="outputs",
        choices=ROTATIONS,
        live=True,
    ),
    Setting(
        "flip",
        str,
        "none",
        None,
        "mirror the camera picture (default none)",
        group="outputs",
        choices=FLIPS,
        live=True,
    ),
    Setting(
        "max_picture_size",
        str,
        DEFAULT_MAX_PICTURE,
        _picture_size,
        "drop frames that declare a larger picture, before decoding them (default "
        f"{DEFAULT_MAX_PICTURE}: no supported borescope comes near it; a damaged or hostile "
        "frame could otherwise make the decoder allocate gigabytes)",
        metavar="WxH",
        group="outputs",
    ),
    Setting(
        "snapshot_dir",
        str,
        "",
        _required_path,
        "where snapshots go (default: $STATE_DIRECTORY/snapshots or "
        "/var/lib/borescope-bridge/snapshots for the service, "
        "~/Pictures/Borescope for a user)",
        metavar="DIR",
        group="outputs",
        live=True,
        default_factory=_snapshot_dir,
    ),
    Setting(
        "record",
        str,
        None,
        _optional_path,
        "append every frame to FILE as raw MJPEG (play: ffplay -f mjpeg FILE)",
        metavar="FILE",
        group="outputs",
        live=True,
    ),
    Setting(
        "recordings_dir",
        str,
        "",
        _required_path,
        "where recordings (.mkv) go (default: $STATE_DIRECTORY/recordings or "
        "/var/lib/borescope-bridge/recordings for the service, ~/Videos/Borescope for a user)",
        metavar="DIR",
        group="outputs",
        live=True,
        default_factory=_recordings_dir,
    ),
    Setting(
        "record_max_bytes",
        int,
        DEFAULT_MAX_BYTES,
        _record_bytes,
        f"a recording stops by itself at this size (default {DEFAULT_MAX_BYTES}: 2 GiB)",
        metavar="BYTES",
        group="outputs",
        live=True,
    ),
    Setting(
        "record_max_seconds",
        float,
        DEFAULT_MAX_SECONDS,
        _record_seconds,
        f"a recording stops by itself after this long (default {DEFAULT_MAX_SECONDS:g}: an hour)",
        metavar="S",
        group="outputs",
        live=True,
    ),
    Setting(
        "control_socket",
        str,
        "",
        _required_path,
        "Unix socket for `snapshot` and `status` (default: "
        "$RUNTIME_DIRECTORY/control.sock, /run/borescope-bridge/control.sock "
        "for root, $XDG_RUNTIME_DIR/borescope-bridge/control.sock for a user, else "
        "${TMPDIR:-/tmp}/borescope-bridge-UID/control.sock, which must be yours, mode 0700; "
        "with --interface IF, a directory IF/ of its own below the first three, "
        "borescope-bridge-UID-IF/ for the last)",
        metavar="PATH",
        group="daemon",
        default_factory=default_control_socket,
    ),
    Setting(
        "http",
        str,
        DEFAULT_HTTP,
        _http,
        "where the web page listens (default 127.0.0.1:8031: this machine only; "
        "0.0.0.0:8031 for phones on the network; off to turn it off; with --interface, "
        "8031 for the first instance ever and a port of its own from 8032 up for every "
        "other, the same at every start)",
        metavar="HOST:PORT|off",
        group="daemon",
        default_factory=default_http,
    ),
    Setting("fps_hint", float, 30.0, _positive_number),
    Setting("max_frame_bytes", int, DEFAULT_MAX_FRAME_BYTES, _frame_size),
    Setting("receive_buffer_bytes", int, DEFAULT_RCVBUF_BYTES, _buffer_size),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
LIVE_KEYS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.live)
GROUPS = ("device", "outputs", "daemon")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The `run` flags: one per setting that has one, by group, then --config/--print-config.

    A flag's default is None ("not given"), so the config file's value stands unless a flag
    overrides it; the help texts name the real defaults.
    """
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for s in SETTINGS:
        if not s.has_flag:
            continue
        assert s.group is not None, s.name
        kwargs: dict[str, Any] = {"help": s.help}
        if s.type is not str:
            kwargs["type"] = s.type
        if s.metavar is not None:
            kwargs["metavar"] = s.metavar
        if s.choices is not None:
            kwargs["choices"] = s.choices
        groups[s.group].add_argument(s.flag, **kwargs)
    daemon = groups["daemon"]
    daemon.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default /etc/borescope-bridge/config.toml if it "
        "exists); flags override it",
    )
    daemon.add_argument(
        "--print-config", action="store_true", help="print the effective settings as TOML and exit"
    )


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The values of the setting flags (None: not given), for bridge.app.config.load."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if s.has_flag}


def validate(key: str, value: Any, source: str) -> Any:
    """Validate one setting's value from `source` (a file path, or a flag such as --wait)."""
    setting = BY_NAME.get(key)
    if setting is None:
        raise ConfigError(f"unknown setting {key!r}")
    return setting.validate(value, source)
