# SPDX-License-Identifier: GPL-3.0-or-later
"""Recordings as players see them: Debian's real ffprobe, ffmpeg and mkvinfo on the file.

Tests that need them skip with the package to install when they are missing (make unit installs
them: ffmpeg and mkvtoolnix are in the Makefile's DEB_TEST_PACKAGES).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

FFPROBE = shutil.which("ffprobe")
FFMPEG = shutil.which("ffmpeg")
MKVINFO = shutil.which("mkvinfo")


def need_ffmpeg() -> None:
    if FFPROBE is None or FFMPEG is None:
        pytest.skip("needs ffprobe and ffmpeg (apt-get install ffmpeg)")


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view: format, the stream and every packet (time, size); fails if it cannot
    open the file."""
    need_ffmpeg()
    assert FFPROBE is not None
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-show_packets",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"ffprobe cannot open {path}: {out.stderr}"
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def extract_frames(path: Path) -> list[bytes]:
    """The frames as `ffmpeg -i clip.mkv -c copy -f image2 %d.jpg` gives them back."""
    need_ffmpeg()
    assert FFMPEG is not None
    with tempfile.TemporaryDirectory(prefix="borescope-frames-") as tmp:
        out = subprocess.run(
            [FFMPEG, "-v", "error", "-i", str(path), "-c", "copy", "-f", "image2", f"{tmp}/%d.jpg"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"ffmpeg cannot copy the frames out of {path}: {out.stderr}"
        files = sorted(Path(tmp).glob("*.jpg"), key=lambda p: int(p.stem))
        return [p.read_bytes() for p in files]


def mkvinfo(path: Path) -> str | None:
    """mkvtoolnix's structural check (None where it is not installed); fails on an error."""
    if MKVINFO is None:
        return None
    out = subprocess.run(
        [MKVINFO, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and "Error:" not in out.stdout, out.stdout + out.stderr
    return out.stdout


def in_order(frames: list[bytes], sent: list[bytes]) -> list[int]:
    """Indices into the simulator's loop of `frames`, each byte-identical to a sent frame, in
    the order sent (the loop wraps around; a lost frame is a skip, never a step back)."""
    index = {f: i for i, f in enumerate(sent)}
    got = []
    for k, f in enumerate(frames):
        assert f in index, f"frame {k} of the recording is no frame the simulator sent"
        got.append(index[f])
    for a, b in itertools.pairwise(got):
        assert (b - a) % len(sent) != 0, f"frame {a} twice in a row"
    return got


def jpeg(seed: int, width: int, height: int, quality: int) -> bytes:
    """A real JPEG of noise: every seed a different picture, every quality another size."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf.tobytes())
