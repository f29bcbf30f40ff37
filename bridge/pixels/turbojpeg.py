# SPDX-License-Identifier: GPL-3.0-or-later
"""The one ctypes binding to the system's libturbojpeg (TurboJPEG 2 API): loaded once per
process, every signature declared once, used by both the decoder and the encoder.

libjpeg-turbo 3.x still exports the 2.x API. The Debian package ``libturbojpeg0`` provides
``libturbojpeg.so.0``; without it callers fall back to simplejpeg or OpenCV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

# TurboJPEG 2.x API constants (turbojpeg.h).
TJSAMP_422 = 1
TJSAMP_420 = 2
TJPF_BGR = 1
TJFLAG_FASTDCT = 2048
TJERR_WARNING = 0


class DecodeError(ValueError):
    """The bytes are not a JPEG we can show (the frame is skipped and counted)."""


_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_c_ulong_p = ctypes.POINTER(ctypes.c_ulong)

# name -> (restype, argtypes): every function this package calls, declared once.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "tjInitDecompress": (ctypes.c_void_p, []),
    "tjInitCompress": (ctypes.c_void_p, []),
    "tjDestroy": (ctypes.c_int, [ctypes.c_void_p]),
    "tjGetErrorStr2": (ctypes.c_char_p, [ctypes.c_void_p]),
    "tjGetErrorCode": (ctypes.c_int, [ctypes.c_void_p]),
    "tjFree": (None, [ctypes.c_void_p]),
    "tjDecompressHeader3": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, _c_int_p, _c_int_p, _c_int_p, _c_int_p],
    ),
    "tjDecompressToYUVPlanes": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            _c_void_pp,
            ctypes.c_int,
            _c_int_p,
            ctypes.c_int,
            ctypes.c_int,
        ],
    ),
    "tjDecompress2": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ],
    ),
    "tjCompress2": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            _c_void_pp,
            _c_ulong_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ],
    ),
    "tjCompressFromYUVPlanes": (
        ctypes.c_int,
        [
            ctypes.c_void_p,
            _c_void_pp,
            ctypes.c_int,
            _c_int_p,
            ctypes.c_int,
            ctypes.c_int,
            _c_void_pp,
            _c_ulong_p,
            ctypes.c_int,
            ctypes.c_int,
        ],
    ),
}


def _bind(lib: ctypes.CDLL) -> None:
    """Declare every signature; AttributeError when the library is too old to have one."""
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lib_lock = threading.Lock()
_lib_cache: list[ctypes.CDLL | None] = []


def load_turbojpeg() -> ctypes.CDLL | None:
    """The system libturbojpeg with the TurboJPEG 2 API, bound, or None (then simplejpeg)."""
    with _lib_lock:
        if _lib_cache:
            return _lib_cache[0]
        lib = None
        for name in ("libturbojpeg.so.0", ctypes.util.find_library("turbojpeg")):
            if not name:
                continue
            try:
                candidate = ctypes.CDLL(name)
                _bind(candidate)
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


class TurboJPEG:
    """One decompressor handle of a bound library, decoding into caller-owned buffers.

    After an error (a damaged header: a bogus table index, a bad marker length) libturbojpeg's
    decompressor stays in its failed state and every later frame fails with the same error, so
    every error replaces the handle: the next frame starts from a fresh one.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
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
            raise self._failed()
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
        self._check(rc)

    def decode_bgr(self, jpeg: bytes, bgr: np.ndarray, flags: int) -> None:
        """Decode into a C-contiguous (h, w, 3) uint8 BGR array of the picture's size."""
        h, w = bgr.shape[:2]
        rc = self._lib.tjDecompress2(
            self._handle, jpeg, len(jpeg), bgr.ctypes.data, w, w * 3, h, TJPF_BGR, flags
        )
        self._check(rc)

    def _check(self, rc: int) -> None:
        # A warning (e.g. a corrupt byte in the entropy data) still produced a full picture.
        if rc != 0 and self._lib.tjGetErrorCode(self._handle) != TJERR_WARNING:
            raise self._failed()

    def _failed(self) -> DecodeError:
        """The library's error as a DecodeError, the failed handle replaced by a fresh one."""
        msg = self._lib.tjGetErrorStr2(self._handle)
        error = DecodeError(msg.decode(errors="replace") if msg else "libturbojpeg error")
        if self._handle:
            self._lib.tjDestroy(self._handle)
        # NULL when out of memory: the next call then fails ("Invalid handle") and tries again.
        self._handle = self._lib.tjInitDecompress()
        return error

    def close(self) -> None:
        if self._handle:
            self._lib.tjDestroy(self._handle)
            self._handle = None


def _compress(lib: ctypes.CDLL, call: Callable[[int, Any, Any], int]) -> bytes:
    """Run one tjCompress* call on a fresh handle; the JPEG bytes, the library's buffer freed."""
    handle = lib.tjInitCompress()
    if not handle:
        raise BridgeError("tjInitCompress failed")
    buf = ctypes.c_void_p()
    size = ctypes.c_ulong()
    try:
        rc = call(handle, ctypes.byref(buf), ctypes.byref(size))
        if rc != 0:
            msg = lib.tjGetErrorStr2(handle)
            raise BridgeError(f"libturbojpeg could not encode: {msg.decode(errors='replace')}")
        return ctypes.string_at(buf.value, size.value)  # type: ignore[arg-type]
    finally:
        if buf.value:
            lib.tjFree(buf)
        lib.tjDestroy(handle)


def compress_bgr(lib: ctypes.CDLL, bgr: np.ndarray, subsamp: int, quality: int) -> bytes:
    """JPEG of a C-contiguous (h, w, 3) uint8 BGR picture."""
    h, w = bgr.shape[:2]
    return _compress(
        lib,
        lambda handle, buf, size: lib.tjCompress2(
            handle, bgr.ctypes.data, w, w * 3, h, TJPF_BGR, buf, size, subsamp, quality, 0
        ),
    )


def compress_yuv_planes(
    lib: ctypes.CDLL, planes: Sequence[np.ndarray], subsamp: int, quality: int
) -> bytes:
    """JPEG of three uint8 Y/Cb/Cr planes (row strides taken from the arrays), no colour maths."""
    h, w = planes[0].shape
    pointers = (ctypes.c_void_p * 3)(*(p.ctypes.data for p in planes))
    strides = (ctypes.c_int * 3)(*(p.strides[0] for p in planes))
    return _compress(
        lib,
        lambda handle, buf, size: lib.tjCompressFromYUVPlanes(
            handle, pointers, w, strides, h, subsamp, buf, size, quality, 0
        ),
    )
