# SPDX-License-Identifier: GPL-3.0-or-later
"""Which v4l2loopback device to write to (``--camera``), shared by the daemon and ``doctor``.

Device choice (``--camera auto``): the v4l2loopback device whose card label is "Borescope" (ours,
however it was left by a previous producer), else the first v4l2loopback device that no other
producer is feeding. v4l2loopback devices are recognised from sysfs without opening them, by the
attributes only that driver adds; ``name`` holds the card label. With ``exclusive_caps=1`` a device
that announces CAPTURE but not OUTPUT has a producer attached.

Several scopes (``find_camera(..., instance=True)``, for `run --interface IF`): each instance
takes the first device labelled for borescopes ("Borescope", "Borescope 2", ...) that no other
instance holds. Holding is an flock(2) on the device node, kept for the life of the process (the
kernel drops it when the process ends), so two instances starting together never share one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from bridge.camera.v4l2 import GROUP_ADVICE, MODPROBE_ADVICE, DeviceInfo, query_capability
from bridge.errors import CameraError

log = logging.getLogger(__name__)

CARD_LABEL = "Borescope"
SYSFS_ROOT = "/sys/class/video4linux"
DEV_ROOT = "/dev"
MODULE_DIR = "/sys/module/v4l2loopback"
# Where a user adds devices; it overrides the package's /lib/modprobe.d file of the same name.
MODPROBE_FILE = "/etc/modprobe.d/borescope-bridge.conf"

_VIDEO_RE = re.compile(r"^video(\d+)$")
_INSTANCE_LABEL_RE = re.compile(r"^Borescope(?: ([0-9]+))?$")
# Devices this process holds (path -> the descriptor that carries the flock).
_HELD: dict[str, int] = {}
_LOOPBACK_ATTRIBUTES = ("max_openers", "buffers")


@dataclass(frozen=True, slots=True)
class LoopbackDevice:
    path: str
    label: str
    number: int


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def is_loopback_entry(entry: str) -> bool:
    """Whether a /sys/class/video4linux/videoN entry is a v4l2loopback device.

    v4l2loopback adds its own attributes (``max_openers``, ``buffers``) that no other driver has;
    "virtual" in the sysfs path is not enough (other virtual cameras such as akvcam live there).
    """
    return any(os.path.exists(os.path.join(entry, a)) for a in _LOOPBACK_ATTRIBUTES)


def list_loopback_devices(
    sysfs_root: str = SYSFS_ROOT, dev_root: str = DEV_ROOT
) -> list[LoopbackDevice]:
    """All v4l2loopback devices, lowest number first (identified through sysfs only)."""
    try:
        names = os.listdir(sysfs_root)
    except OSError:
        return []
    found = []
    for name in names:
        m = _VIDEO_RE.match(name)
        if not m:
            continue
        entry = os.path.join(sysfs_root, name)
        if not is_loopback_entry(entry):
            continue  # a real camera or another driver
        label = _read(os.path.join(entry, "name")) or ""
        found.append(LoopbackDevice(os.path.join(dev_root, name), label, int(m.group(1))))
    return sorted(found, key=lambda d: d.number)


def _query(path: str) -> DeviceInfo | None:
    """QUERYCAP on an open that neither reads nor writes; None when it cannot be asked."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return query_capability(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _no_device_error(module_dir: str) -> CameraError:
    if os.path.isdir(module_dir):
        return CameraError(
            "the v4l2loopback module is loaded but has no device: reload it with "
            f"`sudo modprobe -r v4l2loopback && {MODPROBE_ADVICE}`"
        )
    return CameraError(
        f"no virtual camera: the v4l2loopback module is not loaded; run `{MODPROBE_ADVICE}`"
    )


def instance_labels(devices: list[LoopbackDevice]) -> list[LoopbackDevice]:
    """The devices labelled for borescopes, in label order: Borescope, Borescope 2, ..."""
    numbered = []
    for dev in devices:
        m = _INSTANCE_LABEL_RE.match(dev.label)
        if m:
            numbered.append((int(m.group(1) or 1), dev.number, dev))
    return [dev for *_, dev in sorted(numbered, key=lambda t: (t[0], t[1]))]


def hold(path: str) -> bool:
    """Take `path` for this process (an flock on the device node); False if another has it."""
    if path in _HELD:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _HELD[path] = fd
    return True


def find_instance_camera(
    sysfs_root: str = SYSFS_ROOT,
    dev_root: str = DEV_ROOT,
    module_dir: str = MODULE_DIR,
    query: Callable[[str], DeviceInfo | None] = _query,
) -> str:
    """`--camera auto` for one instance of several: the next free "Borescope N" device."""
    devices = list_loopback_devices(sysfs_root, dev_root)
    if not devices:
        raise _no_device_error(module_dir)
    ours = instance_labels(devices)
    for dev in ours:
        if dev.path in _HELD:
            return dev.path  # asked again (the camera reopens): the same one
    for dev in ours:
        if not os.access(dev.path, os.R_OK | os.W_OK):
            raise CameraError(f"no permission to open {dev.path}: {GROUP_ADVICE}")
        try:
            info = query(dev.path)
        except OSError:
            continue
        if info is not None and info.has_capture and not info.has_output:
            continue  # another producer (exclusive_caps=1)
        if hold(dev.path):
            return dev.path
    raise CameraError(
        f"no free v4l2loopback camera for one more borescope: {len(ours)} labelled "
        f"Borescope..., all in use by other instances. Give the module one more device, "
        f'"Borescope {len(ours) + 1}", in {MODPROBE_FILE} (the .deb ships it in '
        "/lib/modprobe.d/: copy it there first): one more entry in each of devices=, "
        "video_nr=, exclusive_caps= and card_label=. Then, with no instance running, reload "
        "it: `sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback`; "
        "or pick one with --camera /dev/videoN"
    )


def find_camera(
    spec: str,
    sysfs_root: str = SYSFS_ROOT,
    dev_root: str = DEV_ROOT,
    module_dir: str = MODULE_DIR,
    query: Callable[[str], DeviceInfo | None] = _query,
    instance: bool = False,
) -> str | None:
    """Resolve ``--camera``: "auto", "none" or a device path -> a path, or None for no camera.

    `instance`: "auto" picks for one instance of several (find_instance_camera). Raises
    CameraError whose message says what to run (load the module, join the group).
    """
    if spec == "none":
        return None
    if spec == "auto" and instance:
        return find_instance_camera(sysfs_root, dev_root, module_dir, query)
    if spec != "auto":
        if not os.path.exists(spec):
            raise CameraError(
                f"{spec} does not exist: run `{MODPROBE_ADVICE}` "
                "(add video_nr=N to get /dev/videoN)"
            )
        if not os.access(spec, os.R_OK | os.W_OK):
            raise CameraError(f"no permission to open {spec}: {GROUP_ADVICE}")
        return spec
    devices = list_loopback_devices(sysfs_root, dev_root)
    if not devices:
        raise _no_device_error(module_dir)
    for dev in devices:
        if dev.label == CARD_LABEL:
            if not os.access(dev.path, os.R_OK | os.W_OK):
                raise CameraError(f"no permission to open {dev.path}: {GROUP_ADVICE}")
            return dev.path
    denied = []
    busy = []
    for dev in devices:
        try:
            info = query(dev.path)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                denied.append(dev.path)
            else:
                busy.append(dev.path)
            continue
        if info is not None and info.has_capture and not info.has_output:
            busy.append(dev.path)  # exclusive_caps=1 and another producer is attached
            continue
        return dev.path
    if denied:
        raise CameraError(f"no permission to open {', '.join(denied)}: {GROUP_ADVICE}")
    raise CameraError(
        f"every v4l2loopback device is in use by another producer ({', '.join(busy)}); add one "
        f"for us: `sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback devices=2 "
        f"exclusive_caps=1,1 card_label=Borescope,Other` or pick one with --camera /dev/videoN"
    )
