# SPDX-License-Identifier: GPL-3.0-or-later
"""Without OpenCV and simplejpeg (the Debian package): every module imports and every picture
path works, and the pixel tests pass with both hidden from bridge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from support.paths import REPO as ROOT

UNIMPORTABLE = textwrap.dedent(
    """
    import sys
    sys.modules["cv2"] = None  # import cv2 now raises ImportError, as on a Debian system
    sys.modules["simplejpeg"] = None
    import importlib, pkgutil
    import numpy as np
    import bridge
    for info in pkgutil.walk_packages(bridge.__path__, "bridge."):
        if info.name != "bridge.__main__":  # that one runs the CLI
            importlib.import_module(info.name)
    from bridge.pixels.nosignal import no_signal_jpeg as _web_no_signal  # what the web page serves
    assert _web_no_signal(64, 48)[:2] == bytes([0xFF, 0xD8])
    from bridge.pixels import optional
    from bridge.pixels import yuv
    from bridge.pixels.decode import Decoder
    from bridge.pixels.encode import encode_jpeg
    from bridge.pixels.nosignal import no_signal_i420, no_signal_jpeg
    from bridge.sim.scene import make_loop, render_frame
    from bridge.pixels.transform import Transform
    assert optional.cv2 is None and optional.simplejpeg is None
    assert yuv.backend() == "numpy"
    loop = make_loop(320, 240, count=2)
    d = Decoder()
    out = d.decode(loop[0])
    assert d.backend == "turbojpeg" and out.shape == (360, 320)
    # odd sizes (and 4:4:4, greyscale) take the BGR path: libturbojpeg's tjDecompress2, numpy
    img = render_frame(0, 2, 321, 241, 30.0)
    assert d.decode(encode_jpeg(img, 80)).shape == (360, 320)
    assert Transform(90, "vertical").apply(out, 320, 240).shape == (480, 240)
    assert no_signal_i420(640, 480).shape == (720, 640)
    assert Decoder().decode(no_signal_jpeg(640, 480)).shape == (720, 640)
    print("ok")
    """
)


def test_every_module_works_with_opencv_and_simplejpeg_unimportable() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", UNIMPORTABLE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.slow
def test_pixel_tests_pass_with_both_hidden_from_bridge() -> None:
    """The golden decode, transform, no-signal and simulator picture tests, Debian configuration."""
    env = dict(os.environ, BORESCOPE_BRIDGE_WITHOUT="cv2,simplejpeg")
    # The simulator's picture tests only: its streaming tests are about sockets, not pixels.
    picture = (
        "frames_are_photo_like_422_jpegs",
        "every_encoder_makes_422",
        "loop_is_deterministic",
    )
    tests = [
        "tests/unit/pixels/test_decode.py",
        "tests/unit/pixels/test_transform.py",
        "tests/unit/pixels/test_nosignal.py",
    ]
    tests += [f"tests/unit/sim/test_simulator.py::test_{name}" for name in picture]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= 40
    # the OpenCV half of each pixel_path pair skipped, so the numpy half is what passed
    assert "OpenCV is not importable here" in proc.stdout
