# SPDX-License-Identifier: GPL-3.0-or-later
"""One benchmark variant in its own process (fair RSS and page-fault behaviour); JSON on stdout.

Variants:
  raw      the daemon's path, built by the daemon's own builders (bridge.app.daemon):
           build_receive_path (Session: recv_into a preallocated buffer, the real Reassembler)
           -> make_output (Pipeline, format raw) worker thread -> sink
  mjpeg    the same with format mjpeg: no decode
  naive    the reference: recvfrom + bytearray +=, cv2.imdecode to BGR, BGR->I420 as
           pyvirtualcam fmt=BGR does, write, all inline in the receive loop
  floor    receive as in raw, then only libjpeg-turbo decode-to-YUV (no range fix, no 4:2:0, no
           write), inline: what any decoding bridge must at least pay
  recv     receive alone: the receive path, frames dropped (what every mode pays)
  idle     raw mode while nobody watches (v4l2loopback 0.14+ reports zero readers): the
           pipeline writes one frame, then the receive thread drops frames undecoded while
           the parked worker asks the count now and then (one poll(), as
           bridge.camera.usage does)
  decode   decode-to-YUV alone on the pre-encoded frames, no receive at all
  record   receive alone plus a .mkv recording (bridge.capture.recordings) to a temporary
           directory: beside "recv", the cost per frame of recording
  web      receive alone plus the web page's server (bridge.web) with --clients viewers of
           /stream.mjpeg in another process (bench/webclient.py); latency = frame complete ->
           its bytes written to a viewer's socket
CPU is this process's CPU time (all threads) divided by frames received. Every wait on the
sender or the viewers is bounded: a child that dies or stalls ends the variant with one line on
stderr (bench/run.py reports it as failed) instead of a hang. bench/run.py also runs
"raw" with Debian's /usr/bin/python3 on the files of the Debian package (no OpenCV, no
simplejpeg), so this module imports OpenCV only for the naive variant.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

import bridge
from bridge.app.build import build_receive_path, make_output
from bridge.app.config import Config
from bridge.camera.loopback import find_camera
from bridge.camera.v4l2 import V4L2Writer
from bridge.capture.recordings import Recordings
from bridge.core.protocol import FLAG_END, FLAG_START, HEARTBEAT, decode_fragment_header
from bridge.core.reassembly import Frame
from bridge.device.session import Session
from bridge.errors import BridgeError, CameraError
from bridge.pixels import yuv
from bridge.pixels.turbojpeg import TJSAMP_420, TurboJPEG, load_turbojpeg

RCVBUF_BYTES = 8 * 1024 * 1024
DRAIN_S = 0.3  # after the sender's last burst, time for the last frame to come out
START_S = 20.0  # for a child process to say it is up (imports, sockets, the first heartbeat)
RUN_MARGIN_S = 10.0  # beyond a run's own length, for the sender to say it is done
STOP_S = 10.0  # for a child or a thread to end once told to
MAX_RECORD_S = 3600.0  # the record variant's recording outlives any run


class LineReader:
    """A child's stdout, line by line, with a time limit on each wait (a thread reads it)."""

    def __init__(self, proc: subprocess.Popen[str], what: str) -> None:
        assert proc.stdout is not None
        self.what = what
        self._lines: queue.Queue[str | None] = queue.Queue()
        stream = proc.stdout

        def pump() -> None:
            for text in stream:
                self._lines.put(text)
            self._lines.put(None)  # end of output: the child exited

        threading.Thread(target=pump, name=f"{what}-stdout", daemon=True).start()

    def line(self, timeout: float) -> str:
        """The next line, stripped; BridgeError when the child exits or stays silent."""
        try:
            text = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BridgeError(f"{self.what} said nothing within {timeout:g} s") from None
        if text is None:
            self._lines.put(None)
            raise BridgeError(f"{self.what} exited")
        return text.strip()


def end_process(proc: subprocess.Popen[str], farewell: str | None = None) -> None:
    """Ask a child to quit (a line on its stdin), then make sure it is gone within STOP_S."""
    if farewell is not None and proc.poll() is None and proc.stdin is not None:
        try:
            proc.stdin.write(farewell)
            proc.stdin.flush()
        except OSError:
            pass
    try:
        proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_S)


class CopySink:
    """Stand-in for the device: the kernel's copy_from_user becomes a copy into our buffer."""

    def __init__(self, path: str, width: int, height: int, fmt: str, fps: float) -> None:
        self.size = (width, height)
        self.buf = bytearray(max(width * height * 2, 1 << 20))

    def resize(self, width: int, height: int) -> bool:
        self.size = (width, height)
        self.buf = bytearray(max(width * height * 2, 1 << 20))
        return True

    def write(self, data: Any) -> None:
        mv = memoryview(data).cast("B")
        self.buf[: mv.nbytes] = mv

    def close(self) -> None:
        self.buf = bytearray()


def sink_factory(use_device: bool) -> tuple[Callable[..., Any], str]:
    """The real V4L2 writer when a v4l2loopback device exists (and is wanted), else CopySink."""
    if use_device:
        try:
            path = find_camera("auto")
        except CameraError:
            path = None
        if path:

            def real(_p: str, w: int, h: int, fmt: str, fps: float) -> V4L2Writer:
                return V4L2Writer(path, w, h, fmt, fps, adopt_locked=True)

            return real, f"v4l2loopback {path}"
    return CopySink, "stand-in (copies the bytes; no v4l2loopback device)"


class NobodyWatching:
    """The client-usage count of a device nobody reads: zero, asked with one poll() a time.

    The poll is on a pipe that never has priority data, as ClientUsage.readers() polls the
    device fd for POLLPRI before it would dequeue an event.
    """

    supported = True
    may_idle = True

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self._poll = select.poll()
        self._poll.register(self._r, select.POLLPRI)

    def readers(self) -> int:
        self._poll.poll(0)
        return 0


class Counter:
    def __init__(self) -> None:
        self.frames = 0
        self.latencies: list[float] = []


class Listener:
    """Session listener: frames to the pipeline (or inline work for the floor variant)."""

    def __init__(self, on_frame: Callable[[Frame], None], counter: Counter) -> None:
        self._on_frame = on_frame
        self.counter = counter

    def on_frame(self, frame: Frame, now: float) -> None:
        self.counter.frames += 1
        self._on_frame(frame)

    def on_presses(self, count: int, now: float) -> None:
        pass

    def on_key(self, code: int, now: float) -> None:
        pass

    def on_state(self, old: str, new: str, now: float) -> None:
        pass

    def on_tick(self, now: float) -> None:
        pass


class FloorDecoder:
    """Decode-to-YUV planes into preallocated buffers, nothing else (the floor)."""

    def __init__(self) -> None:
        lib = load_turbojpeg()
        self.tj = TurboJPEG(lib) if lib is not None else None
        self.planes: tuple[np.ndarray, ...] | None = None
        self.bgr: np.ndarray | None = None
        self.name = "libturbojpeg decode-to-YUV" if self.tj else "simplejpeg BGR (no libturbojpeg)"

    def decode(self, jpeg: bytes) -> None:
        if self.tj is None:
            import simplejpeg

            h, w, _, _ = simplejpeg.decode_jpeg_header(jpeg)
            if self.bgr is None or self.bgr.shape != (h, w, 3):
                self.bgr = np.empty((h, w, 3), np.uint8)
            simplejpeg.decode_jpeg(jpeg, "BGR", buffer=self.bgr)
            return
        w, h, sub = self.tj.header(jpeg)
        ch = h // 2 if sub == TJSAMP_420 else h
        if self.planes is None or self.planes[0].shape != (h, w):
            self.planes = (
                np.empty((h, w), np.uint8),
                np.empty((ch, w // 2), np.uint8),
                np.empty((ch, w // 2), np.uint8),
            )
        self.tj.decode_planes(jpeg, self.planes, w, h, 0)  # type: ignore[arg-type]


def naive_receiver(
    stream_port: int, counter: Counter, sink: Any, stop: threading.Event, ready: threading.Event
) -> None:
    """The reference path: what a straightforward script does."""
    import cv2  # the naive path is OpenCV's (the pip install has it)

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)
    s.sendto(HEARTBEAT, ("127.0.0.1", stream_port))
    ready.set()
    buf = bytearray()
    frame_sink = None
    size = None
    last_hb = time.monotonic()
    while not stop.is_set():
        try:
            data, _addr = s.recvfrom(65536)
        except TimeoutError:
            continue
        now = time.monotonic()
        if now - last_hb > 0.5:
            s.sendto(HEARTBEAT, ("127.0.0.1", stream_port))
            last_hb = now
        hdr = decode_fragment_header(data)
        if not hasattr(hdr, "flag"):
            continue
        if hdr.flag == FLAG_START:
            buf = bytearray()
        buf += data[24:]
        if hdr.flag != FLAG_END:
            continue
        done_at = time.monotonic()
        counter.frames += 1
        bgr = cv2.imdecode(np.frombuffer(bytes(buf), np.uint8), cv2.IMREAD_COLOR)
        buf = bytearray()
        if bgr is None:
            continue
        h, w = bgr.shape[:2]
        if size != (w, h):
            frame_sink = sink(None, w, h, "raw", 30.0)
            size = (w, h)
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        frame_sink.write(i420)  # type: ignore[union-attr]
        counter.latencies.append(time.monotonic() - done_at)
    s.close()


def peak_rss_mib() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's peak from before exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def start_web(clients: int) -> tuple[Any, Any, subprocess.Popen[str] | None]:
    """The daemon's web server fed by a Feed, and `clients` viewers in their own process."""
    import secrets
    import tempfile

    from bridge.web.feed import Feed
    from bridge.web.server import WebServer

    snapdir = tempfile.mkdtemp(prefix="bench-web-")

    def no_snapshot(_timeout: float, _origin: str) -> Future[dict[str, Any]]:
        refused: Future[dict[str, Any]] = Future()
        refused.set_result({"ok": False})
        return refused

    feed = Feed(lambda: {}, no_snapshot, lambda: snapdir)
    feed.set_state("streaming", True)
    token = secrets.token_urlsafe(24)
    web = WebServer(feed, "127.0.0.1", 0, token)
    web.start()
    viewers = None
    if clients:
        viewers = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.webclient"),
                *("--port", str(web.port), "--token", token, "--clients", str(clients)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            if LineReader(viewers, "the web viewers").line(START_S) != "ready":
                raise BridgeError("the benchmark's web viewers did not start")
        except BridgeError:
            end_process(viewers, "quit\n")
            web.stop()
            raise
    return feed, web, viewers


def run_receive(
    variant: str,
    frames_dir: Path,
    steps: list[tuple[float, int]],
    use_device: bool,
    clients: int = 0,
) -> dict[str, Any]:
    sender = subprocess.Popen(
        [sys.executable, "-m", "bench.sender", "--frames-dir", str(frames_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        return receive_with(sender, variant, steps, use_device, clients)
    finally:
        end_process(sender, "quit\n")


def bench_config(ports: dict[str, int], fmt: str) -> Config:
    """The daemon's settings for a variant: the sender on loopback, no waiting, no linger."""
    return Config(
        device_ip="127.0.0.1",
        stream_port=ports["stream_port"],
        event_port=ports["event_port"],
        format=fmt,
        wait=0.0,
        linger=0.0,
        receive_buffer_bytes=RCVBUF_BYTES,
    )


def receive_with(
    sender: subprocess.Popen[str],
    variant: str,
    steps: list[tuple[float, int]],
    use_device: bool,
    clients: int,
) -> dict[str, Any]:
    assert sender.stdin is not None
    from_sender = LineReader(sender, "the benchmark sender")
    ports = json.loads(from_sender.line(START_S))
    factory, sink_name = sink_factory(use_device)
    counter = Counter()
    pipeline: Any = None  # bridge.camera.pipeline.Pipeline, from the daemon's make_output
    session: Session | None = None
    stop = threading.Event()
    ready = threading.Event()
    result: dict[str, Any] = {
        "variant": variant,
        "sink": sink_name,
        "pixel_path": yuv.backend(),
        "python": sys.executable,
        "bridge": bridge.__file__,
    }
    receive: Callable[[], object]
    on_frame: Callable[[Frame], None]
    web: Any = None
    viewers: subprocess.Popen[str] | None = None
    recordings: Recordings | None = None
    rec_dir = ""
    if variant == "naive":

        def receive() -> None:
            naive_receiver(ports["stream_port"], counter, factory, stop, ready)
    else:
        if variant == "recv":

            def on_frame(frame: Frame) -> None:
                counter.latencies.append(time.monotonic() - frame.completed_at)
        elif variant == "record":
            # The receive loop's cost plus the recording's (its writer thread counts too:
            # process_time is the whole process's).
            rec_dir = tempfile.mkdtemp(prefix="borescope-bench-rec-")
            recordings = Recordings(rec_dir, max_seconds=MAX_RECORD_S)
            recordings.start("bench").result(START_S)

            def on_frame(frame: Frame) -> None:
                recordings.offer(frame.data, frame.completed_at)
                counter.latencies.append(time.monotonic() - frame.completed_at)
        elif variant == "web":
            feed, web, viewers = start_web(clients)
            result["clients"] = clients

            def on_frame(frame: Frame) -> None:
                feed.frame(frame.data, frame.completed_at, None)
        elif variant in ("raw", "mjpeg", "idle"):
            fmt = "raw" if variant == "idle" else variant
            if variant == "idle":
                nobody = NobodyWatching()
                pipeline = make_output(
                    bench_config(ports, fmt), sink_factory=factory, usage_factory=lambda s: nobody
                )
            else:
                pipeline = make_output(bench_config(ports, fmt), sink_factory=factory)
            pipeline.start()
            on_frame = pipeline.submit
        else:
            floor = FloorDecoder()
            result["floor_decoder"] = floor.name

            def on_frame(frame: Frame) -> None:
                floor.decode(frame.data)
                counter.latencies.append(time.monotonic() - frame.completed_at)

        session = build_receive_path(bench_config(ports, "raw"), Listener(on_frame, counter))
        session.open()
        rb = session.receive_buffer
        result["rcvbuf"] = {
            "requested": rb.requested,
            "effective": rb.effective,
            "capped": rb.capped,
            "rmem_max": rb.rmem_max,
        }
        receive = session.run
        ready.set()

    def run_step(fps: float, n: int) -> dict[str, Any]:
        counter.latencies.clear()
        if pipeline is not None:
            pipeline.reset_latency()
        sent0 = 0
        if web is not None:
            web.reset_latency()
            sent0 = web.frames_sent
        f0, c0 = counter.frames, time.process_time()
        m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        sk0 = pipeline.skipped if pipeline else 0
        sh0 = pipeline.shown if pipeline else 0
        sender.stdin.write(f"run {fps} {n}\n")  # type: ignore[union-attr]
        sender.stdin.flush()  # type: ignore[union-attr]
        from_sender.line(n / fps + RUN_MARGIN_S)
        time.sleep(DRAIN_S)
        cpu = time.process_time() - c0
        got = counter.frames - f0
        step: dict[str, Any] = {
            "fps": fps,
            "sent": n,
            "received": got,
            "lost": n - got,
            "cpu_ms": 1000 * cpu / max(got, 1),
            "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0) / max(got, 1),
        }
        if pipeline is not None:
            st = pipeline.stats()
            step["skipped"] = pipeline.skipped - sk0
            step["shown"] = pipeline.shown - sh0
            step["p50_ms"], step["p99_ms"] = st["latency_p50_ms"], st["latency_p99_ms"]
            if st["camera_error"]:
                step["camera_error"] = st["camera_error"]
        elif web is not None:
            ws = web.stats()
            step["skipped"] = 0
            step["p50_ms"], step["p99_ms"] = ws["latency_p50_ms"], ws["latency_p99_ms"]
            # Parts written per viewer per frame received: 1.0 when no viewer skipped any.
            step["sent_per_client"] = (web.frames_sent - sent0) / max(got, 1) / max(clients, 1)
        else:
            step["skipped"] = 0
            p50, p99 = percentile(counter.latencies, 0.5), percentile(counter.latencies, 0.99)
            step["p50_ms"] = None if p50 is None else 1000 * p50
            step["p99_ms"] = None if p99 is None else 1000 * p99
        return step

    errors: list[BaseException] = []

    def control() -> None:
        """Drives the sender run by run while the receive loop owns the main thread."""
        try:
            if not ready.wait(START_S):
                raise BridgeError("the receiver did not start")
            if from_sender.line(START_S) != "ready":
                raise BridgeError("the benchmark sender did not start")
            run_step(30.0, 15)  # warm-up: first open of the sink, allocations, caches
            result["steps"] = []
            for k, (fps, n) in enumerate(steps):
                step = run_step(fps, n)
                result["steps"].append(step)
                if k > 0 and (step["lost"] or step["skipped"]):
                    break  # the ladder stops at the first rate with loss
            # The measuring run once more, after the ladder: the report takes the cheaper of
            # the two, which filters out much of the noise other work on the machine adds.
            result["repeat"] = run_step(*steps[0])
        except BaseException as exc:
            errors.append(exc)
        finally:
            end_process(sender, "quit\n")
            stop.set()
            if session is not None:
                session.request_stop()

    controller = threading.Thread(target=control, name="bench-control", daemon=True)
    controller.start()
    # The receive loop runs in the main thread, as in the daemon and in a naive script (it
    # matters: glibc's main arena gives cv2.imdecode's buffers back and faults them in again).
    try:
        receive()
    finally:
        controller.join(STOP_S)
        if pipeline is not None:
            pipeline.stop()
        if viewers is not None:
            end_process(viewers, "quit\n")
        if web is not None:
            web.stop()
        if recordings is not None:
            recordings.shutdown()
            result["recording"] = recordings.status()
            shutil.rmtree(rec_dir, ignore_errors=True)
    if controller.is_alive():
        raise BridgeError("the benchmark's control thread did not finish")
    if errors:
        raise errors[0]
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def run_decode_only(frames_dir: Path, count: int) -> dict[str, Any]:
    jpegs = [p.read_bytes() for p in sorted(frames_dir.glob("*.jpg"))]
    floor = FloorDecoder()
    for j in jpegs:
        floor.decode(j)
    c0 = time.process_time()
    m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for k in range(count):
        floor.decode(jpegs[k % len(jpegs)])
    cpu = time.process_time() - c0
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0) / count
    return {
        "variant": "decode",
        "floor_decoder": floor.name,
        "cpu_ms": 1000 * cpu / count,
        "faults": faults,
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--variant",
        required=True,
        choices=["raw", "mjpeg", "idle", "naive", "floor", "recv", "record", "decode", "web"],
    )
    ap.add_argument("--clients", type=int, default=0, help="web variant: stream viewers")
    ap.add_argument("--frames-dir", required=True, type=Path)
    ap.add_argument(
        "--steps",
        default="30:90,60:60,90:60,120:60",
        help="FPS:FRAMES,...; the first is the measuring run, the rest the ladder",
    )
    ap.add_argument("--no-device", action="store_true", help="always use the stand-in sink")
    args = ap.parse_args(argv)
    steps = [(float(a), int(b)) for a, b in (s.split(":") for s in args.steps.split(","))]
    try:
        if args.variant == "decode":
            out = run_decode_only(args.frames_dir, steps[0][1] * 2)
        else:
            out = run_receive(
                args.variant, args.frames_dir, steps, not args.no_device, clients=args.clients
            )
    except (BridgeError, OSError, ValueError) as exc:
        print(f"{args.variant}: {exc}", file=sys.stderr)  # bench/run.py shows this line
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
