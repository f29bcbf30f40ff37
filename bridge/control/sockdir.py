# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the control socket may live, checked by the daemon before binding and by clients
before connecting.

Sockets in a directory that others may write to (the ``/tmp`` fallback without
``XDG_RUNTIME_DIR``): the directory must be a real directory, ours, mode 0700, or the daemon
and the clients refuse it (as ssh-agent and tmux do), so another local user can neither take
the socket's place nor answer in the daemon's name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat

from bridge.errors import ControlError


def _writable_by_others(directory: str) -> bool:
    """True for a directory where others may create names (/tmp, /dev/shm)."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _shared_parent(directory: str) -> bool:
    """True when others may write to the directory that holds `directory`."""
    return _writable_by_others(os.path.dirname(os.path.abspath(directory)) or "/")


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private_dir(directory: str, trusted_uids: tuple[int, ...], what_to_do: str) -> None:
    """Refuse a socket directory that another user could control. Never follows a symlink."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise ControlError(f"{directory} does not exist: {what_to_do}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ControlError(
            f"{directory} is a symbolic link, not a directory: another user may be trying to "
            f"intercept borescope-bridge's control socket. Remove it (`rm {directory}`); "
            + what_to_do
        )
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(
            f"{directory} exists and is not a directory: remove it (`rm {directory}`); "
            + what_to_do
        )
    if st.st_uid not in trusted_uids:
        raise ControlError(
            f"{directory} belongs to {_user_name(st.st_uid)}, not to you: another user may be "
            "trying to intercept borescope-bridge's control socket. Have it removed "
            f"(`sudo rm -r {directory}`); " + what_to_do
        )
    if st.st_mode & 0o077:
        raise ControlError(
            f"{directory} has mode {stat.S_IMODE(st.st_mode):04o}, open to other users; it "
            f"must be 0700: `chmod 700 {directory}`, or remove it; " + what_to_do
        )


def prepare_socket_dir(directory: str) -> None:
    """Create the daemon's socket directory; in a shared parent, private (0700) and checked."""
    if _shared_parent(directory):
        try:
            os.mkdir(directory, 0o700)  # never follows a symlink in the last component
        except FileExistsError:
            pass
        except OSError as exc:
            raise ControlError(
                f"cannot create the control socket directory {directory}: {exc.strerror} "
                "(choose another place with --control-socket)"
            ) from None
        check_private_dir(
            directory,
            (os.geteuid(),),
            "or set XDG_RUNTIME_DIR, or choose another place with --control-socket",
        )
        return
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise ControlError(
            f"cannot create the control socket directory {directory}: {exc.strerror} "
            "(choose another place with --control-socket)"
        ) from None


def check_client_socket(path: str) -> None:
    """Before connecting: a socket that another user could have planted is refused.

    In a directory whose parent others may write to (the /tmp fallback), the directory must
    be ours (or root's) with mode 0700; a socket right in such a directory must be ours.
    """
    trusted = (os.geteuid(), 0)
    directory = os.path.dirname(os.path.abspath(path))
    if _writable_by_others(directory):
        with contextlib.suppress(FileNotFoundError):  # connecting says what is missing
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or st.st_uid not in trusted:
                raise ControlError(
                    f"{path} belongs to {_user_name(st.st_uid)}, not to you, in a directory "
                    "that other users may write to: it may be an impostor; pass the socket "
                    "of your own daemon with --socket"
                )
    if _shared_parent(directory):
        check_private_dir(directory, trusted, "then start the daemon again, or pass --socket")
