# SPDX-License-Identifier: GPL-3.0-or-later
"""Optional speed-ups: OpenCV and simplejpeg are used when importable, never required.

The pip install brings ``opencv-python-headless`` and ``simplejpeg``; the Debian package cannot
(Debian's python3-opencv pulls about 850 MB, simplejpeg is not in Debian 12), so every user of
them has a numpy or libturbojpeg path beside it. ``BORESCOPE_BRIDGE_WITHOUT=cv2,simplejpeg`` makes
a pip install behave like the Debian package, for the tests and ``make bench``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

WITHOUT_ENV = "BORESCOPE_BRIDGE_WITHOUT"


def optional_module(name: str) -> ModuleType | None:
    """The module, or None when it is not installed (or hidden by BORESCOPE_BRIDGE_WITHOUT)."""
    hidden = {n.strip() for n in os.environ.get(WITHOUT_ENV, "").split(",")}
    if name in hidden:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


cv2 = optional_module("cv2")
simplejpeg = optional_module("simplejpeg")
