# SPDX-License-Identifier: GPL-3.0-or-later
"""The V4L2 structures and ioctl numbers we compute, per platform, against the kernel's.

The kernel's ``struct v4l2_format`` holds a union with ``struct v4l2_window``, which has pointer
members, so the union is aligned to the pointer size: on 32-bit platforms (i386, armhf) the struct
is 204 bytes and VIDIOC_S_FMT is 0xc0cc5605; on 64-bit ones (x86_64, arm64) 208 and 0xc0d05605.
An 8-byte alignment everywhere (what bridge/camera/v4l2.py had) sends armhf hosts a wrong ioctl
number
(the kernel answers ENOTTY). The expected numbers below are the kernel's values as strace and
v4l2-ctl print them; they are cross-checked against the host's own <linux/videodev2.h> compiled by
gcc for 64 and, with gcc-multilib, 32 bits.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.camera import v4l2

# platform -> (stand-in for its pointer type, sizeof(v4l2_format), VIDIOC_G_FMT, VIDIOC_S_FMT)
KERNEL = {
    "x86_64": (ctypes.c_uint64, 208, 0xC0D05604, 0xC0D05605),
    "arm64": (ctypes.c_uint64, 208, 0xC0D05604, 0xC0D05605),
    "i386": (ctypes.c_uint32, 204, 0xC0CC5604, 0xC0CC5605),
    "armhf": (ctypes.c_uint32, 204, 0xC0CC5604, 0xC0CC5605),
}
# No pointers inside: the same on every platform.
FIXED = {
    "VIDIOC_QUERYCAP": 0x80685600,
    "VIDIOC_STREAMON": 0x40045612,
    "VIDIOC_STREAMOFF": 0x40045613,
    "VIDIOC_G_PARM": 0xC0CC5615,
    "VIDIOC_S_PARM": 0xC0CC5616,
}


@pytest.mark.parametrize("platform", sorted(KERNEL))
def test_format_layout_and_ioctls_per_platform(platform: str) -> None:
    pointer, size, g_fmt, s_fmt = KERNEL[platform]
    if pointer is ctypes.c_uint64 and ctypes.alignment(ctypes.c_uint64) != 8:
        pytest.skip("this host aligns 64-bit integers to 4 bytes")
    fmt = v4l2.format_struct(pointer)
    assert ctypes.sizeof(fmt) == size
    assert fmt.fmt.offset == ctypes.sizeof(pointer)
    assert fmt.fmt.offset + 200 == size
    assert v4l2.format_ioctls(ctypes.sizeof(fmt)) == (g_fmt, s_fmt)


def test_this_host_uses_its_own_pointer_size() -> None:
    pointer = ctypes.c_uint64 if ctypes.sizeof(ctypes.c_void_p) == 8 else ctypes.c_uint32
    expected = next(v for v in KERNEL.values() if v[0] is pointer)
    assert ctypes.sizeof(v4l2.Format) == expected[1]
    assert expected[2:] == (v4l2.VIDIOC_G_FMT, v4l2.VIDIOC_S_FMT)
    for name, value in FIXED.items():
        assert getattr(v4l2, name) == value, name
    assert ctypes.sizeof(v4l2.Capability) == 104 and ctypes.sizeof(v4l2.StreamParm) == 204


PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include <linux/videodev2.h>
int main(void) {
    printf("%zu %zu %zu %zu\n", sizeof(struct v4l2_format), offsetof(struct v4l2_format, fmt),
           sizeof(struct v4l2_capability), sizeof(struct v4l2_streamparm));
    printf("%lu %lu %lu %lu %lu %lu %lu\n", (unsigned long)VIDIOC_G_FMT,
           (unsigned long)VIDIOC_S_FMT, (unsigned long)VIDIOC_QUERYCAP,
           (unsigned long)VIDIOC_STREAMON, (unsigned long)VIDIOC_STREAMOFF,
           (unsigned long)VIDIOC_G_PARM, (unsigned long)VIDIOC_S_PARM);
    return 0;
}
"""


def _compile_and_run(tmp_path: Path, bits: int) -> list[int]:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/videodev2.h").exists():
        pytest.skip("needs gcc and the kernel headers (linux-libc-dev)")
    src, exe = tmp_path / "probe.c", tmp_path / f"probe{bits}"
    src.write_text(PROBE)
    cc = subprocess.run(
        ["gcc", f"-m{bits}", "-o", str(exe), str(src)], capture_output=True, text=True, check=False
    )
    if cc.returncode != 0:
        pytest.skip(f"gcc -m{bits} cannot build here (gcc-multilib?): {cc.stderr[-300:]}")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


@pytest.mark.parametrize(("bits", "platform"), [(64, "x86_64"), (32, "i386")])
def test_against_the_hosts_videodev2_h(tmp_path: Path, bits: int, platform: str) -> None:
    pointer, size, g_fmt, s_fmt = KERNEL[platform]
    if pointer is ctypes.c_uint64 and ctypes.alignment(ctypes.c_uint64) != 8:
        pytest.skip("this host aligns 64-bit integers to 4 bytes")
    fmt_size, fmt_offset, cap, parm, *ioctls = _compile_and_run(tmp_path, bits)
    ours = v4l2.format_struct(pointer)
    assert (fmt_size, fmt_offset) == (ctypes.sizeof(ours), ours.fmt.offset)
    assert (fmt_size, *ioctls[:2]) == (size, g_fmt, s_fmt)
    assert (cap, parm) == (ctypes.sizeof(v4l2.Capability), ctypes.sizeof(v4l2.StreamParm))
    assert ioctls[2:] == list(FIXED.values())
