# SPDX-License-Identifier: GPL-3.0-or-later
"""Pictures -> baseline JPEG: BGR with 4:2:2 chroma (the no-signal picture, the simulator's
frames), and full-range Y/Cb/Cr planes as they are (re-encoding a picture decoded to YUV).

libturbojpeg (:mod:`bridge.pixels.turbojpeg`) first: the system library the decoder already needs,
so the Debian package encodes without OpenCV or simplejpeg, and every process on a machine
produces the same bytes for the same picture. OpenCV, then simplejpeg, only where libturbojpeg is
missing.
"""

from __future__ import annotations

import numpy as np

from bridge.errors import BridgeError
from bridge.pixels.optional import cv2, simplejpeg
from bridge.pixels.turbojpeg import (
    TJSAMP_420,
    TJSAMP_422,
    compress_bgr,
    compress_yuv_planes,
    load_turbojpeg,
)


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG with 4:2:2 chroma, as the borescope's (and most webcams') encoder does."""
    bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
    lib = load_turbojpeg()
    if lib is not None:
        return compress_bgr(lib, bgr, TJSAMP_422, quality)
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
        return compress_yuv_planes(lib, planes, TJSAMP_420, quality)
    if simplejpeg is not None:
        return bytes(simplejpeg.encode_jpeg_yuv_planes(*planes, quality=quality))
    raise BridgeError("no JPEG encoder: install libturbojpeg0 (apt install libturbojpeg0)")
