# SPDX-License-Identifier: GPL-3.0-or-later
"""Pictures -> baseline JPEG: BGR with 4:2:2 chroma (the no-signal picture, the simulator's
frames), and full-range Y/Cb/Cr planes as they are (re-encoding a picture decoded to YUV).

libturbojpeg's ``tjCompress2`` through ctypes first: the system library the decoder already
needs, so the Debian package encodes without OpenCV or simplejpeg, and every process on a machine
produces the same bytes for the same picture. OpenCV, then simplejpeg, only where libturbojpeg is
missing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from bridge.errors import BridgeError
from bridge.pixels.decode import TJSAMP_420, TJSAMP_422, load_turbojpeg
from bridge.pixels.optional import cv2, simplejpeg

_TJPF_BGR = 1


@functools.cache  # once per library: the signatures never change, and encoding may be per frame
def _bind(lib: ctypes.CDLL) -> None:
    lib.tjInitCompress.restype = ctypes.c_void_p
    lib.tjInitCompress.argtypes = []
    lib.tjCompress2.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.tjCompress2.restype = ctypes.c_int
    lib.tjFree.argtypes = [ctypes.c_void_p]
    lib.tjFree.restype = None
    lib.tjDestroy.argtypes = [ctypes.c_void_p]
    lib.tjDestroy.restype = ctypes.c_int
    lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
    lib.tjGetErrorStr2.restype = ctypes.c_char_p
    lib.tjCompressFromYUVPlanes.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.tjCompressFromYUVPlanes.restype = ctypes.c_int


def _turbojpeg_encode(lib: ctypes.CDLL, bgr: np.ndarray, quality: int) -> bytes:
    h, w = bgr.shape[:2]
    return _compress(
        lib,
        lambda handle, buf, size: lib.tjCompress2(
            handle, bgr.ctypes.data, w, w * 3, h, _TJPF_BGR, buf, size, TJSAMP_422, quality, 0
        ),
    )


def _compress(lib: ctypes.CDLL, call: Callable[[int, Any, Any], int]) -> bytes:
    """Run one tjCompress* call on a fresh handle; the JPEG bytes, the library's buffer freed."""
    _bind(lib)
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


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG with 4:2:2 chroma, as the borescope's (and most webcams') encoder does."""
    bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
    lib = load_turbojpeg()
    if lib is not None:
        return _turbojpeg_encode(lib, bgr, quality)
    if cv2 is not None and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
        ]
        ok, buf = cv2.imencode(".jpg", bgr, params)
        if not ok:
            raise BridgeError("OpenCV could not encode a JPEG frame")
        return bytes(buf.tobytes())
    if simplejpeg is not None:
        return bytes(simplejpeg.encode_jpeg(bgr, quality, "BGR", "422"))
    raise BridgeError("no JPEG encoder: install libturbojpeg0 (apt install libturbojpeg0)")


def encode_jpeg_yuv_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray, quality: int) -> bytes:
    """JPEG of full-range 4:2:0 planes (Y of h x w, Cb and Cr of h/2 x w/2), no colour maths:
    libturbojpeg's ``tjCompressFromYUVPlanes``, else simplejpeg's ``encode_jpeg_yuv_planes``."""
    planes = [np.ascontiguousarray(p, dtype=np.uint8) for p in (y, u, v)]
    h, w = planes[0].shape
    if planes[1].shape != ((h + 1) // 2, (w + 1) // 2) or planes[2].shape != planes[1].shape:
        raise ValueError(f"not 4:2:0 planes: {[p.shape for p in planes]}")
    lib = load_turbojpeg()
    if lib is not None:
        pointers = (ctypes.c_void_p * 3)(*(p.ctypes.data for p in planes))
        strides = (ctypes.c_int * 3)(*(p.strides[0] for p in planes))
        return _compress(
            lib,
            lambda handle, buf, size: lib.tjCompressFromYUVPlanes(
                handle, pointers, w, strides, h, TJSAMP_420, buf, size, quality, 0
            ),
        )
    if simplejpeg is not None:
        return bytes(simplejpeg.encode_jpeg_yuv_planes(*planes, quality=quality))
    raise BridgeError("no JPEG encoder: install libturbojpeg0 (apt install libturbojpeg0)")
