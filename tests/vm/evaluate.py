# SPDX-License-Identifier: GPL-3.0-or-later
"""Host side of the guest tests: turns what the guest captured into checked figures.

The guest only captures (Python is ~20x slower under emulation); this script, run on the
host with the project's venv, compares the pictures with the simulator's own JPEGs and
prints one line per check, then ``N passed, N failed``. Usage: evaluate.py OUT_DIR

Pictures are compared in RGB by mean absolute error (0-255 scale) against the *closest*
frame of the simulator's loop: frames carry a running counter, so exact alignment with
what was sent is not knowable, and the loop's frames differ from each other only there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# Our JPEG -> I420 (limited range) -> reader's RGB conversion loses chroma resolution and
# rounds twice; measured errors for live frames are a few units, while the nearest wrong
# picture ("no signal", or another resolution scaled) is off by tens.
MAE_TOLERANCE = 8.0
# The device must advertise the stream's rate. How many frames the daemon writes per second
# depends on how fast the emulated guest decodes (TCG on a shared host), so the measured
# rate is checked against what the daemon itself reports having written in the same window
# (a reader must get each written frame once: none lost, none repeated) and may not exceed
# the stream's rate; it is no performance claim (the benchmark measures performance).
ADVERTISED_FPS_TOLERANCE = 0.02  # relative
READER_VS_WRITTEN = (0.7, 1.3)  # reader rate / daemon's written rate (two ~6 s windows)
MAX_OVER_STREAM = 1.1  # reader rate / simulator rate
# v4l2loopback's own v4l2-compliance failures (not ours), by release; any other one fails the
# check. 0.12.7's (0.15.0 keeps only the first):
KNOWN_COMPLIANCE_FAILURES = {
    "v4l2-compliance.cpp(736): !ok": "unlimited opens: with exclusive_caps=1 the caps an "
    "opener sees depend on whether a producer is streaming",
    "Video Output cap not set, but Video Output formats defined": "exclusive_caps=1 hides "
    "the OUTPUT capability while streaming but the module still answers output formats",
    "node->has_frmintervals && !cap->capability": "the module lists frame intervals but its "
    "capture G_PARM does not set V4L2_CAP_TIMEPERFRAME",
    "timestamp != V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC": "the module sets no timestamp type flag",
    "buf.check(Unqueued, i)": "QUERYBUF on a buffer the module has not queued reports its "
    "internal flags",
    "testQueryBuf(node, i, q.g_buffers())": "follows from the QUERYBUF quirk above",
}
# ... and what 0.13.x adds (read from its source, v4l2loopback.c 0.13.2):
KNOWN_COMPLIANCE_FAILURES_0_13 = {
    "non-zero min/max/step/def": "its private button control timeout_image_io (0x0098f903) "
    "declares max=1, step=1",
    "invalid control 0098f903": "the same control, rejected by QUERY_EXT_CTRL's checks",
    "node->controls.find(qctrl.id) == node->controls.end()": "follows from the control above",
    "expected EINVAL, but got 16 when getting format for buftype 2": "S_FMT on the OUTPUT "
    "side answers EBUSY (not EINVAL) while a producer streams",
    "g_sequence()": "QUERYBUF of a buffer not yet queued reports a sequence number (the "
    "device's write position), not 0",
    "g_timestamp().tv_sec || g_timestamp().tv_usec": "... and the timestamp of the last write "
    "into it (which of the two v4l2-compliance meets first depends on the frames written)",
}


def known_compliance_failures(release: str) -> dict[str, str]:
    """The module's own failures for a release ("0.13.2"); 0.12's list when it is not named."""
    if release.startswith("0.13."):
        return KNOWN_COMPLIANCE_FAILURES | KNOWN_COMPLIANCE_FAILURES_0_13
    return KNOWN_COMPLIANCE_FAILURES


SIM_SIZES = ((640, 480), (1280, 720))


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0

    def report(self, ok: bool, name: str, figures: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {figures}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1


@cache
def simulator_loop(width: int, height: int) -> tuple[bytes, ...]:
    """The simulator's pre-encoded loop of JPEGs at that size, made here exactly as in the guest."""
    from bridge.sim.server import Simulator, SimulatorConfig

    cfg = SimulatorConfig(
        bind="127.0.0.1", stream_port=0, event_port=0, resolution=(width, height), fps=30.0
    )
    sim = Simulator(cfg)
    frames = list(getattr(sim, "frames", None) or [])
    if not frames:  # encoded on start
        sim.start()
        try:
            frames = list(sim.frames)
        finally:
            sim.stop()
    return tuple(frames)


def decode_rgb(data: bytes, what: str) -> np.ndarray:
    """A JPEG or PNG as RGB; cv2.imdecode returns None for what it cannot read, so say which."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{what} ({len(data)} bytes) is no picture OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@cache
def reference_rgb(width: int, height: int) -> np.ndarray:
    jpegs = simulator_loop(width, height)
    return np.stack([decode_rgb(j, "a simulator frame") for j in jpegs]).astype(np.int16)


@cache
def no_signal_rgb(width: int, height: int) -> np.ndarray:
    from bridge.pixels.nosignal import no_signal_bgr

    return cv2.cvtColor(no_signal_bgr(width, height), cv2.COLOR_BGR2RGB).astype(np.int16)


def frame_bytes(pixfmt: str, w: int, h: int) -> int:
    return {"rgb24": w * h * 3, "yuyv422": w * h * 2}.get(pixfmt, w * h * 3 // 2)


def load_frames(path: str, pixfmt: str, w: int, h: int) -> list[np.ndarray]:
    """Raw frames as written by ffmpeg/GStreamer (rgb24) or v4l2-ctl (the device's format)."""
    raw = np.fromfile(path, np.uint8)
    n = raw.size // frame_bytes(pixfmt, w, h)
    raw = raw[: n * frame_bytes(pixfmt, w, h)]
    if pixfmt == "rgb24":
        return list(raw.reshape(n, h, w, 3))
    conv: dict[str, tuple[tuple[int, ...], int]] = {
        "yuv420p": ((h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420),
        "nv12": ((h * 3 // 2, w), cv2.COLOR_YUV2RGB_NV12),
        "yuyv422": ((h, w, 2), cv2.COLOR_YUV2RGB_YUY2),
    }
    if pixfmt not in conv:
        raise ValueError(f"unsupported pixel format {pixfmt}")
    shape, code = conv[pixfmt]
    return [cv2.cvtColor(f.reshape(shape), code) for f in raw.reshape(n, -1)]


def mae_to_loop(frame: np.ndarray) -> float:
    """Mean absolute error to the closest frame of the simulator's loop at this size."""
    h, w = frame.shape[:2]
    refs = reference_rgb(w, h)
    f = frame.astype(np.int16)
    return float(min(np.abs(refs[i] - f).mean() for i in range(len(refs))))


@cache
def reference_ycrcb(width: int, height: int) -> np.ndarray:
    """The loop's frames as Y, Cr, Cb planes (BT.601, as the readers' converters use)."""
    refs = reference_rgb(width, height).astype(np.uint8)
    return np.stack([cv2.cvtColor(r, cv2.COLOR_RGB2YCrCb) for r in refs]).astype(np.int16)


def row_error(frame: np.ndarray) -> float:
    """How well each row matches *some* loop frame (99th percentile over the rows).

    A reader that still holds a mapped buffer while the producer writes the next frame into
    it sees a torn picture: rows from one sent frame, then rows from another, and one mixed
    row at each tear. With planar YUV the tear also runs between the planes: the producer
    writes all of Y before U and V, so a reader converting row by row can get one frame's
    luma with the previous frame's chroma. Luma and chroma rows are therefore each matched
    on their own; such a frame is still made of what the simulator sent. A wrong, shifted
    or mis-coloured picture is not, in most of its rows (swapped or wrong chroma fails the
    chroma rows, a wrong picture the luma rows).
    """
    h, w = frame.shape[:2]
    refs = reference_ycrcb(w, h)
    f = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.int16)
    diff = [np.abs(refs[i] - f) for i in range(len(refs))]
    luma = np.stack([d[..., 0].mean(axis=1) for d in diff]).min(axis=0)
    chroma = np.stack([d[..., 1:].mean(axis=(1, 2)) for d in diff]).min(axis=0)
    return float(max(np.percentile(luma, 99), np.percentile(chroma, 99)))


def mae_to_no_signal(frame: np.ndarray) -> float:
    h, w = frame.shape[:2]
    return float(np.abs(no_signal_rgb(w, h) - frame.astype(np.int16)).mean())


def size_of(spec: str) -> tuple[int, int]:
    w, h = spec.split("x")
    return int(w), int(h)


def check_frames(
    t: Tally,
    name: str,
    path: str,
    pixfmt: str,
    size: str,
    start: str = "0",
    transform: str = "none",
) -> None:
    """Every frame (from `start`) is a live frame; `rot180`: the camera was told to rotate."""
    w, h = size_of(size)
    frames = load_frames(path, pixfmt, w, h)[int(start) :]
    if transform == "rot180":  # undo the camera's rotation, then compare as usual
        frames = [np.ascontiguousarray(f[::-1, ::-1]) for f in frames]
    if not frames:
        t.report(False, name, f"no frames captured in {Path(path).name}")
        return
    whole = [mae_to_loop(f) for f in frames]
    errs = [e if e <= MAE_TOLERANCE else row_error(f) for e, f in zip(whole, frames, strict=True)]
    bad = sum(e > MAE_TOLERANCE for e in errs)
    torn = sum(w > MAE_TOLERANCE >= e for w, e in zip(whole, errs, strict=True))
    ns = mae_to_no_signal(frames[-1])
    t.report(
        bad == 0,
        name,
        f"{len(frames)} frames {w}x{h} compared, mean pixel error {np.mean(whole):.2f} "
        f"(max {max(whole):.2f}; tolerance {MAE_TOLERANCE}; the no-signal picture would give "
        f"{ns:.1f}); {torn} torn (each row from a sent frame), {bad} wrong",
    )


def check_unplug(
    t: Tally, name: str, path: str, pixfmt: str, size: str, a: str, b: str, c: str
) -> None:
    """Frames [a, b): the reader stayed open while the simulator was down; [c, end): back."""
    w, h = size_of(size)
    frames = load_frames(path, pixfmt, w, h)
    ia, ib, ic = int(a), int(b), int(c)
    during, after = frames[ia:ib], frames[ic:]
    kinds = []
    for f in during:
        if mae_to_no_signal(f) <= MAE_TOLERANCE:
            kinds.append("n")
        elif mae_to_loop(f) <= MAE_TOLERANCE:
            kinds.append("l")
        else:
            kinds.append("?")
    # live frames may still arrive just after the stop, never after the first no-signal one
    seq = "".join(kinds)
    ordered = re.fullmatch(r"l*n+", seq) is not None
    live_after = [mae_to_loop(f) for f in after]
    back = bool(live_after) and all(e <= MAE_TOLERANCE for e in live_after)
    t.report(
        ordered and seq.count("n") >= 2 and back,
        name,
        f"while stopped {len(during)} frames: {seq.count('n')} no-signal, {seq.count('l')} live "
        f"first, {seq.count('?')} other; after restart {len(after)} frames, mean pixel error "
        f"{np.mean(live_after) if live_after else float('nan'):.2f} "
        f"(tolerance {MAE_TOLERANCE})",
    )


# A piece of a torn buffer is at least this long: shorter runs of equal bytes at the same
# offset happen by chance between different frames, and would let a corrupted byte through.
MIN_TORN_PIECE_BYTES = 256


def torn_from_sent(data: bytes, loop: list[bytes], max_pieces: int = 3) -> bool:
    """Whether `data` is pieces of sent JPEGs, each piece at its own offset in its frame.

    That is what a reader that copies a buffer while the producer writes the next frame into
    it gets (v4l2loopback 0.12.7 lets the producer overwrite a buffer a reader has dequeued):
    the first bytes of one frame, then the same offsets of the next. Every byte is still one
    we sent at that place; a corrupted, shifted or foreign buffer is not. A piece that runs to
    the end of its frame (its EOI) ends the JPEG: what follows is stale buffer space, as in a
    padded buffer (the same module may report the whole buffer as used, torn or not).
    """
    d = np.frombuffer(data, np.uint8)
    n = d.size
    matches = []
    for j in loop:
        ref = np.frombuffer(j, np.uint8)[:n]
        eq = np.zeros(n, bool)
        eq[: ref.size] = ref == d[: ref.size]
        matches.append(eq)
    pos = 0
    for _ in range(max_pieces):
        # The longest run of equal bytes from `pos` over all sent frames, and whether it
        # reaches the end of that frame.
        best, to_the_end = 0, False
        for j, eq in zip(loop, matches, strict=True):
            rest = eq[pos:]
            run = rest.size if rest.all() else int(np.argmin(rest))
            if run > best or (run == best and pos + run == len(j)):
                best, to_the_end = run, pos + run == len(j)
        if best < min(MIN_TORN_PIECE_BYTES, n - pos):
            return False
        pos += best
        if pos >= n or to_the_end:
            return True
    return False


def describe_mismatch(data: bytes, loop: list[bytes]) -> str:
    """A refused buffer in a few words: its size, and how far it agrees with the closest sent
    frame from the start and from that frame's end."""
    d = np.frombuffer(data, np.uint8)

    def prefix(j: bytes) -> int:
        ref = np.frombuffer(j, np.uint8)[: d.size]
        eq = ref == d[: ref.size]
        return int(eq.size if eq.all() else np.argmin(eq))

    best = max(loop, key=prefix)
    same = prefix(best)
    eoi = data.rfind(b"\xff\xd9")
    return (
        f"{len(data)} bytes, the first {same} as a sent {len(best)}-byte frame, "
        f"last EOI at {eoi}, ends {data[-2:].hex()}"
    )


def check_mjpeg(t: Tally, name: str, directory: str) -> None:
    """Each captured buffer is a JPEG the simulator sent, byte for byte.

    A buffer may carry stale bytes after the JPEG's end: v4l2loopback 0.12.7 then reported
    the whole buffer as used (seen on GStreamer's first buffer). The JPEG itself must still
    be identical; such buffers are counted and named in the figures. A buffer may also be
    torn (the module let the producer overwrite it while the reader copied it: see
    `torn_from_sent`); every byte is then still one we sent, and such buffers are counted too.
    """
    loop = [j for s in SIM_SIZES for j in simulator_loop(*s)]
    sent = {hashlib.sha256(j).hexdigest() for j in loop}
    files = sorted(Path(directory).glob("*.jpg"))
    same = padded = torn = 0
    refused: list[str] = []
    for f in files:
        data = f.read_bytes()
        if hashlib.sha256(data).hexdigest() in sent:
            same += 1
        elif any(data.startswith(j) for j in loop):
            padded += 1
        elif torn_from_sent(data, loop):
            torn += 1
        else:
            refused.append(f"{f.name}: {describe_mismatch(data, loop)}")
    extra = []
    if padded:
        extra.append(f"{padded} identical but followed by stale bytes up to the buffer size")
    if torn:
        extra.append(f"{torn} torn (pieces of two sent frames, each at its own offset)")
    extra += refused[:3]  # what a failure looked like: the run's files are gone afterwards
    t.report(
        bool(files) and same + padded + torn == len(files) and same > 0,
        name,
        f"{same} of {len(files)} frames byte-identical to a frame the simulator sent"
        + "".join(", " + e for e in extra),
    )


def check_fps(
    t: Tally, name: str, sim: str, advertised: str, ffmpeg: str, reader: str, written: str
) -> None:
    def num(s: str) -> float | None:
        try:
            return float(s)
        except ValueError:
            return None

    want = float(sim)
    adv, ff, got, wrote = num(advertised), num(ffmpeg), num(reader), num(written)
    ok_adv = all(
        x is not None and abs(x - want) <= want * ADVERTISED_FPS_TOLERANCE for x in (adv, ff)
    )
    lo, hi = READER_VS_WRITTEN
    ok_got = (
        got is not None
        and wrote is not None
        and wrote > 0
        and lo * wrote <= got <= hi * wrote
        and got <= MAX_OVER_STREAM * want
    )
    t.report(
        ok_adv and ok_got,
        name,
        f"simulator {want:g} fps; device advertises {advertised} (VIDIOC_G_PARM), ffmpeg sees "
        f"{ffmpeg}; a reader measured {reader} fps while the daemon wrote {written} fps "
        f"(accepted: {lo:g}-{hi:g}x what was written, at most {MAX_OVER_STREAM:g}x the stream)",
    )


def check_compliance(t: Tally, name: str, path: str, release: str = "") -> None:
    text = Path(path).read_text(errors="replace")
    total = re.search(
        r"Total for .*?: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", text
    )
    fails = sorted({line.strip() for line in text.splitlines() if "fail:" in line})
    known = known_compliance_failures(release)
    unknown = [f for f in fails if not any(k in f for k in known)]
    summary = (
        f"{total.group(2)}/{total.group(1)} succeeded, {total.group(3)} failed, "
        f"{total.group(4)} warnings"
        if total
        else "no totals line"
    )
    t.report(
        total is not None and not unknown,
        name,
        f"{summary}; {len(fails) - len(unknown)} known module failures"
        + (f"; unexpected: {' | '.join(unknown)}" if unknown else ""),
    )


def check_browser(t: Tally, name: str, path: str, size: str, seconds: str) -> None:
    r = json.loads(Path(path).read_text())
    if not r.get("ok"):
        t.report(False, name, f"{r.get('error')} (cameras: {r.get('labels')})")
        return
    png = base64.b64decode(r["png"].split(",", 1)[1])
    rgb = decode_rgb(png, "the browser's screenshot")
    w, h = size_of(size)
    err = mae_to_loop(rgb) if rgb.shape[:2] == (h, w) else float("inf")
    ok = "Borescope" in r.get("label", "") and err <= MAE_TOLERANCE
    t.report(
        ok,
        name,
        f"label {r.get('label')!r} of {r.get('labels')}, {r.get('width')}x{r.get('height')} "
        f"at {r.get('fps')} fps, canvas mean pixel error {err:.2f} (tolerance {MAE_TOLERANCE}), "
        f"page {r.get('page_ms')} ms, launch to result {seconds} s",
    )


def check_reference(t: Tally, name: str, *records: str) -> None:
    """The host's copy of the simulator loop must contain what the guest's daemon received."""
    sent = {hashlib.sha256(j).hexdigest() for s in SIM_SIZES for j in simulator_loop(*s)}
    got = []
    for rec in records:
        data = Path(rec).read_bytes() if Path(rec).exists() else b""
        got += [m.group(0) for m in re.finditer(rb"\xff\xd8.*?\xff\xd9(?=\xff\xd8|$)", data, re.S)]
    same = sum(hashlib.sha256(j).hexdigest() in sent for j in got)
    t.report(
        bool(got) and same == len(got),
        name,
        f"{same} of {len(got)} recorded frames are in the host's simulator loop",
    )


CHECKS: dict[str, Callable[..., None]] = {
    "FRAMES": check_frames,
    "UNPLUG": check_unplug,
    "MJPEG": check_mjpeg,
    "FPS": check_fps,
    "COMPLIANCE": check_compliance,
    "BROWSER": check_browser,
    "REFERENCE": check_reference,
}


def main(out: str) -> int:
    t = Tally()
    results = Path(out, "results")
    lines = results.read_text().splitlines() if results.exists() else []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind in ("PASS", "FAIL", "NOTRUN"):
            print(line, flush=True)
            t.passed += kind == "PASS"
            t.failed += kind != "PASS"
        elif kind in CHECKS:
            name, argv = _split(rest)
            try:
                CHECKS[kind](t, name, *argv)
            except Exception as e:  # a broken capture is a failed check, never a crash
                t.report(False, name, f"could not evaluate: {type(e).__name__}: {e}")
    print(f"{t.passed} passed, {t.failed} failed")
    return 0 if t.failed == 0 and t.passed > 0 else 1


def _split(rest: str) -> tuple[str, list[str]]:
    """Directive arguments: a quoted check name, then plain words."""
    m = re.fullmatch(r'"([^"]*)"\s*(.*)', rest)
    if m:
        return m.group(1), m.group(2).split()
    words = rest.split()
    return words[0], words[1:]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
