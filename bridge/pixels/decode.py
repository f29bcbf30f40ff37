# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG to camera pixels: I420 (YU12), BT.601 limited range, in buffers reused frame after frame.

Why two backends (the measurements are in ``make bench`` and the team's perf notes):

* ``turbojpeg``: libjpeg-turbo's ``tjDecompressToYUVPlanes`` through the ctypes binding in
  :mod:`bridge.pixels.turbojpeg` (Debian package ``libturbojpeg0``). JPEG already stores YCbCr, so
  this skips the colour conversion and upsampling that a BGR decode pays for and then undoes.
  JPEG's YCbCr is *full range* while V4L2 consumers expect *limited range* (what pyvirtualcam's
  libyuv writes), so each plane is rescaled (:class:`bridge.pixels.yuv.RangeFix`: OpenCV when
  importable, else exact integer numpy), and 4:2:2 chroma is turned into 4:2:0 by keeping every
  other row.
* ``simplejpeg``: decode to BGR into a preallocated buffer, then BGR->I420. Used when libturbojpeg
  is missing. JPEG layouts the fast path does not cover (4:4:4, greyscale, odd sizes) go through a
  BGR decode too: simplejpeg when installed, else libturbojpeg's ``tjDecompress2`` (the Debian
  package has no simplejpeg).

Never ``cv2.imdecode`` per frame: it allocates two frame-sized buffers per call, and in a fresh
process glibc returns them to the kernel and page-faults them back in on every frame, which
doubles the cost. Both decoders here release the GIL.
"""

from __future__ import annotations

import logging

import numpy as np

from bridge.core.jpeg import jpeg_dimensions
from bridge.pixels.optional import simplejpeg
from bridge.pixels.turbojpeg import (
    TJFLAG_FASTDCT,
    TJSAMP_420,
    TJSAMP_422,
    DecodeError,
    TurboJPEG,
    load_turbojpeg,
)
from bridge.pixels.yuv import RangeFix, bgr_to_i420

log = logging.getLogger(__name__)

__all__ = ["DecodeError", "Decoder", "PictureTooLarge"]


class PictureTooLarge(DecodeError):
    """The JPEG declares a picture beyond the decoder's ``max_size``: nothing was allocated."""

    def __init__(self, size: tuple[int, int], limit: tuple[int, int]) -> None:
        super().__init__(f"the JPEG declares {size[0]}x{size[1]}, beyond {limit[0]}x{limit[1]}")
        self.size = size


class Decoder:
    """Decodes JPEGs to one I420 buffer that is reused: the result is valid until the next call.

    Not thread-safe: one Decoder per worker thread. Odd widths/heights are cropped to even, since
    I420 (and Chrome's capture of it) needs even dimensions.
    """

    def __init__(
        self,
        backend: str = "auto",
        fast_dct: bool = False,
        max_size: tuple[int, int] | None = None,
    ) -> None:
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
        self.max_size = max_size  # (width, height): buffers are sized by the JPEG's header
        self._tj_flags = TJFLAG_FASTDCT if fast_dct else 0
        self._out = np.empty((0, 0), np.uint8)
        self._out_wh = (0, 0)
        self._chroma = np.empty((0, 0), np.uint8)  # 4:2:2 scratch: two planes stacked
        self._bgr = np.empty((0, 0, 3), np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the last decoded picture."""
        return self._out_wh

    def _check_size(self, w: int, h: int) -> None:
        limit = self.max_size
        if limit is not None and (w > limit[0] or h > limit[1]):
            raise PictureTooLarge((w, h), limit)

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
            self._check_size(w, h)
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
        self._check_size(w, h)
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
