# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the daemon keeps its files when the settings do not say: service or user defaults.

A system service follows systemd's directories (STATE_DIRECTORY, RUNTIME_DIRECTORY) or the
fixed /var/lib and /run places; a user's daemon follows the XDG directories, so two users'
daemons never share a socket or a snapshot folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import subprocess
from pathlib import Path

from bridge.errors import ConfigError

log = logging.getLogger(__name__)

SYSTEM_SNAPSHOT_DIR = "/var/lib/borescope-bridge/snapshots"
SYSTEM_RECORDINGS_DIR = "/var/lib/borescope-bridge/recordings"
SYSTEM_CONTROL_SOCKET = "/run/borescope-bridge/control.sock"
SYSTEM_STATE_DIR = "/var/lib/borescope-bridge"


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


def default_recordings_dir() -> str:
    """The service's state directory, else the user's XDG videos directory + Borescope/."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return str(Path(state.split(":")[0]) / "recordings")
    if is_system_service():
        return SYSTEM_RECORDINGS_DIR
    return str(Path(_xdg_user_dir("VIDEOS", "Videos")) / "Borescope")


def _pictures_dir() -> str:
    return _xdg_user_dir("PICTURES", "Pictures")


def _xdg_user_dir(kind: str, fallback: str) -> str:
    env = os.environ.get(f"XDG_{kind}_DIR")
    if env:
        return os.path.expanduser(env)
    try:
        out = subprocess.run(
            ["xdg-user-dir", kind], capture_output=True, text=True, timeout=2, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    home = _home()
    # xdg-user-dir answers $HOME when the directory is not configured: that would litter it.
    if out and os.path.isabs(out) and os.path.normpath(out) != os.path.normpath(home):
        return out
    return str(Path(home) / fallback)


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


def default_control_socket(interface: str | None = None) -> str:
    """$RUNTIME_DIRECTORY under systemd, /run/... for root, $XDG_RUNTIME_DIR/... for a user.

    An instance for one interface (`run --interface IF`) gets a directory of its own below
    those: .../borescope-bridge/IF/control.sock (the template unit's RuntimeDirectory is that
    directory already), so its socket and lock never clash with another instance's.
    """
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return str(Path(runtime.split(":")[0]) / "control.sock")
    sub = [interface] if interface else []
    if os.getuid() == 0:
        return str(Path(SYSTEM_CONTROL_SOCKET).parent.joinpath(*sub, "control.sock"))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return str(Path(xdg).joinpath("borescope-bridge", *sub, "control.sock"))
    return fallback_control_socket(interface)


def fallback_control_socket(interface: str | None = None) -> str:
    """Without XDG_RUNTIME_DIR: $TMPDIR (or /tmp)/borescope-bridge-UID/, which must be ours, 0700.

    The directory sits where any user may create files, so bridge.control.sockdir refuses it unless
    it is a real directory owned by this user with mode 0700 (as ssh-agent and tmux do). An
    instance's directory is named borescope-bridge-UID-IF, checked the same way.
    """
    base = os.environ.get("TMPDIR") or "/tmp"
    name = f"borescope-bridge-{os.getuid()}" + (f"-{interface}" if interface else "")
    return str(Path(base) / name / "control.sock")


DEMO_SOCKET_NAME = "demo.sock"


def demo_control_socket() -> str:
    """The socket of `borescope-bridge demo`: beside a user's own `run` socket (same private
    directory, same safety checks), under a name of its own, so the client verbs find a demo
    without --socket and a demo never takes the place of a user's daemon."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return str(Path(xdg) / "borescope-bridge" / DEMO_SOCKET_NAME)
    return str(Path(fallback_control_socket()).parent / DEMO_SOCKET_NAME)


def control_socket_candidates() -> list[str]:
    """Where a client looks for a daemon when no --socket is given: the service's, a user's
    own `run`, then the user's demo (bridge.control.client.find_socket picks the live one)."""
    out: list[str] = []
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        out.append(str(Path(runtime.split(":")[0]) / "control.sock"))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        out.append(str(Path(xdg) / "borescope-bridge" / "control.sock"))
        with contextlib.suppress(OSError):
            out.extend(sorted(str(p) for p in Path(xdg, "borescope-bridge").glob("*/control.sock")))
    out.append(SYSTEM_CONTROL_SOCKET)
    # The instances of `run --interface IF` (and the template unit): one directory each.
    run_dir = Path(SYSTEM_CONTROL_SOCKET).parent
    with contextlib.suppress(OSError):
        out.extend(sorted(str(p) for p in run_dir.glob("*/control.sock")))
    out.append(fallback_control_socket())
    base = Path(os.environ.get("TMPDIR") or "/tmp")
    with contextlib.suppress(OSError):
        out.extend(
            sorted(str(p) for p in base.glob(f"borescope-bridge-{os.getuid()}-*/control.sock"))
        )
    out.append(demo_control_socket())
    seen: list[str] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def check_snapshot_dir(directory: str, strict: bool = False) -> None:
    """Warn now, not at the first press, when snapshots cannot be written to `directory`.

    Only the folder itself is created, never a missing parent: a mistyped path
    (~/Pictrues/Borescope) must not quietly become a tree of new folders that nobody looks
    in. The default folder is the exception (~/Pictures may not exist yet). `strict` (at
    start) makes that a ConfigError; on a reload it is a warning and the old folder stays in
    the log's memory.
    """
    parent = os.path.dirname(os.path.abspath(directory))
    if (
        not os.path.isdir(directory)
        and not os.path.isdir(parent)
        and directory != default_snapshot_dir()
    ):
        message = (
            f"snapshot directory {directory} was not created: {parent} does not exist "
            f"(a typo?); create it with mkdir -p {directory}, or fix --snapshot-dir "
            "(snapshot_dir in the config file)"
        )
        if strict:
            raise ConfigError(message)
        log.warning("%s", message)
        return
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        log.warning(
            "snapshot directory %s cannot be created (%s): snapshots will fail "
            "until this is fixed (--snapshot-dir)",
            directory,
            exc.strerror,
        )
        return
    if not os.access(directory, os.W_OK | os.X_OK):
        log.warning(
            "snapshot directory %s is not writable by this user: snapshots will "
            "fail (--snapshot-dir)",
            directory,
        )
