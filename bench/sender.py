# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark's device: replays the simulator's JPEGs as device datagrams over loopback UDP.

Runs in its own process so its CPU time never counts against the receiver. It learns the client
from the first heartbeat (like the device), then obeys commands on stdin, one per line:
``run FPS N`` sends N frames as bursts paced at FPS on an absolute schedule and answers
``done N``; ``quit`` ends it. Frame ids run on across runs, 8-bit wrapping, as on the wire.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from bridge.core.protocol import fragment_jpeg

SEND_BUFFER_BYTES = 4 * 1024 * 1024
START_S = 60.0  # a receiver that never sends its first heartbeat is gone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames-dir", required=True, type=Path)
    args = ap.parse_args(argv)
    jpegs = [p.read_bytes() for p in sorted(args.frames_dir.glob("*.jpg"))]
    if not jpegs:
        print(f"no *.jpg in {args.frames_dir}", file=sys.stderr)
        return 1
    stream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    stream.bind(("127.0.0.1", 0))
    event = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # absorbs the button polls
    event.bind(("127.0.0.1", 0))
    print(
        json.dumps({"stream_port": stream.getsockname()[1], "event_port": event.getsockname()[1]}),
        flush=True,
    )
    stream.settimeout(START_S)
    try:
        _, client = stream.recvfrom(65536)  # the first heartbeat tells us where to stream
    except TimeoutError:
        print(f"no heartbeat from the receiver within {START_S:g} s", file=sys.stderr)
        return 1
    stream.settimeout(None)
    print("ready", flush=True)
    seq = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        fps, count = float(cmd[1]), int(cmd[2])
        period = 1.0 / fps
        start = time.monotonic()
        for k in range(count):
            due = start + k * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for datagram in fragment_jpeg(seq & 0xFF, jpegs[seq % len(jpegs)]):
                stream.sendto(datagram, client)
            seq += 1
        print(f"done {count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
