# SPDX-License-Identifier: GPL-3.0-or-later
"""In-guest reader: how long from our VIDIOC_STREAMON to the first *live* buffer.

A reader that starts may first be handed the buffer written last, however old (v4l2loopback
gives a new reader the newest buffer at once); "live" is a buffer the producer wrote after
our STREAMON, told by its timestamp (the module stamps each write with CLOCK_MONOTONIC).
Prints one JSON line: latency_ms (STREAMON to DQBUF returning that buffer), written_ms
(STREAMON to the module's timestamp of it), stale (older buffers seen first); saves the live
buffer to OUTFILE for the host to compare with the simulator's pictures. Then keeps streaming
for HOLD seconds, so the scenario can see the reader counted.

Usage: first_frame.py DEVICE OUTFILE HOLD   (system Python, stdlib only: fast under TCG)
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import mmap
import os
import select
import sys
import time


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timecode(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("frames_seconds_minutes_hours", ctypes.c_uint8 * 4),
        ("userbits", ctypes.c_uint8 * 4),
    ]


class _M(ctypes.Union):
    _fields_ = [("offset", ctypes.c_uint32), ("userptr", ctypes.c_ulong), ("fd", ctypes.c_int32)]


class Buffer(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("bytesused", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("timestamp", Timeval),
        ("timecode", Timecode),
        ("sequence", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("m", _M),
        ("length", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
        ("request_fd", ctypes.c_int32),
    ]


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


class Format(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("_pad", ctypes.c_uint32), ("raw", ctypes.c_uint8 * 200)]


class RequestBuffers(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("flags", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    ]


CAPTURE, MMAP = 1, 1
VIDIOC_QUERYCAP = _ioc(2, 0, ctypes.sizeof(Capability))
VIDIOC_G_FMT = _ioc(3, 4, ctypes.sizeof(Format))
VIDIOC_REQBUFS = _ioc(3, 8, ctypes.sizeof(RequestBuffers))
VIDIOC_QUERYBUF = _ioc(3, 9, ctypes.sizeof(Buffer))
VIDIOC_QBUF = _ioc(3, 15, ctypes.sizeof(Buffer))
VIDIOC_DQBUF = _ioc(3, 17, ctypes.sizeof(Buffer))
VIDIOC_STREAMON = _ioc(1, 18, ctypes.sizeof(ctypes.c_int))
VIDIOC_STREAMOFF = _ioc(1, 19, ctypes.sizeof(ctypes.c_int))


def main(device: str, outfile: str, hold: float) -> int:
    fd = os.open(device, os.O_RDWR)
    # as every app starts: QUERYCAP (v4l2loopback 0.14+ recomputes the device's capabilities
    # for the V4L2 core's checks on each QUERYCAP), then the capture format
    fcntl.ioctl(fd, VIDIOC_QUERYCAP, Capability())
    fcntl.ioctl(fd, VIDIOC_G_FMT, Format(type=CAPTURE))
    req = RequestBuffers(count=4, type=CAPTURE, memory=MMAP)
    fcntl.ioctl(fd, VIDIOC_REQBUFS, req)
    maps = []
    for i in range(req.count):
        b = Buffer(index=i, type=CAPTURE, memory=MMAP)
        fcntl.ioctl(fd, VIDIOC_QUERYBUF, b)
        maps.append(mmap.mmap(fd, b.length, mmap.MAP_SHARED, mmap.PROT_READ, offset=b.m.offset))
        fcntl.ioctl(fd, VIDIOC_QBUF, b)
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    fcntl.ioctl(fd, VIDIOC_STREAMON, ctypes.c_int(CAPTURE))
    result: dict[str, object] = {"stale": 0}
    deadline = t0 + 20.0
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            result["error"] = "no live buffer within 20 s"
            break
        b = Buffer(type=CAPTURE, memory=MMAP)
        fcntl.ioctl(fd, VIDIOC_DQBUF, b)
        t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
        written = b.timestamp.tv_sec + b.timestamp.tv_usec / 1e6
        if written >= t0:
            with open(outfile, "wb") as f:
                f.write(maps[b.index][: b.bytesused])
            result.update(
                latency_ms=round((t1 - t0) * 1000, 1), written_ms=round((written - t0) * 1000, 1)
            )
            fcntl.ioctl(fd, VIDIOC_QBUF, b)
            break
        result["stale"] = int(result["stale"]) + 1  # type: ignore[call-overload]
        fcntl.ioctl(fd, VIDIOC_QBUF, b)
    print(json.dumps(result), flush=True)
    end = time.monotonic() + hold
    while time.monotonic() < end:  # stay a streaming reader: take buffers as they come
        if select.select([fd], [], [], 0.5)[0]:
            b = Buffer(type=CAPTURE, memory=MMAP)
            fcntl.ioctl(fd, VIDIOC_DQBUF, b)
            fcntl.ioctl(fd, VIDIOC_QBUF, b)
    fcntl.ioctl(fd, VIDIOC_STREAMOFF, ctypes.c_int(CAPTURE))
    for m in maps:
        m.close()
    os.close(fd)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
