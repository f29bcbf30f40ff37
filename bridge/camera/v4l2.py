# SPDX-License-Identifier: GPL-3.0-or-later
"""A small V4L2 *output* (producer) for v4l2loopback: ioctls through fcntl, one write() per frame.

Why our own instead of pyvirtualcam (read from its v4l2loopback backend, confirmed on a real
v4l2loopback 0.12.7 in the VM harness):

* pyvirtualcam never sends VIDIOC_S_PARM, so apps see a default or missing frame rate; we set
  ``timeperframe`` on the OUTPUT queue, which v4l2loopback reports to readers (G_PARM, and the
  sysfs ``format`` attribute ``YU12:1280x720@30``).
* v4l2loopback 0.12.x/0.13.x only marks an opener as the *writer* when it calls VIDIOC_STREAMON on
  the OUTPUT queue; only a marked writer re-enables the OUTPUT capability when it closes. A
  producer that only write()s (pyvirtualcam) leaves an ``exclusive_caps=1`` device announcing no
  OUTPUT capability after it exits, so a restarted producer that filters on OUTPUT caps cannot
  find it again (v4l2loopback issue 442, pyvirtualcam issue 61). Like OBS' v4l2-output.c we call
  STREAMON after S_FMT (newer modules answer EINVAL and track writers by write(); that is fine)
  and STREAMOFF before close. We also do not require the OUTPUT capability when opening.
* write errors raise CameraError (pyvirtualcam prints them), the GIL is released during write(),
  and compressed MJPEG frames can be written as they are (v4l2loopback sets bytesused = count).

Format negotiation: while a reader still holds the device, v4l2loopback keeps the negotiated
format (0.12: S_FMT silently answers with the old one; 0.15: EBUSY). We compare what the driver
answers, and what G_FMT then reports, with what we asked for. A plain writer says clearly when the
device is locked to another format; with ``adopt_locked`` (the daemon's pipeline) it keeps the
size the device has, so the pipeline can fit its pictures into it and the reader never freezes.

Changing size (:meth:`V4L2Writer.resize`): first S_FMT on the open descriptor (newer modules allow
it when nobody else owns the format); if the device keeps its size, hand over: close and reopen
at once. 0.12 resets the format only when its last opener closes, so the handover switches size
when no reader holds the device, and otherwise reopens at the size the reader has.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
from dataclasses import dataclass
from fractions import Fraction

from bridge.errors import CameraError

log = logging.getLogger(__name__)


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


def fourcc(code: str) -> int:
    """V4L2 pixel format code from its four characters."""
    a, b, c, d = (ord(ch) for ch in code)
    return a | (b << 8) | (c << 16) | (d << 24)


def fourcc_str(value: int) -> str:
    return "".join(chr((value >> (8 * k)) & 0xFF) for k in range(4))


PIX_FMT_YU12 = fourcc("YU12")  # I420: Y plane, U (Cb) plane, V (Cr) plane
PIX_FMT_MJPEG = fourcc("MJPG")

BUF_TYPE_VIDEO_CAPTURE = 1
BUF_TYPE_VIDEO_OUTPUT = 2
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_OUTPUT = 0x00000002
CAP_DEVICE_CAPS = 0x80000000
CAP_TIMEPERFRAME = 0x1000
FIELD_NONE = 1
COLORSPACE_SMPTE170M = 1
COLORSPACE_JPEG = 7
QUANTIZATION_LIM_RANGE = 2

LOOPBACK_DRIVER = "v4l2 loopback"


class Capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class PixFormat(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("pixelformat", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("bytesperline", ctypes.c_uint32),
        ("sizeimage", ctypes.c_uint32),
        ("colorspace", ctypes.c_uint32),
        ("priv", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("ycbcr_enc", ctypes.c_uint32),
        ("quantization", ctypes.c_uint32),
        ("xfer_func", ctypes.c_uint32),
    ]


def format_struct(pointer: type[ctypes._SimpleCData] = ctypes.c_void_p) -> type[ctypes.Structure]:
    """``struct v4l2_format`` for a platform whose pointers look like ``pointer``.

    The kernel's format union holds ``struct v4l2_window``, which has pointer members, so the
    union is aligned to the pointer size: 8 bytes on x86_64 and arm64 (union at offset 8, 208
    bytes), 4 on i386 and armhf (offset 4, 204 bytes). Its other members hold only 8-, 16- and
    32-bit fields, so nothing else raises the alignment. Production passes the real pointer type
    (``c_void_p``); the tests pass a same-sized integer to compute other platforms' layouts.
    """

    class FormatUnion(ctypes.Union):
        _fields_ = [("pix", PixFormat), ("raw_data", ctypes.c_uint8 * 200), ("_align", pointer)]

    class Format(ctypes.Structure):
        _fields_ = [("type", ctypes.c_uint32), ("fmt", FormatUnion)]

    return Format


Format = format_struct()


class Fract(ctypes.Structure):
    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class OutputParm(ctypes.Structure):
    _fields_ = [
        ("capability", ctypes.c_uint32),
        ("outputmode", ctypes.c_uint32),
        ("timeperframe", Fract),
        ("extendedmode", ctypes.c_uint32),
        ("writebuffers", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 4),
    ]


class _ParmUnion(ctypes.Union):
    _fields_ = [("output", OutputParm), ("capture", OutputParm), ("raw_data", ctypes.c_uint8 * 200)]


class StreamParm(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("parm", _ParmUnion)]


def format_ioctls(format_size: int) -> tuple[int, int]:
    """(VIDIOC_G_FMT, VIDIOC_S_FMT): _IOWR('V', 4/5, struct v4l2_format) for that struct size."""
    return _ioc(3, 4, format_size), _ioc(3, 5, format_size)


VIDIOC_QUERYCAP = _ioc(2, 0, ctypes.sizeof(Capability))
VIDIOC_G_FMT, VIDIOC_S_FMT = format_ioctls(ctypes.sizeof(Format))
VIDIOC_STREAMON = _ioc(1, 18, ctypes.sizeof(ctypes.c_int))
VIDIOC_STREAMOFF = _ioc(1, 19, ctypes.sizeof(ctypes.c_int))
VIDIOC_G_PARM = _ioc(3, 21, ctypes.sizeof(StreamParm))
VIDIOC_S_PARM = _ioc(3, 22, ctypes.sizeof(StreamParm))

# A write() failing with one of these means the device is gone or unusable: reopen later.
DEAD_DEVICE_ERRNOS = frozenset(
    (errno.ENODEV, errno.EIO, errno.ENXIO, errno.EBADF, errno.EPIPE, errno.EINVAL, errno.EFAULT)
)

MODPROBE_ADVICE = "sudo modprobe v4l2loopback exclusive_caps=1 card_label=Borescope"
GROUP_ADVICE = "sudo usermod -aG video $USER (then log in again)"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    driver: str
    card: str
    device_caps: int

    @property
    def is_loopback(self) -> bool:
        return self.driver == LOOPBACK_DRIVER

    @property
    def has_output(self) -> bool:
        return bool(self.device_caps & CAP_VIDEO_OUTPUT)

    @property
    def has_capture(self) -> bool:
        return bool(self.device_caps & CAP_VIDEO_CAPTURE)


def query_capability(fd: int) -> DeviceInfo:
    cap = Capability()
    fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
    caps = cap.device_caps if cap.capabilities & CAP_DEVICE_CAPS else cap.capabilities
    return DeviceInfo(
        driver=cap.driver.decode(errors="replace"),
        card=cap.card.decode(errors="replace"),
        device_caps=caps,
    )


def open_error(path: str, exc: OSError) -> CameraError:
    """A CameraError whose message says what to run for this open() failure."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CameraError(f"no permission to open {path}: join the video group: {GROUP_ADVICE}")
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return CameraError(f"{path} does not exist: load the module: {MODPROBE_ADVICE}")
    if exc.errno == errno.EBUSY:
        return CameraError(
            f"{path} is busy (too many openers or another producer): "
            "close the other program or pick another device with --camera"
        )
    return CameraError(f"cannot open {path}: {exc.strerror}")


class _Repaired(Exception):
    """Internal: the device was re-attached; open it again."""


class V4L2Writer:
    """One producer on one v4l2loopback device at one format; frames go out with write().

    ``fmt`` is "raw" (YU12/I420, limited range BT.601) or "mjpeg" (whole JPEGs, variable size).
    """

    def __init__(
        self,
        path: str,
        width: int,
        height: int,
        fmt: str = "raw",
        fps: float = 30.0,
        adopt_locked: bool = False,
    ) -> None:
        if fmt not in ("raw", "mjpeg"):
            raise ValueError(f"unknown output format {fmt!r}")
        self.path = path
        self.width = width
        self.height = height
        self.fmt = fmt
        self.fps = fps
        self.adopt_locked = adopt_locked
        self.fd: int | None = None
        self.info: DeviceInfo | None = None
        self.sizeimage = 0
        self.fps_set = False
        self._streaming = False
        self._resizing = False  # a resize's hand-over: its repeated "kept at" is not news
        self._open()

    @property
    def size(self) -> tuple[int, int]:
        """The size the device is set to (with ``adopt_locked``, maybe not the one asked for)."""
        return self.width, self.height

    # -- setup -------------------------------------------------------------------------------
    def _open(self) -> None:
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise open_error(self.path, exc) from exc
            self.fd = fd
            try:
                self._configure(fd, repair=attempt == 0)
                return
            except _Repaired:
                self.close()
            except BaseException:
                self.close()
                raise

    def _repair_orphaned(self, fd: int) -> None:
        """Undo the state a write-only producer leaves behind on v4l2loopback 0.12.x.

        Such a producer (pyvirtualcam, a crashed daemon of an old version) clears the device's
        "ready for output" flag by writing, but is never marked as the writer, so closing it does
        not set the flag again: once no reader is left the device announces no video capability
        at all and the kernel refuses S_FMT with EINVAL (v4l2loopback issue 442). STREAMON marks
        this opener as the writer even when it fails, so closing it restores the flag.
        """
        log.info("%s was left without capabilities by a previous producer: re-attaching", self.path)
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, VIDIOC_STREAMON, ctypes.c_int(BUF_TYPE_VIDEO_OUTPUT))
        self._streaming = True  # so close() sends the matching STREAMOFF

    def _configure(self, fd: int, repair: bool) -> None:
        try:
            self.info = query_capability(fd)
        except OSError as exc:
            raise CameraError(f"{self.path} is not a V4L2 device ({exc.strerror})") from exc
        if not self.info.is_loopback and not self.info.has_output:
            raise CameraError(
                f"{self.path} ({self.info.card}) is not a v4l2loopback device; "
                f"create one with: {MODPROBE_ADVICE}"
            )
        pixfmt = PIX_FMT_MJPEG if self.fmt == "mjpeg" else PIX_FMT_YU12
        want = Format(type=BUF_TYPE_VIDEO_OUTPUT)
        pix = want.fmt.pix
        pix.width, pix.height, pix.pixelformat = self.width, self.height, pixfmt
        pix.field = FIELD_NONE
        if self.fmt == "mjpeg":
            pix.bytesperline = 0
            pix.sizeimage = max(self.width * self.height * 2, 256 * 1024)
            pix.colorspace = COLORSPACE_JPEG
        else:
            pix.bytesperline = self.width
            pix.sizeimage = self.width * self.height * 3 // 2
            pix.colorspace = COLORSPACE_SMPTE170M
            pix.quantization = QUANTIZATION_LIM_RANGE
        try:
            fcntl.ioctl(fd, VIDIOC_S_FMT, want)
        except OSError as exc:
            no_caps = not self.info.device_caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_OUTPUT)
            if exc.errno == errno.EINVAL and no_caps and repair and self.info.is_loopback:
                self._repair_orphaned(fd)
                raise _Repaired from exc
            # 0.14+ answers only the capture side while another producer holds the output one
            current = self._get_format(fd) or self._get_format(fd, BUF_TYPE_VIDEO_CAPTURE)
            # 0.14+ answers EINVAL, not EBUSY, while another producer streams (capture-only caps)
            taken = exc.errno == errno.EINVAL and self.info.has_capture and not self.info.has_output
            if exc.errno == errno.EBUSY or taken:
                if (
                    exc.errno == errno.EBUSY
                    and current is not None
                    and self._adoptable(current, pixfmt)
                ):
                    self._adopt(current)
                    return self._start(fd, pixfmt)
                raise CameraError(
                    f"{self.path} is locked to {self._describe_pix(current)} by another "
                    f"producer or a still-open reader; close it (or restart the apps using the "
                    f"camera) to switch to {self._describe(self.width, self.height, pixfmt)}"
                ) from exc
            raise CameraError(
                f"{self.path} refused format "
                f"{self._describe(self.width, self.height, pixfmt)}: {exc.strerror}"
            ) from exc
        # 0.12 answers S_FMT with the format it keeps; G_FMT tells what really holds.
        got = self._get_format(fd) or want.fmt.pix
        if (got.width, got.height, got.pixelformat) != (self.width, self.height, pixfmt):
            if self._adoptable(got, pixfmt):
                self._adopt(got)
                return self._start(fd, pixfmt)
            raise CameraError(
                f"{self.path} is locked to {self._describe_pix(got)} "
                f"(a reader still has it open, or keep_format is set); "
                f"wanted {self._describe(self.width, self.height, pixfmt)}: close the apps "
                f"using the camera so the format can change"
            )
        self.sizeimage = got.sizeimage or want.fmt.pix.sizeimage
        self._start(fd, pixfmt)

    def _adoptable(self, current: PixFormat, pixfmt: int) -> bool:
        """Keep the device's size? Only in adopt mode, for our pixel format, with no other
        producer attached (exclusive_caps=1 hides OUTPUT while one is)."""
        if not self.adopt_locked or current.pixelformat != pixfmt:
            return False
        if current.width < 2 or current.height < 2:
            return False
        if self.fmt == "raw" and (current.width % 2 or current.height % 2):
            return False  # I420 pictures have even sides
        info = self.info
        return info is None or not (info.is_loopback and info.has_capture and not info.has_output)

    def _adopt(self, current: PixFormat) -> None:
        log.log(
            logging.DEBUG if self._resizing else logging.WARNING,
            "%s is kept at %dx%d by an app that still has it open (wanted %dx%d): fitting the "
            "pictures into it until the app lets go",
            self.path,
            current.width,
            current.height,
            self.width,
            self.height,
        )
        self.width, self.height = current.width, current.height
        self.sizeimage = current.sizeimage

    def _start(self, fd: int, pixfmt: int) -> None:
        self.fps_set = self._set_fps(fd)
        # The exclusive_caps re-attach workaround (see module docstring).
        try:
            fcntl.ioctl(fd, VIDIOC_STREAMON, ctypes.c_int(BUF_TYPE_VIDEO_OUTPUT))
            self._streaming = True
        except OSError as exc:
            log.debug("STREAMON on %s: %s (fine on v4l2loopback >= 0.14)", self.path, exc.strerror)
        log.info(
            "camera %s (%s) open: %s at %.3g fps%s",
            self.path,
            self.info.card if self.info is not None else "?",
            self._describe(self.width, self.height, pixfmt),
            self.fps,
            "" if self.fps_set else " (frame rate not accepted by the device)",
        )

    @staticmethod
    def _describe(w: int, h: int, pixfmt: int) -> str:
        return f"{w}x{h} {fourcc_str(pixfmt)}"

    def _describe_pix(self, p: PixFormat | None) -> str:
        return "another format" if p is None else self._describe(p.width, p.height, p.pixelformat)

    @staticmethod
    def _get_format(fd: int, buf_type: int = BUF_TYPE_VIDEO_OUTPUT) -> PixFormat | None:
        """What the device's format really is now (G_FMT), or None if it cannot say."""
        cur = Format(type=buf_type)
        try:
            fcntl.ioctl(fd, VIDIOC_G_FMT, cur)
        except OSError:
            return None
        return PixFormat.from_buffer_copy(cur.fmt.pix)

    def resize(self, width: int, height: int) -> bool:
        """Switch to ``width`` x ``height`` without ever leaving the device without a writer.

        True when the device now has that size; False when it kept its size (an app holds it):
        the writer then goes on at :attr:`size`. CameraError when the device is gone (closed).
        """
        fd = self.fd
        if fd is None:
            raise CameraError(f"{self.path} is closed")
        if (width, height) == self.size:
            return True
        pixfmt = PIX_FMT_MJPEG if self.fmt == "mjpeg" else PIX_FMT_YU12
        want = Format(type=BUF_TYPE_VIDEO_OUTPUT)
        pix = want.fmt.pix
        pix.width, pix.height, pix.pixelformat, pix.field = width, height, pixfmt, FIELD_NONE
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, VIDIOC_S_FMT, want)
            got = self._get_format(fd)
            if got is not None and (got.width, got.height, got.pixelformat) == (
                width,
                height,
                pixfmt,
            ):
                self.width, self.height, self.sizeimage = width, height, got.sizeimage
                log.info("camera %s switched to %s", self.path, self._describe_pix(got))
                return True
        # Hand over: the format changes only when every opener has let go (0.12), so close and
        # reopen at once; with an app still attached the reopen keeps (adopts) its size.
        self.close()
        self.width, self.height = width, height
        adopt, self.adopt_locked, self._resizing = self.adopt_locked, True, True
        try:
            self._open()
        finally:
            self.adopt_locked, self._resizing = adopt, False
        return self.size == (width, height)

    def _set_fps(self, fd: int) -> bool:
        """Tell the device our frame rate (S_PARM on OUTPUT), so readers see the real one."""
        rate = Fraction(self.fps).limit_denominator(1001)
        parm = StreamParm(type=BUF_TYPE_VIDEO_OUTPUT)
        parm.parm.output.capability = CAP_TIMEPERFRAME
        parm.parm.output.timeperframe.numerator = rate.denominator
        parm.parm.output.timeperframe.denominator = rate.numerator
        try:
            fcntl.ioctl(fd, VIDIOC_S_PARM, parm)
        except OSError as exc:
            log.warning(
                "%s did not accept a frame rate of %s fps: %s", self.path, rate, exc.strerror
            )
            return False
        return True

    # -- frames ------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """One frame, one write(); CameraError when the device is gone (the caller reopens)."""
        fd = self.fd
        if fd is None:
            raise CameraError(f"{self.path} is closed")
        try:
            n = os.write(fd, data)
        except OSError as exc:
            if exc.errno in DEAD_DEVICE_ERRNOS:
                raise CameraError(
                    f"{self.path} stopped accepting frames ({exc.strerror}); "
                    "was v4l2loopback unloaded?"
                ) from exc
            raise CameraError(f"writing to {self.path} failed: {exc.strerror}") from exc
        size = memoryview(data).nbytes
        if n != size:
            raise CameraError(
                f"{self.path} took {n} of {size} bytes: its buffer is too small "
                f"for this frame (sizeimage {self.sizeimage})"
            )

    def get_fps(self) -> Fraction | None:
        """The frame rate the device reports (what readers will see)."""
        if self.fd is None:
            return None
        parm = StreamParm(type=BUF_TYPE_VIDEO_OUTPUT)
        try:
            fcntl.ioctl(self.fd, VIDIOC_G_PARM, parm)
        except OSError:
            return None
        tpf = parm.parm.output.timeperframe
        if tpf.numerator == 0:
            return None
        return Fraction(tpf.denominator, tpf.numerator)

    def close(self) -> None:
        """STREAMOFF (if we STREAMON'd) and close: the device stays usable for the next producer."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        if self._streaming:
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, VIDIOC_STREAMOFF, ctypes.c_int(BUF_TYPE_VIDEO_OUTPUT))
            self._streaming = False
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self) -> V4L2Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
