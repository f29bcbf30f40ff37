# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: the video path side by side, each variant in its own process, then ratios.

The simulator's pre-encoded JPEGs (4:2:2, q80) for 480p, 720p and 1080p are replayed as device
datagrams over loopback UDP by a sender process (bench/sender.py) into a receiver process
(bench/worker.py) that runs one variant: our pipeline in raw and mjpeg mode (the daemon's real
Session receive loop, Reassembler and Pipeline), the naive reference path, and the floor.
Then the web page: the same receive path feeding the web server (bridge.web) with 0, 1 and 4
viewers of /stream.mjpeg in another process, for the extra CPU per frame per viewer and the
added latency (frame complete -> bytes written to the viewer's socket).
"two streams" is several scopes at once: two raw receivers (two processes, as two instances
are, each with its own sender) on 720p at the same time, their CPU per frame summed and set
against one alone (the issue's bound: at most 2.1x, with no loss).
"raw, Debian package" is the raw variant as the Debian package runs it: Debian's /usr/bin/python3
with its own numpy, on the files of a .deb built by `make deb` (no OpenCV, no simplejpeg).
Numbers are informative; nothing here is a test. Each variant's process has a time limit that
follows from its steps: a variant that fails or stalls is reported as "failed: <reason>" and
the run goes on to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RESOLUTIONS = [("480p", 640, 480), ("720p", 1280, 720), ("1080p", 1920, 1080)]
VARIANTS = ["raw", "raw-deb", "mjpeg", "idle", "naive", "floor", "decode", "recv", "record"]
LABELS = {
    "raw": "pipeline raw (YUV decode -> I420)",
    "raw-deb": "raw, Debian package (no cv2/simplejpeg)",
    "mjpeg": "pipeline mjpeg (no decode)",
    "idle": "pipeline raw, nobody watching",
    "naive": "naive (recvfrom, imdecode, BGR->I420)",
    "floor": "floor: receive + decode-to-YUV",
    "decode": "floor: decode-to-YUV alone",
    "recv": "receive alone (Session + Reassembler)",
    "record": "receive + .mkv recording (beside recv)",
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def make_frames(root: Path, count: int) -> dict[str, tuple[Path, int]]:
    from bridge.sim.scene import make_loop

    out = {}
    for name, w, h in RESOLUTIONS:
        d = root / name
        d.mkdir()
        frames = make_loop(w, h, count, 30.0, 80)
        for k, jpeg in enumerate(frames):
            (d / f"{k:03d}.jpg").write_bytes(jpeg)
        out[name] = (d, sum(len(f) for f in frames) // len(frames))
    return out


REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = "/usr/bin/python3"
DEB_BUILD_S = 300.0  # `make deb`, and unpacking what it built


class Runner:
    """How a worker process is started: this interpreter on the tree, or the Debian package."""

    def __init__(self, python: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.python, self.env, self.cwd = python, env, cwd


def build_deb(out: Path) -> Path | str:
    """`make deb` into `out`, unpacked: the root of its files, or why there is none."""
    try:
        proc = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(REPO),
                "deb",
                f"DEB_DIR={out / 'build'}",
                f"DIST_DIR={out}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=DEB_BUILD_S,
        )
        debs = sorted(out.glob("borescope-bridge_*_all.deb"))
        if proc.returncode != 0 or not debs:
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no package"]
            return "make deb failed: " + last[0]
        root = out / "root"
        unpack = subprocess.run(
            ["dpkg-deb", "-x", str(debs[0]), str(root)],
            capture_output=True,
            text=True,
            check=False,
            timeout=DEB_BUILD_S,
        )
        if unpack.returncode != 0:
            return "dpkg-deb -x failed: " + unpack.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"make deb failed: {exc}"
    return root


def debian_package(tmp: Path) -> Runner | str:
    """A Runner for the installed-package configuration, or why there is none here."""
    try:
        probe = subprocess.run(
            [DEBIAN_PYTHON, "-c", "import numpy"], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {DEBIAN_PYTHON}: {exc}"
    if probe.returncode != 0:
        return "needs Debian's python3-numpy (apt install it)"
    root = build_deb(tmp / "deb")
    if isinstance(root, str):
        return root
    site = root / "usr/lib/python3/dist-packages"
    # The package's bridge first; the tree only for the bench module itself. Run outside the
    # tree so that `-m` does not put the tree's bridge first on sys.path.
    env = dict(os.environ, PYTHONPATH=f"{site}:{REPO}", PYTHONNOUSERSITE="1")
    return Runner(DEBIAN_PYTHON, env, tmp)


WEB_CLIENTS = (0, 1, 4)


# Beyond the frames' own sending time: start-up, warm-up, drain and stop of one variant.
VARIANT_MARGIN_S = 60.0


def variant_time_limit(steps: str) -> float:
    """How long one variant's process may take: its runs (the first twice), and a margin."""
    runs = [(float(a), int(b)) for a, b in (s.split(":") for s in steps.split(","))]
    sending = sum(n / fps for fps, n in runs) + runs[0][1] / runs[0][0] + 0.5
    return VARIANT_MARGIN_S + 2 * sending


def run_variant(
    variant: str,
    frames_dir: Path,
    steps: str,
    no_device: bool,
    runner: Runner | None = None,
    clients: int = 0,
) -> dict[str, Any]:
    runner = runner or Runner(sys.executable)
    cmd = [
        runner.python,
        "-m",
        "bench.worker",
        "--variant",
        variant,
        "--frames-dir",
        str(frames_dir),
        "--steps",
        steps,
    ]
    if no_device:
        cmd.append("--no-device")
    if clients:
        cmd += ["--clients", str(clients)]
    limit = variant_time_limit(steps)
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
            env=runner.env,
            cwd=runner.cwd,
        )
    except subprocess.TimeoutExpired:
        return {"variant": variant, "error": f"stalled: no result within {limit:.0f} s"}
    except OSError as exc:
        return {"variant": variant, "error": f"cannot start {runner.python}: {exc}"}
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"variant": variant, "error": last[0]}
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"variant": variant, "error": "no result on its output"}
    return result


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """Numbers for the table: the 30 fps run, and the highest rate with neither loss nor skip."""
    if "error" in r:
        return {"error": r["error"]}
    try:
        return _summarize(r)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return {"error": f"incomplete result ({exc!r})"}


def _summarize(r: dict[str, Any]) -> dict[str, Any]:
    if r["variant"] == "decode":
        return {"cpu_ms": r["cpu_ms"], "rss": r["peak_rss_mib"], "faults": r["faults"]}
    first = min(r["steps"][0], r.get("repeat", r["steps"][0]), key=lambda st: st["cpu_ms"])
    ok = [s["fps"] for s in r["steps"] if not s["lost"] and not s["skipped"]]
    repeat = r.get("repeat")
    if repeat and (repeat["lost"] or repeat["skipped"]) and repeat["fps"] in ok:
        ok.remove(repeat["fps"])
    return {
        "cpu_ms": first["cpu_ms"],
        "max_fps": max(ok) if ok else None,
        "p50": first["p50_ms"],
        "p99": first["p99_ms"],
        "rss": r["peak_rss_mib"],
        "lost30": first["lost"] + first["skipped"],
        "faults": first["faults"],
        "ladder": " ".join(f"{s['fps']:g}:{s['lost'] + s['skipped']}" for s in r["steps"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer frames, shorter ladder (~1 min)")
    ap.add_argument(
        "--no-device",
        action="store_true",
        help="use the byte-copying stand-in even where a v4l2loopback device exists",
    )
    ap.add_argument("--json", type=Path, help="also write all raw results to this file")
    ap.add_argument(
        "--only",
        metavar="NAME[,NAME...]",
        help=f"run only these: {', '.join(VARIANTS)}, web (the web page section), framings "
        "(the framing modules A, B, C side by side), two (two streams at once); "
        "with --quick, a short check that one variant works",
    )
    args = ap.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else {*VARIANTS, "web", "framings", "two"}
    unknown = wanted - {*VARIANTS, "web", "framings", "two"}
    if unknown:
        ap.error(f"--only: unknown {', '.join(sorted(unknown))}")
    steps = "30:45,60:45,120:45" if args.quick else "30:120,60:90,90:90,120:90"
    loop = 4 if args.quick else 8
    started = time.monotonic()
    print(f"borescope-bridge benchmark on {machine()}")
    print(
        f"steps (fps:frames): {steps}; the first is the measuring run (done before and after "
        "the ladder; the cheaper of the two is shown), then the no-loss ladder"
    )
    print(
        "CPU = receiver process CPU time (all threads) per frame; latency = last fragment in "
        "-> written to the sink"
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        frames = make_frames(Path(tmp), loop)
        deb = debian_package(Path(tmp)) if "raw-deb" in wanted else "not asked for"
        for name, _w, _h in RESOLUTIONS:
            d, avg = frames[name]
            print(f"\n== {name} (simulator frames, 4:2:2 q80, {avg / 1000:.0f} KB average)")
            print(
                f"{'variant':40s} {'CPU ms/fr':>9s} {'max fps':>7s} {'p50 ms':>7s} "
                f"{'p99 ms':>7s} {'RSS MiB':>7s} {'flt/fr':>6s}  ladder fps:lost+skipped"
            )
            results[name] = {}
            for variant in (v for v in VARIANTS if v in wanted):
                if variant == "raw-deb":
                    r = (
                        {"error": deb}
                        if isinstance(deb, str)
                        else run_variant("raw", d, steps, args.no_device, deb)
                    )
                    if "error" not in r and (
                        r.get("pixel_path") != "numpy" or "/deb/root/" not in r.get("bridge", "")
                    ):
                        r = {"error": f"not the package's numpy path: {r.get('bridge')}"}
                else:
                    r = run_variant(variant, d, steps, args.no_device)
                results[name][variant] = r
                s = summarize(r)
                if "error" in s:
                    print(f"{LABELS[variant]:40s} failed: {s['error']}")
                    continue
                print(
                    f"{LABELS[variant]:40s} {fmt(s['cpu_ms']):>9s} "
                    f"{fmt(s.get('max_fps'), '.0f'):>7s} {fmt(s.get('p50')):>7s} "
                    f"{fmt(s.get('p99')):>7s} {fmt(s['rss'], '.0f'):>7s} "
                    f"{fmt(s['faults'], '.0f'):>6s}  {s.get('ladder', '')}"
                )
        if "web" in wanted:
            results["web"] = web_section(frames, steps.split(",")[0], args.quick)
        if "framings" in wanted:
            from bench.framings import framings_section

            results["framings"] = framings_section(frames)
        if "two" in wanted:
            results["two"] = two_streams_section(frames, steps.split(",")[0])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    report({k: v for k, v in results.items() if k not in ("web", "framings", "two")})
    load = os.getloadavg()
    print(
        f"\n(total {time.monotonic() - started:.0f} s; load average at the end "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs: other work on "
        "the machine inflates CPU times, latency tails and loss)"
    )
    return 0


def two_streams_section(frames: dict[str, tuple[Path, int]], step: str) -> dict[str, Any]:
    """Two 720p streams at once (two instances) against one: summed CPU per frame, loss."""
    print(
        f"\n== two streams: 720p raw, {step.replace(':', ' fps, ')} frames each, one process "
        "per stream (as one instance per scope), stand-in sink"
    )
    d, _avg = frames["720p"]
    one = run_variant("raw", d, step, True)
    with ThreadPoolExecutor(2) as pool:
        pair = list(pool.map(lambda _k: run_variant("raw", d, step, True), range(2)))
    out: dict[str, Any] = {"one": one, "two": pair}
    rows = [summarize(one), *(summarize(r) for r in pair)]
    failed = [r["error"] for r in rows if "error" in r]
    if failed:
        print(f"{'two 720p streams at once':40s} failed: {failed[0]}")
        return out
    single = rows[0]["cpu_ms"]
    total = rows[1]["cpu_ms"] + rows[2]["cpu_ms"]
    lost = [r["lost30"] for r in rows[1:]]
    out["ratio"] = total / single if single else None
    print(
        f"{'one 720p stream':40s} {fmt(single):>9s} CPU ms/frame, lost+skipped {rows[0]['lost30']}"
    )
    print(
        f"{'two 720p streams at once':40s} {fmt(total):>9s} CPU ms/frame-pair "
        f"({fmt(out['ratio'])}x one), lost+skipped {lost[0]} + {lost[1]}"
    )
    ok = out["ratio"] is not None and out["ratio"] <= 2.1 and not any(lost)
    print(f"  {'PASS' if ok else 'MISS'} two 720p streams <= 2.1x one, with no loss (informative)")
    return out


def web_section(
    frames: dict[str, tuple[Path, int]], step: str, quick: bool
) -> dict[str, dict[str, Any]]:
    """The web page's cost: receive alone + web server, with 0, 1 and 4 stream viewers."""
    print(
        f"\n== web page: /stream.mjpeg viewers in another process ({step.replace(':', ' fps, ')}"
        " frames; receive alone + the web server)"
    )
    print(
        f"{'size':6s} {'viewers':>7s} {'CPU ms/fr':>9s} {'extra/viewer':>12s} {'p50 ms':>7s} "
        f"{'p99 ms':>7s} {'parts/viewer/frame':>18s}"
    )
    out: dict[str, dict[str, Any]] = {}
    for name, _w, _h in RESOLUTIONS:
        if quick and name != "720p":
            continue
        d, _avg = frames[name]
        out[name] = {}
        base = None
        for n in WEB_CLIENTS:
            r = run_variant("web", d, step, True, clients=n)
            out[name][str(n)] = r
            if "error" in r:
                print(f"{name:6s} {n:7d} failed: {r['error']}")
                continue
            try:
                st = min(r["steps"][0], r.get("repeat", r["steps"][0]), key=lambda x: x["cpu_ms"])
            except (KeyError, IndexError, TypeError):
                print(f"{name:6s} {n:7d} failed: incomplete result")
                continue
            if n == 0:
                base = st["cpu_ms"]
            extra = None if base is None or n == 0 else (st["cpu_ms"] - base) / n
            print(
                f"{name:6s} {n:7d} {fmt(st['cpu_ms']):>9s} {fmt(extra, '.3f'):>12s} "
                f"{fmt(st['p50_ms']):>7s} {fmt(st['p99_ms']):>7s} "
                f"{fmt(st.get('sent_per_client') if n else None):>18s}"
            )
    return out


def report(results: dict[str, dict[str, Any]]) -> None:
    any_raw: dict[str, Any] = next(
        (r for res in results.values() for r in [res.get("raw", {})] if "sink" in r), {}
    )
    print(f"\nsink: {any_raw.get('sink', '?')}")
    rb = any_raw.get("rcvbuf")
    if rb:
        print(
            f"SO_RCVBUF: requested {rb['requested']}, kernel granted {rb['effective']} "
            f"(usable ~{rb['effective'] // 2}); net.core.rmem_max={rb['rmem_max']}; "
            f"{'CAPPED by rmem_max' if rb['capped'] else 'not capped'}"
        )
    floor_name = next(
        (
            r.get("floor_decoder")
            for res in results.values()
            for r in [res.get("floor", {})]
            if r.get("floor_decoder")
        ),
        "?",
    )
    print(f"floor decoder: {floor_name}")
    s = {name: {v: summarize(r) for v, r in res.items()} for name, res in results.items()}

    def cpu(name: str, v: str) -> float | None:
        return s.get(name, {}).get(v, {}).get("cpu_ms")

    print("\nratios (CPU per frame)       480p    720p   1080p")
    for label, a, b in (
        ("naive / raw", "naive", "raw"),
        ("raw / floor", "raw", "floor"),
        ("raw / mjpeg", "raw", "mjpeg"),
        ("idle / receive alone", "idle", "recv"),
        ("recording / receive alone", "record", "recv"),
        ("Debian package raw / raw", "raw-deb", "raw"),
    ):
        vals = []
        for name, _w, _h in RESOLUTIONS:
            x, y = cpu(name, a), cpu(name, b)
            vals.append(f"{x / y:7.2f}" if x and y else "      -")
        print(f"  {label:26s}" + " ".join(vals))

    print("\nchecks against the issue targets (issues 6 and 12; informative):")

    def check(ok: bool | None, text: str) -> None:
        print(f"  {'n/a ' if ok is None else 'PASS' if ok else 'MISS'} {text}")

    raw720, naive720 = cpu("720p", "raw"), cpu("720p", "naive")
    mj720 = cpu("720p", "mjpeg")
    raw1080 = cpu("1080p", "raw")
    for name, _w, _h in RESOLUTIONS:
        raw, floor = cpu(name, "raw"), cpu(name, "floor")
        check(
            None if not (raw and floor) else raw <= 1.25 * floor,
            f"raw {name} <= 1.25x floor: {fmt(raw)} vs {fmt(floor)} ms",
        )
    check(
        None if not (raw720 and naive720) else naive720 >= 2 * raw720,
        f"raw 720p >= 2x cheaper than naive: {fmt(naive720)} / {fmt(raw720)} ms",
    )
    check(
        None if not raw1080 else raw1080 * 30 / 1000 < 0.25,
        f"raw 1080p30 < 25% of one core: {fmt(raw1080 * 3 if raw1080 else None, '.1f')} %",
    )
    check(None if not mj720 else mj720 <= 0.6, f"mjpeg 720p <= 0.6 ms/frame: {fmt(mj720)} ms")
    check(
        None if not (mj720 and raw720) else raw720 >= 5 * mj720,
        f"mjpeg >= 5x cheaper than raw at 720p: {fmt(raw720)} / {fmt(mj720)} ms",
    )
    rb = any_raw.get("rcvbuf") or {}
    for v in ("raw", "mjpeg"):
        steps = results.get("1080p", {}).get(v, {}).get("steps", [])
        at60 = next((st for st in steps if st["fps"] == 60), None)
        ok = None if at60 is None else not (at60["lost"] or at60["skipped"])
        note = " (receive buffer capped: target does not apply)" if rb.get("capped") else ""
        check(
            ok,
            f"{v} 1080p at 60 fps without loss{note}: "
            f"{'-' if at60 is None else at60['lost'] + at60['skipped']} lost/skipped",
        )
    for name in ("720p", "1080p"):
        idle, recv = cpu(name, "idle"), cpu(name, "recv")
        check(
            None if not (idle and recv) else idle <= 1.10 * recv,
            f"idle {name} (nobody watching) <= 1.10x receive alone: {fmt(idle)} vs {fmt(recv)} ms",
        )
    deb720 = cpu("720p", "raw-deb")
    check(
        None if not (deb720 and raw720) else deb720 <= 1.25 * raw720,
        f"Debian package raw 720p <= 1.25x pip install raw (issue 13): {fmt(deb720)} vs "
        f"{fmt(raw720)} ms",
    )
    p99 = s.get("720p", {}).get("raw", {}).get("p99")
    check(None if p99 is None else p99 <= 5.0, f"raw 720p latency p99 <= 5 ms: {fmt(p99)} ms")
    rss: list[float] = [
        x["rss"]
        for res in s.values()
        for v, x in res.items()
        if v in ("raw", "mjpeg") and x.get("rss")
    ]
    check(
        None if not rss else max(rss) <= 120,
        f"pipeline process peak RSS <= 120 MiB: {fmt(max(rss) if rss else None, '.0f')} MiB "
        "(bench receiver process; the daemon adds snapshots/control)",
    )


if __name__ == "__main__":
    sys.exit(main())
