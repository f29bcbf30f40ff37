# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark's web viewers: N clients of /stream.mjpeg reading as fast as they can.

Runs in its own process, so the bytes it reads cost the receiver (the daemon stand-in) nothing
but what serving them costs. Prints ``ready`` once every stream has answered, then reads until
stdin closes or says ``quit``, and prints the byte count as JSON.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--clients", type=int, required=True)
    args = ap.parse_args(argv)
    sel = selectors.DefaultSelector()
    request = (
        f"GET /stream.mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Authorization: Bearer {args.token}\r\n\r\n"
    ).encode()
    for _ in range(args.clients):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("the server closed a stream")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"stream refused: {head.splitlines()[0]!r}")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    print("ready", flush=True)
    total = 0
    while True:
        for key, _ in sel.select(1.0):
            if key.data == "stdin":
                line = sys.stdin.readline()
                if not line or line.strip() == "quit":
                    print(json.dumps({"bytes": total}), flush=True)
                    return 0
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(sock)
            total += len(data)


if __name__ == "__main__":
    sys.exit(main())
