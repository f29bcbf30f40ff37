# SPDX-License-Identifier: GPL-3.0-or-later
"""The framings side by side: CPU per frame of each framing's module, datagrams (or TCP reads) in,
whole JPEGs out, on the simulator's frames.

Only this part differs between the framings: the socket receive loop is the same for A and B,
and C reads a TCP stream in 64 KiB pieces (fewer system calls than datagrams). B is measured
with the inverted byte (the WF070), C always has one. In process, no sockets; informative only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.core import framing_b, framing_c
from bridge.core.framing_b import ReassemblerB
from bridge.core.framing_c import StreamC
from bridge.core.protocol import fragment_jpeg
from bridge.core.reassembly import Reassembler

TCP_READ = 65536
ROUNDS_S = 0.5  # each framing repeats its frames for at least this much CPU time


def _wire(jpegs: list[bytes]) -> dict[str, list[bytes]]:
    c = b"".join(framing_c.encode_frame(i, j) for i, j in enumerate(jpegs))
    return {
        "A": [d for i, j in enumerate(jpegs) for d in fragment_jpeg(i & 0xFF, j, 1400)],
        "B": [d for i, j in enumerate(jpegs) for d in framing_b.chunk_jpeg(i, j, inverted=True)],
        "C": [c[k : k + TCP_READ] for k in range(0, len(c), TCP_READ)],
    }


def _measure(make: Callable[[], Any], pieces: list[bytes], frames: int) -> float:
    """CPU ms per frame, feeding ``pieces`` into fresh instances until ROUNDS_S has passed."""
    done = 0
    start = time.process_time()
    while True:
        r = make()
        got = 0
        for p in pieces:
            got += len(r.feed(p, 0.0))
        if got != frames:
            raise RuntimeError(f"{type(r).__name__} returned {got} of {frames} frames")
        done += frames
        spent = time.process_time() - start
        if spent >= ROUNDS_S:
            return spent * 1000 / done


def framings_section(frames: dict[str, tuple[Path, int]]) -> dict[str, dict[str, Any]]:
    """Print and return the rows: per resolution, CPU ms per frame of A, B and C."""
    print("\n== framings: the framing module alone (pieces in -> JPEGs out, no sockets)")
    heads = ("A ms/fr", "B ms/fr", "C ms/fr")
    print(f"{'size':6s} " + " ".join(f"{h:>8s}" for h in heads) + f" {'B / A':>6s} {'C / A':>6s}")
    out: dict[str, dict[str, Any]] = {}
    makers: dict[str, Callable[[], Any]] = {"A": Reassembler, "B": ReassemblerB, "C": StreamC}
    for name, (d, _avg) in frames.items():
        jpegs = [p.read_bytes() for p in sorted(d.glob("*.jpg"))]
        wire = _wire(jpegs)
        row = {k: _measure(makers[k], wire[k], len(jpegs)) for k in ("A", "B", "C")}
        out[name] = row
        print(
            f"{name:6s} {row['A']:8.3f} {row['B']:8.3f} {row['C']:8.3f} "
            f"{row['B'] / row['A']:6.2f} {row['C'] / row['A']:6.2f}"
        )
    return out
