# SPDX-License-Identifier: GPL-3.0-or-later
"""Who watches the camera: v4l2loopback's client-usage event, and what each release can tell.

v4l2loopback 0.13 and later queue a private V4L2 event on every change of the number of
streaming readers (``V4L2_EVENT_PRI_CLIENT_USAGE``: one ``u32`` count). A producer subscribes
with ``V4L2_EVENT_SUB_FL_SEND_INITIAL`` (the current count arrives at once), sees POLLPRI when
an event is pending and takes it with ``VIDIOC_DQEVENT``. The type is defined only inside
v4l2loopback.c, never in a public header; the released sources (0.13.2, 0.15.0) define it as
``V4L2_EVENT_PRIVATE_START + 0x08E00000 + 1`` = 0x10E00001 (pre-releases used other values).
0.12.x knows no such event: the subscription fails (EINVAL, or ENOTTY) and nothing changes.

What the count covers differs by release, and decides whether a producer may stop writing
while the count is zero:

* 0.13.x counts readers that STREAMON (mmap: browsers, OBS, ffmpeg, GStreamer) but not those
  that read(): such a reader would get no picture from a producer that idles. Decoding keeps
  running there; the count is still reported.
* 0.14 and later count read() readers too (0.15 reports 1 while the capture stream is taken,
  which, since 0.13, only one reader at a time can hold).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import select
from typing import Protocol

from bridge.camera.v4l2 import VIDIOC_QUERYCAP, Capability

log = logging.getLogger(__name__)

V4L2_EVENT_PRIVATE_START = 0x08000000
EVENT_PRI_CLIENT_USAGE = V4L2_EVENT_PRIVATE_START + 0x08E00000 + 1
EVENT_SUB_FL_SEND_INITIAL = 0x0001
IDLE_FROM_VERSION = (0, 14)  # the first release that counts every kind of reader
MODULE_VERSION_FILE = "/sys/module/v4l2loopback/version"


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


class EventSubscription(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 5),
    ]


class _EventUnion(ctypes.Union):
    # The kernel union holds a __s64 (v4l2_event_ctrl), hence its 8-byte alignment.
    _fields_ = [("data", ctypes.c_uint8 * 64), ("_align", ctypes.c_int64)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("u", _EventUnion),
        ("pending", ctypes.c_uint32),
        ("sequence", ctypes.c_uint32),
        ("timestamp", _Timespec),
        ("id", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 8),
    ]


VIDIOC_DQEVENT = _ioc(2, 89, ctypes.sizeof(Event))
VIDIOC_SUBSCRIBE_EVENT = _ioc(1, 90, ctypes.sizeof(EventSubscription))

Version = tuple[int, int, int]


def version_str(version: Version | None) -> str:
    return "unknown" if version is None else ".".join(map(str, version))


def parse_version(text: str) -> Version | None:
    """ "0.13.2" -> (0, 13, 2); missing parts are 0; None for anything else."""
    try:
        nums = [int(p) for p in text.strip().split(".")]
    except ValueError:
        return None
    if not 1 <= len(nums) <= 3:
        return None
    nums += [0] * (3 - len(nums))
    return (nums[0], nums[1], nums[2])


def module_version(
    fd: int | None = None, version_file: str = MODULE_VERSION_FILE
) -> Version | None:
    """The loaded v4l2loopback's release: sysfs (0.13 and later), else QUERYCAP's, else None.

    0.12.x declares no module version, and on kernels since 3.1 its QUERYCAP ``version`` is the
    kernel's (6.1.x): only a 0.x there is v4l2loopback's own. None means "0.12.x or older"
    when the module is loaded (every later release has the sysfs attribute).
    """
    try:
        with open(version_file, encoding="ascii", errors="replace") as f:
            found = parse_version(f.read())
        if found is not None:
            return found
    except OSError:
        pass
    if fd is None:
        return None
    cap = Capability()
    try:
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
    except OSError:
        return None
    v = cap.version
    found = ((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF)
    return found if found[0] == 0 else None


def counts_every_reader(version: Version | None) -> bool:
    """Only a release whose count includes read() readers may let the producer stop writing."""
    return version is not None and version[:2] >= IDLE_FROM_VERSION


class Usage(Protocol):
    """What the pipeline asks of a reader count (ClientUsage, or a stand-in in tests)."""

    @property
    def supported(self) -> bool: ...
    @property
    def may_idle(self) -> bool: ...
    def readers(self) -> int | None: ...


class ClientUsage:
    """The client-usage subscription of one producer fd; ``readers()`` never blocks."""

    def __init__(self, fd: int, version: Version | None) -> None:
        self.fd = fd
        self.version = version
        self.count: int | None = None
        self.supported = self._subscribe()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLPRI)
        if self.supported:
            self.readers()  # the initial count (SEND_INITIAL) is already queued

    @property
    def may_idle(self) -> bool:
        return self.supported and self.count is not None and counts_every_reader(self.version)

    def _subscribe(self) -> bool:
        sub = EventSubscription(type=EVENT_PRI_CLIENT_USAGE, flags=EVENT_SUB_FL_SEND_INITIAL)
        try:
            fcntl.ioctl(self.fd, VIDIOC_SUBSCRIBE_EVENT, sub)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTTY):
                log.warning("client-usage subscription failed: %s", os.strerror(exc.errno or 0))
            return False
        return True

    def readers(self) -> int | None:
        """Drain the pending events; the newest count (None: the module cannot tell)."""
        if not self.supported:
            return None
        ev = Event()
        while self._poll.poll(0):
            try:
                fcntl.ioctl(self.fd, VIDIOC_DQEVENT, ev)
            except OSError:
                break
            if ev.type == EVENT_PRI_CLIENT_USAGE:
                self.count = ctypes.c_uint32.from_buffer_copy(bytes(ev.u.data[:4])).value
        return self.count


def usage_for(sink: object) -> Usage | None:
    """The reader count of a sink that writes to a real device (it has an ``fd``)."""
    fd = getattr(sink, "fd", None)
    if not isinstance(fd, int):
        return None
    return ClientUsage(fd, module_version(fd))
