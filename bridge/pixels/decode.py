# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG to camera pixels: I420 (YU12), BT.601 limited range, in buffers reused frame after frame.

Why two backends (numbers from ``make bench`` and the team's perf notes, 2 vCPU EPYC):

* ``turbojpeg``: libjpeg-turbo's ``tjDecompressToYUVPlanes`` through a small ctypes binding to the
  system's ``libturbojpeg.so.0`` (Debian package ``libturbojpeg0``). JPEG already stores YCbCr, so
  this skips the colour conversion and upsampling that a BGR decode pays for and then undoes. JPEG's
  YCbCr is *full range* while V4L2 consumers expect *limited range* (what pyvirtualcam's libyuv
  writes), so each plane is rescaled (:class:`bridge.pixels.yuv.RangeFix`: OpenCV when importable,
  else
  exact integer numpy), and 4:2:2 chroma is turned into 4:2:0 by keeping every other row.
* ``simplejpeg``: decode to BGR into a preallocated buffer, then BGR->I420. Used when libturbojpeg
  is missing. JPEG layouts the fast path does not cover (4:4:4, greyscale, odd sizes) go through a
  BGR decode too: simplejpeg when installed, else libturbojpeg's ``tjDecompress2`` (the Debian
  package has no simplejpeg).

Never ``cv2.imdecode`` per frame: it allocates two frame-sized buffers per call, and in a fresh
process glibc returns them to the kernel and page-faults them back in (about 1,300 minor faults per
720p frame), which doubles the cost. Both decoders here release the GIL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

import numpy as np

from bridge.core.jpeg import jpeg_dimensions
from bridge.pixels.optional import simplejpeg
from bridge.pixels.yuv import RangeFix, bgr_to_i420

log = logging.getLogger(__name__)

# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.

# TurboJPEG 2.x API constants (turbojpeg.h); libjpeg-turbo 3.x still exports this API.
TJSAMP_422 = 1
TJSAMP_420 = 2
_TJPF_BGR = 1
_TJFLAG_FASTDCT = 2048
_TJERR_WARNING = 0


class DecodeError(ValueError):
    """The bytes are not a JPEG we can show (the frame is skipped and counted)."""


class TurboJPEG:
    """Minimal ctypes binding: one decompressor handle, decode into caller-owned planes."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        lib.tjInitDecompress.restype = ctypes.c_void_p
        lib.tjInitDecompress.argtypes = []
        lib.tjDestroy.argtypes = [ctypes.c_void_p]
        lib.tjDestroy.restype = ctypes.c_int
        lib.tjDecompressHeader3.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.tjDecompressHeader3.restype = ctypes.c_int
        lib.tjDecompressToYUVPlanes.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.tjDecompressToYUVPlanes.restype = ctypes.c_int
        lib.tjDecompress2.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.tjDecompress2.restype = ctypes.c_int
        lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
        lib.tjGetErrorStr2.restype = ctypes.c_char_p
        lib.tjGetErrorCode.argtypes = [ctypes.c_void_p]
        lib.tjGetErrorCode.restype = ctypes.c_int
        self._handle = lib.tjInitDecompress()
        if not self._handle:
            raise OSError("tjInitDecompress failed")
        self._w = ctypes.c_int()
        self._h = ctypes.c_int()
        self._sub = ctypes.c_int()
        self._cs = ctypes.c_int()
        self._planes = (ctypes.c_void_p * 3)()
        self._strides = (ctypes.c_int * 3)()

    def header(self, jpeg: bytes) -> tuple[int, int, int]:
        """(width, height, TJSAMP subsampling) or DecodeError."""
        rc = self._lib.tjDecompressHeader3(
            self._handle,
            jpeg,
            len(jpeg),
            ctypes.byref(self._w),
            ctypes.byref(self._h),
            ctypes.byref(self._sub),
            ctypes.byref(self._cs),
        )
        if rc != 0:
            raise DecodeError(self._error())
        return self._w.value, self._h.value, self._sub.value

    def decode_planes(
        self,
        jpeg: bytes,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray],
        width: int,
        height: int,
        flags: int,
    ) -> None:
        """Decode into three 2-D uint8 arrays (row strides taken from the arrays)."""
        for k, p in enumerate(planes):
            self._planes[k] = p.ctypes.data
            self._strides[k] = p.strides[0]
        rc = self._lib.tjDecompressToYUVPlanes(
            self._handle, jpeg, len(jpeg), self._planes, width, self._strides, height, flags
        )
        # A warning (e.g. a corrupt byte in the entropy data) still produced a full picture.
        if rc != 0 and self._lib.tjGetErrorCode(self._handle) != _TJERR_WARNING:
            raise DecodeError(self._error())

    def decode_bgr(self, jpeg: bytes, bgr: np.ndarray, flags: int) -> None:
        """Decode into a C-contiguous (h, w, 3) uint8 BGR array of the picture's size."""
        h, w = bgr.shape[:2]
        rc = self._lib.tjDecompress2(
            self._handle, jpeg, len(jpeg), bgr.ctypes.data, w, w * 3, h, _TJPF_BGR, flags
        )
        if rc != 0 and self._lib.tjGetErrorCode(self._handle) != _TJERR_WARNING:
            raise DecodeError(self._error())

    def _error(self) -> str:
        msg = self._lib.tjGetErrorStr2(self._handle)
        return msg.decode(errors="replace") if msg else "libturbojpeg error"

    def close(self) -> None:
        if self._handle:
            self._lib.tjDestroy(self._handle)
            self._handle = None


_lib_lock = threading.Lock()
_lib_cache: list[ctypes.CDLL | None] = []


def load_turbojpeg() -> ctypes.CDLL | None:
    """The system libturbojpeg with the TurboJPEG 2 API, or None (then simplejpeg is used)."""
    with _lib_lock:
        if _lib_cache:
            return _lib_cache[0]
        lib = None
        for name in ("libturbojpeg.so.0", ctypes.util.find_library("turbojpeg")):
            if not name:
                continue
            try:
                candidate = ctypes.CDLL(name)
                candidate.tjDecompressToYUVPlanes  # noqa: B018  (AttributeError if too old)
                candidate.tjGetErrorCode  # noqa: B018
            except (OSError, AttributeError):
                continue
            lib = candidate
            break
        if lib is None:
            log.info(
                "libturbojpeg not found (Debian: apt install libturbojpeg0); "
                "decoding through simplejpeg, about 5-15%% slower"
            )
        _lib_cache.append(lib)
        return lib


def turbojpeg_available() -> bool:
    """Whether the fast decode-to-YUV backend can be used on this system."""
    return load_turbojpeg() is not None


class Decoder:
    """Decodes JPEGs to one I420 buffer that is reused: the result is valid until the next call.

    Not thread-safe: one Decoder per worker thread. Odd widths/heights are cropped to even, since
    I420 (and Chrome's capture of it) needs even dimensions.
    """

    def __init__(self, backend: str = "auto", fast_dct: bool = False) -> None:
        if backend not in ("auto", "turbojpeg", "simplejpeg"):
            raise ValueError(f"unknown decoder backend {backend!r}")
        self._tj: TurboJPEG | None = None
        if backend in ("auto", "turbojpeg"):
            lib = load_turbojpeg()
            if lib is not None:
                self._tj = TurboJPEG(lib)
            elif backend == "turbojpeg":
                raise DecodeError("libturbojpeg.so.0 not found: apt install libturbojpeg0")
        if self._tj is None and simplejpeg is None:
            raise DecodeError(
                "no JPEG decoder: install libturbojpeg0 (Debian/Ubuntu: apt install libturbojpeg0)"
                if backend != "simplejpeg"
                else "simplejpeg is not installed (pip install simplejpeg)"
            )
        self.backend = "turbojpeg" if self._tj is not None else "simplejpeg"
        self._range = RangeFix()
        self._fast_dct = fast_dct
        self._tj_flags = _TJFLAG_FASTDCT if fast_dct else 0
        self._out = np.empty((0, 0), np.uint8)
        self._out_wh = (0, 0)
        self._chroma = np.empty((0, 0), np.uint8)  # 4:2:2 scratch: two planes stacked
        self._bgr = np.empty((0, 0, 3), np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the last decoded picture."""
        return self._out_wh

    def _output(self, w: int, h: int) -> np.ndarray:
        if self._out_wh != (w, h):
            self._out = np.empty((h * 3 // 2, w), np.uint8)
            self._out_wh = (w, h)
        return self._out

    def decode(self, jpeg: bytes | bytearray | memoryview) -> np.ndarray:
        """I420 picture of shape (h*3/2, w): Y plane, then U (Cb), then V (Cr)."""
        if not isinstance(jpeg, bytes):
            jpeg = bytes(jpeg)
        if self._tj is not None:
            w, h, sub = self._tj.header(jpeg)
            if sub in (TJSAMP_420, TJSAMP_422) and w % 2 == 0 and h % 2 == 0:
                return self._decode_yuv(jpeg, w, h, sub)
        return self._decode_bgr(jpeg)

    def _decode_yuv(self, jpeg: bytes, w: int, h: int, sub: int) -> np.ndarray:
        out = self._output(w, h)
        cw, ch = w // 2, h // 2
        y = out[:h]
        chroma_flat = out[h:].reshape(-1)
        u = chroma_flat[: cw * ch].reshape(ch, cw)
        v = chroma_flat[cw * ch :].reshape(ch, cw)
        if sub == TJSAMP_420:
            self._tj.decode_planes(jpeg, (y, u, v), w, h, self._tj_flags)  # type: ignore[union-attr]
            self._range.chroma(u, u)
            self._range.chroma(v, v)
        else:
            if self._chroma.shape != (2 * h, cw):
                self._chroma = np.empty((2 * h, cw), np.uint8)
            fu, fv = self._chroma[:h], self._chroma[h:]
            self._tj.decode_planes(jpeg, (y, fu, fv), w, h, self._tj_flags)  # type: ignore[union-attr]
            # 4:2:2 -> 4:2:0: keep the even chroma rows (range fix and row drop in one pass).
            self._range.chroma(fu[::2], u)
            self._range.chroma(fv[::2], v)
        self._range.luma(y, y)
        return out

    def _decode_bgr(self, jpeg: bytes) -> np.ndarray:
        dims = jpeg_dimensions(jpeg)
        if dims is None:
            raise DecodeError("not a JPEG (no frame header)")
        w, h = dims
        if self._bgr.shape != (h, w, 3):
            self._bgr = np.empty((h, w, 3), np.uint8)
        if simplejpeg is not None:
            try:
                simplejpeg.decode_jpeg(
                    jpeg, "BGR", fastdct=self._fast_dct, buffer=self._bgr, strict=False
                )
            except ValueError as exc:
                raise DecodeError(str(exc)) from exc
        elif self._tj is not None:
            self._tj.decode_bgr(jpeg, self._bgr, self._tj_flags)
        else:
            raise DecodeError("the decoder was closed and simplejpeg is not installed")
        ew, eh = w & ~1, h & ~1
        if ew == 0 or eh == 0:
            raise DecodeError(f"picture too small: {w}x{h}")
        out = self._output(ew, eh)
        return bgr_to_i420(self._bgr[:eh, :ew], out)

    def close(self) -> None:
        """Free the libturbojpeg handle (the Decoder still works through simplejpeg afterwards, if
        installed)."""
        if self._tj is not None:
            self._tj.close()
            self._tj = None
            self.backend = "simplejpeg"
