# SPDX-License-Identifier: GPL-3.0-or-later
"""The real `borescope-bridge run` process against the simulator over real UDP on 127.0.0.1.

Every test waits on events (an sd_notify message, a file, a status field), never on fixed
sleeps; the only time bounds are generous "within N seconds" limits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import DEADLINE_S, wait_for

from bridge.control import request
from bridge.simulator import Simulator, SimulatorConfig

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def simulator(**kw: Any) -> Iterator[Simulator]:
    kw.setdefault("seed", 1234)
    kw.setdefault("resolution", (640, 480))
    sim = Simulator(SimulatorConfig(bind="127.0.0.1", stream_port=0, event_port=0, **kw))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """The daemon's environment: no systemd variables of our own session leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "NOTIFY_SOCKET",
            "INVOCATION_ID",
            "JOURNAL_STREAM",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "STATE_DIRECTORY",
            "RUNTIME_DIRECTORY",
        )
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`borescope-bridge ARGS...` as a user runs it, in the daemon tests' clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


class Daemon:
    """A `borescope-bridge run` child process with its own notify socket and directories."""

    def __init__(
        self,
        tmp: Path,
        sim: Simulator | None,
        *extra: str,
        device_ports: tuple[int, int] | None = None,
        snapshot_flag: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.snapdir = tmp / "snaps"
        self.sock = str(tmp / "control.sock")
        self.log = tmp / "daemon.log"
        self.config = tmp / "config.toml"
        if not self.config.exists():
            self.config.write_text("# empty: the tests pass everything as flags\n")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_path = str(tmp / "notify.sock")
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        ports = device_ports or (sim.stream_port, sim.event_port)  # type: ignore[union-attr]
        self.argv = [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "--config",
            str(self.config),
            "--device-ip",
            "127.0.0.1",
            "--stream-port",
            str(ports[0]),
            "--event-port",
            str(ports[1]),
            "--camera",
            "none",
            "--control-socket",
            self.sock,
            *extra,
        ]
        if snapshot_flag:
            self.argv += ["--snapshot-dir", str(self.snapdir)]
        self._log_fh = open(self.log, "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.DEVNULL,
            stderr=self._log_fh,
            env=clean_env(NOTIFY_SOCKET=self.notify_path, **(env or {})),
        )
        # Drain the notify socket all the time, as systemd does: a full queue blocks sd_notify.
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_notify_forever, daemon=True)
        self._reader.start()

    def _read_notify_forever(self) -> None:
        self.notify.settimeout(0.1)
        while not self._closing.is_set():
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode())

    def mark(self) -> int:
        """Position in the notify log: wait_notify(since=mark) ignores what came before."""
        with self._lock:
            return len(self.messages)

    def wait_notify(
        self,
        predicate: Callable[[str], bool],
        timeout: float = DEADLINE_S,
        what: str = "",
        since: int = 0,
    ) -> str:
        end = time.monotonic() + timeout
        seen = since
        exited_at: float | None = None
        while True:
            with self._lock:
                fresh = self.messages[seen:]
            for msg in fresh:
                if predicate(msg):
                    return msg
            seen += len(fresh)
            now = time.monotonic()
            if now > end:
                raise AssertionError(
                    f"no notify message {what}; got {self.messages}\nlog:\n{self.log.read_text()}"
                )
            if self.proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 1.0:  # let the reader pick up the last messages
                    raise AssertionError(
                        f"daemon exited {self.proc.returncode} before {what}"
                        f"\nlog:\n{self.log.read_text()}"
                    )
            time.sleep(0.02)

    def wait_ready(self) -> None:
        self.wait_notify(lambda m: "READY=1" in m, what="READY=1")

    def wait_streaming(self, since: int = 0) -> None:
        self.wait_notify(lambda m: "STATUS=streaming" in m, what="STATUS=streaming", since=since)

    def status(self) -> dict[str, Any]:
        reply = request(self.sock, {"cmd": "status"}, timeout=10)
        assert reply["ok"], reply
        return reply["status"]

    def snapshot(self, timeout: float = 10) -> dict[str, Any]:
        return request(self.sock, {"cmd": "snapshot", "timeout": timeout}, timeout=timeout + 5)

    def jpgs(self, directory: Path | None = None) -> list[Path]:
        d = directory or self.snapdir
        return sorted(d.glob("*.jpg")) if d.exists() else []

    def terminate(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._closing.set()
        self._reader.join(2)
        self._log_fh.close()
        self.notify.close()


@pytest.fixture
def run_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(sim: Simulator | None, *extra: str, **kw: Any) -> Daemon:
        d = Daemon(tmp_path, sim, *extra, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def frames_of(sim: Simulator) -> set[bytes]:
    return set(sim.frames)


# ---- tests -----------------------------------------------------------------------------------


def test_ready_status_snapshot_and_clean_stop(run_daemon: Callable[..., Daemon]) -> None:
    with simulator() as sim:
        sim.press_button(3)  # pressed before the bridge started: history, not snapshots
        d = run_daemon(sim, env={"WATCHDOG_USEC": "2000000"})
        d.wait_ready()
        d.wait_streaming()
        status = wait_for(
            lambda: (s := d.status())["frames_received"] >= 10 and s, what="10 frames"
        )
        assert status["state"] == "streaming"
        assert status["device_ip"] == "127.0.0.1"
        assert status["resolution"] == "640x480"
        assert status["foreign_packets"] == 0
        assert status["receive_buffer_bytes"] > 0
        for key in (
            "fps",
            "frames_shown",
            "frames_skipped",
            "frames_incomplete",
            "frames_corrupt",
            "last_frame_age_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "snapshots_taken",
            "last_snapshot",
            "camera",
            "uptime_s",
            "receive_buffer_capped",
        ):
            assert key in status
        # No snapshot at start-up, although the button counter was read many times by now.
        assert status["buttons"]["replies"] > 0
        assert d.jpgs() == []

        # Through the real commands, as a user would.
        r = run_cli("snapshot", "--socket", d.sock)
        assert r.returncode == 0, r.stderr
        path = Path(r.stdout.strip())
        assert path.parent == d.snapdir
        assert path.read_bytes() in frames_of(sim)
        r = run_cli("status", "--socket", d.sock, "--json")
        assert r.returncode == 0, r.stderr
        as_json = json.loads(r.stdout)
        assert as_json["last_snapshot"] == str(path)
        assert as_json["snapshots_taken"] == 1
        r = run_cli("status", "--socket", d.sock)
        assert r.returncode == 0, r.stderr
        assert "state:" in r.stdout and "streaming" in r.stdout and str(path) in r.stdout
        # The watchdog is pinged from the main loop (WATCHDOG_USEC is set for this run).
        d.wait_notify(lambda m: "WATCHDOG=1" in m, what="WATCHDOG=1")
        d.wait_notify(
            lambda m: "STATUS=streaming 640x480" in m and "1 snapshot" in m,
            what="STATUS= with the snapshot count",
        )

        t0 = time.monotonic()
        assert d.terminate() == 0
        assert time.monotonic() - t0 < 5  # generous bound on "exits within 1 s"
        d.wait_notify(lambda m: "STOPPING=1" in m, what="STOPPING=1")
        wait_for(lambda: sim.stats.stops >= 1, what="the simulator to receive STOP")


def test_button_presses_one_file_each_including_bursts_and_wrap(
    run_daemon: Callable[..., Daemon],
) -> None:
    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        wait_for(lambda: d.status()["buttons"]["replies"] > 0, what="a baseline reply")
        sim.press_button(1)
        wait_for(lambda: len(d.jpgs()) == 1, what="one snapshot")
        sim.press_button(3)  # a burst between two polls
        wait_for(lambda: len(d.jpgs()) == 4, what="three more snapshots")
        sim.press_button(0xFFFE - sim.button_counter)  # a jump: re-baseline, not 65530 presses
        wait_for(lambda: d.status()["buttons"]["rebaselines"] >= 1, what="re-baseline")
        sim.press_button(3)  # 0xFFFE -> 0x0001 across the 16-bit wrap
        wait_for(lambda: len(d.jpgs()) == 7, what="three snapshots across the wrap")
        # Sync on a control snapshot: anything extra from the button would show up before it.
        assert d.snapshot()["ok"]
        files = d.jpgs()
        assert len(files) == 8
        assert all(f.read_bytes() in frames_of(sim) for f in files)
        assert d.status()["button_presses"] == 7
        assert sim.button_counter == 1
        assert d.terminate() == 0


def test_no_snapshot_flood_after_device_reboot(run_daemon: Callable[..., Daemon]) -> None:
    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        wait_for(lambda: d.status()["buttons"]["replies"] > 0, what="a baseline reply")
        sim.press_button(5)
        wait_for(lambda: len(d.jpgs()) == 5, what="five snapshots")
        mark = d.mark()
        sim.reboot(downtime_s=1.5)
        # The stream stalls (no frames for > 1 s), then resumes by itself.
        stall = d.wait_notify(
            lambda m: "STATUS=" in m and "streaming" not in m, what="a stall", since=mark
        )
        d.wait_streaming(since=d.messages.index(stall))
        sim.press_button(1)
        wait_for(lambda: len(d.jpgs()) == 6, what="one snapshot after the reboot")
        assert d.snapshot()["ok"]
        assert len(d.jpgs()) == 7
        assert d.terminate() == 0


def test_sigusr1_takes_a_snapshot(run_daemon: Callable[..., Daemon]) -> None:
    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        d.proc.send_signal(signal.SIGUSR1)
        files = wait_for(lambda: d.jpgs(), what="a SIGUSR1 snapshot")
        assert files[0].read_bytes() in frames_of(sim)
        assert d.terminate() == 0


def split_recording(data: bytes, frames: list[bytes]) -> list[int]:
    """Indices into `frames` of the JPEGs concatenated in `data`; fails on any foreign byte."""
    by_head: dict[bytes, list[int]] = {}
    for i, f in enumerate(frames):
        by_head.setdefault(f[:64], []).append(i)
    out = []
    pos = 0
    while pos < len(data):
        for i in by_head.get(data[pos : pos + 64], []):
            f = frames[i]
            if data[pos : pos + len(f)] == f:
                out.append(i)
                pos += len(f)
                break
        else:
            raise AssertionError(f"recording has bytes at {pos} that are no sent frame")
    return out


def test_recording_is_byte_exact_under_loss_duplication_and_reordering(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    record = tmp_path / "out.mjpeg"
    with simulator(loss=0.01, duplicate=0.05, reorder=0.05, corrupt=0.01) as sim:
        d = run_daemon(sim, "--record", str(record))
        d.wait_streaming()
        wait_for(lambda: d.status()["recording"]["frames"] >= 40, what="40 recorded frames")
        assert d.terminate() == 0
        order = split_recording(record.read_bytes(), sim.frames)
    assert len(order) >= 40
    # In order: each frame follows its predecessor in the simulator's loop (lost ones skipped).
    n = len(sim.frames)
    for a, b in itertools.pairwise(order):
        assert 0 < (b - a) % n < n // 2


def test_foreign_packets_are_counted_and_never_saved(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    record = tmp_path / "out.mjpeg"
    with simulator(foreign=0.2) as sim:
        d = run_daemon(sim, "--record", str(record))
        d.wait_streaming()
        wait_for(lambda: d.status()["foreign_packets"] >= 20, what="foreign packets")
        assert d.snapshot()["ok"]
        wait_for(lambda: d.status()["recording"]["frames"] >= 20, what="20 recorded frames")
        assert d.status()["button_presses"] == 0
        assert d.terminate() == 0
        assert sim.stats.foreign > 0 and sim.stats.foreign_events > 0
        split_recording(record.read_bytes(), sim.frames)
        # Forged RETCMDs claimed 5 presses each: none may have produced a snapshot.
        files = d.jpgs()
        assert len(files) == 1
        assert files[0].read_bytes() in frames_of(sim)


def test_foreign_host_cannot_inject(run_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """Datagrams from 127.0.0.2 (same ports) are dropped and counted, whatever they contain."""
    from bridge.protocol import encode_retcmd, fragment_jpeg

    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        hostile = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            hostile.bind(("127.0.0.2", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2: {exc}")
        with hostile:
            addr = wait_for(lambda: sim.client, what="the daemon's stream address")
            evil = b"\xff\xd8" + b"EVIL" * 100 + b"\xff\xd9"
            pkts = fragment_jpeg(7, evil)
            for pkt in pkts:
                hostile.sendto(pkt, addr)
            for c in range(50):
                hostile.sendto(encode_retcmd(c, c), addr)
            wait_for(lambda: d.status()["foreign_packets"] >= len(pkts) + 50, what="foreign count")
        assert d.snapshot()["ok"]
        for f in d.jpgs():
            assert b"EVIL" not in f.read_bytes()
        assert len(d.jpgs()) == 1
        assert d.terminate() == 0


def test_exits_zero_when_no_borescope_answers(run_daemon: Callable[..., Daemon]) -> None:
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    port = quiet.getsockname()[1]
    with quiet:
        d = run_daemon(None, "--wait", "1", device_ports=(port, port))
        d.wait_ready()
        assert d.proc.wait(DEADLINE_S) == 0
    assert "no borescope answers at 127.0.0.1" in d.log.read_text()


def test_snapshot_without_video_fails_clearly(run_daemon: Callable[..., Daemon]) -> None:
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    port = quiet.getsockname()[1]
    with quiet:
        d = run_daemon(None, "--wait", "0", device_ports=(port, port))
        d.wait_ready()
        r = run_cli("snapshot", "--socket", d.sock, "--timeout", "1")
        assert r.returncode == 1
        assert "no complete frame arrived" in r.stderr
        assert "waiting for device" in r.stderr
        assert d.status()["state"] == "waiting for device"
        assert d.jpgs() == []
        assert d.terminate() == 0


def test_exits_zero_after_linger_when_device_is_gone(run_daemon: Callable[..., Daemon]) -> None:
    with simulator() as sim:
        d = run_daemon(sim, "--linger", "1")
        d.wait_streaming()
    # The simulator is gone now.
    assert d.proc.wait(DEADLINE_S) == 0
    assert "gone" in d.log.read_text()


def test_sighup_reloads_snapshot_dir(tmp_path: Path, run_daemon: Callable[..., Daemon]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    config = tmp_path / "config.toml"
    config.write_text(f'snapshot_dir = "{first}"\n')
    with simulator() as sim:
        # No --snapshot-dir flag: it would override the file.
        d = run_daemon(sim, snapshot_flag=False)
        d.wait_streaming()
        r = d.snapshot()
        assert r["ok"] and Path(r["path"]).parent == first
        config.write_text(f'snapshot_dir = "{second}"\n')
        mark = d.mark()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_notify(lambda m: "RELOADING=1" in m, what="RELOADING=1", since=mark)
        wait_for(lambda: d.status()["snapshot_dir"] == str(second), what="the new dir")
        r = d.snapshot()
        assert r["ok"] and Path(r["path"]).parent == second
        assert "snapshot_dir" in d.log.read_text()
        assert d.terminate() == 0


@contextlib.contextmanager
def tiny_filesystem(path: Path) -> Iterator[str]:
    """A 256 KiB tmpfs (root) or, failing that, a read-only bind mount; skip otherwise."""
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path) -> None:
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def test_full_disk_is_reported_and_streaming_goes_on(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    full = tmp_path / "full"
    with tiny_filesystem(full), simulator() as sim:
        (full / "snaps").mkdir()
        (full / "rec.mjpeg").touch()
        fill(full)
        d = run_daemon(
            sim,
            "--snapshot-dir",
            str(full / "snaps"),
            "--record",
            str(full / "rec.mjpeg"),
            snapshot_flag=False,
        )
        d.wait_streaming()
        reply = d.snapshot()
        assert reply["ok"] is False
        assert "disk full" in reply["error"] or "No space" in reply["error"]
        status = wait_for(
            lambda: (s := d.status())["recording"]["error"] and s, what="recording error"
        )
        assert "disk full" in status["recording"]["error"]
        assert status["snapshots_failed"] == 1
        assert "disk full" in status["snapshot_error"]
        before = status["frames_received"]
        wait_for(lambda: d.status()["frames_received"] >= before + 10, what="frames flowing on")
        assert d.status()["state"] == "streaming"
        # Nothing partial anywhere.
        leftovers = (
            [p.name for p in (full / "snaps").iterdir()] if (full / "snaps").exists() else []
        )
        assert leftovers == []
        assert d.terminate() == 0


def test_resumes_after_a_stall(run_daemon: Callable[..., Daemon]) -> None:
    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        mark = d.mark()
        sim.reboot(downtime_s=2.0)
        stall = d.wait_notify(
            lambda m: "STATUS=stalled" in m or "STATUS=waiting" in m, what="stall", since=mark
        )
        d.wait_streaming(since=d.messages.index(stall))
        before = d.status()["frames_received"]
        wait_for(lambda: d.status()["frames_received"] > before, what="frames again")
        assert d.terminate() == 0


def test_journal_records_carry_structured_fields() -> None:
    """Under systemd, log records reach the journal with BORESCOPE_* fields of the moment."""
    import logging

    from systemd.journal import JournalHandler

    from bridge.service import StructuredFields

    sent: list[dict[str, Any]] = []

    def sender(MESSAGE: str, **kw: Any) -> None:  # journal.send names it MESSAGE
        sent.append({"MESSAGE": MESSAGE, **kw})

    handler = JournalHandler(sender_function=sender)
    fields = {"BORESCOPE_STATE": "waiting for device", "BORESCOPE_DEVICE": "192.168.10.123"}
    handler.addFilter(StructuredFields(fields))
    logger = logging.getLogger("test.journal")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("first")
        fields["BORESCOPE_STATE"] = "streaming"
        logger.warning("second")
    finally:
        logger.removeHandler(handler)
    assert [m["BORESCOPE_STATE"] for m in sent] == ["waiting for device", "streaming"]
    assert all(m["BORESCOPE_DEVICE"] == "192.168.10.123" for m in sent)


def test_journal_is_chosen_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    from bridge.service import under_journal

    st = os.fstat(sys.stderr.fileno())
    assert under_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not under_journal({"JOURNAL_STREAM": "1:2"})
    assert not under_journal({})


# ---- in-process: the daemon feeding the video side's real Pipeline ------------------------------


class CaptureSink:
    def __init__(self, writes: list[bytes]) -> None:
        self.writes = writes

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass


class SpyPipeline:
    """The real Pipeline (mjpeg pass-through into a capturing sink) plus a log of signals."""

    def __init__(self, writes: list[bytes], events: list[str]) -> None:
        from bridge.pipeline import Pipeline

        self.inner = Pipeline(
            camera="/dev/video-test", fmt="mjpeg", sink_factory=lambda *a: CaptureSink(writes)
        )
        self.events = events

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()

    def submit(self, frame: Any) -> None:
        self.inner.submit(frame)

    def signal_lost(self) -> None:
        self.events.append("lost")
        self.inner.signal_lost()

    def signal_back(self) -> None:
        self.events.append("back")
        self.inner.signal_back()

    @property
    def stats(self) -> dict[str, Any]:
        return self.inner.stats


def test_daemon_feeds_the_pipeline_and_signals_stalls(tmp_path: Path) -> None:
    from bridge.config import Config
    from bridge.daemon import Daemon as BridgeDaemon
    from bridge.service import StructuredFields

    writes: list[bytes] = []
    events: list[str] = []
    with simulator(foreign=0.1) as sim:
        cfg = Config(
            device_ip="127.0.0.1",
            stream_port=sim.stream_port,
            event_port=sim.event_port,
            camera="/dev/video-test",
            format="mjpeg",
            snapshot_dir=str(tmp_path / "s"),
            control_socket=str(tmp_path / "c.sock"),
            wait=0,
            linger=0,
        )
        fields: dict[str, Any] = {}
        daemon = BridgeDaemon(
            cfg, output_factory=lambda c: SpyPipeline(writes, events), log_fields=fields
        )
        observed: dict[str, Any] = {}
        records: list[logging.LogRecord] = []
        capture = logging.Handler()
        capture.emit = records.append  # type: ignore[method-assign]
        capture.addFilter(StructuredFields(fields))
        logging.getLogger("bridge").addHandler(capture)
        logging.getLogger("bridge").setLevel(logging.INFO)

        def script() -> None:
            try:
                wait_for(lambda: daemon.session.state == "streaming", what="streaming")
                wait_for(lambda: len(writes) >= 10, what="frames on the camera")
                sim.reboot(downtime_s=2.0)
                wait_for(lambda: events.count("lost") >= 2, what="signal_lost on the stall")
                wait_for(lambda: events.count("back") >= 2, what="signal_back on resume")
                observed["status"] = daemon.status()
            finally:
                daemon.session.request_stop()

        t = threading.Thread(target=script)
        t.start()
        try:
            assert daemon.run() == 0
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            logging.getLogger("bridge").removeHandler(capture)
            t.join(DEADLINE_S)
        frames = set(sim.frames)
    # Journal fields describe the state the message is about.
    streaming_logs = [r for r in records if r.getMessage().startswith("streaming from")]
    assert streaming_logs
    assert all(getattr(r, "BORESCOPE_STATE", None) == "streaming" for r in streaming_logs)
    assert all(getattr(r, "BORESCOPE_DEVICE", None) == "127.0.0.1" for r in records)
    # "no signal" from the start until the first frame, then back, lost on the stall, back.
    assert events[:4] == ["lost", "back", "lost", "back"]
    shown = [w for w in writes if w in frames]
    assert len(shown) >= 10
    # Forged fragments from 127.0.0.2 never reach the camera: every picture is a sent frame
    # or the "no signal" card.
    from bridge.nosignal import no_signal_jpeg

    assert set(writes) <= frames | {no_signal_jpeg(640, 480)}
    assert observed["status"]["foreign_packets"] > 0
    status = observed["status"]
    assert status["camera"] == "/dev/video-test"
    assert status["frames_shown"] >= 10
    assert status["latency_p50_ms"] is not None and status["latency_p99_ms"] is not None


def test_reload_applies_rotate_live_and_names_what_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.config import Config
    from bridge.daemon import Daemon as BridgeDaemon
    from bridge.pipeline import Pipeline

    base = Config(
        device_ip="127.0.0.1",
        camera="/dev/video-test",
        snapshot_dir=str(tmp_path / "a"),
        control_socket=str(tmp_path / "c.sock"),
    )
    new = [base]
    pipeline = Pipeline(camera="/dev/video-test", sink_factory=lambda *a: CaptureSink([]))
    daemon = BridgeDaemon(base, reload_config=lambda: new[0], output_factory=lambda c: pipeline)
    new[0] = Config(
        **{
            **base.__dict__,
            "rotate": 180,
            "flip": "horizontal",
            "snapshot_dir": str(tmp_path / "b"),
            "stream_port": 9999,
        }
    )
    with caplog.at_level("INFO"):
        daemon.reload()
    assert pipeline.transform.rotate == 180 and pipeline.transform.flip == "horizontal"
    assert daemon.snapshots.directory == str(tmp_path / "b")
    assert daemon.config.rotate == 180 and daemon.config.stream_port == base.stream_port
    text = caplog.text
    assert "reload: applied" in text and "rotate = 180" in text
    assert "stream_port changed" in text and "restart" in text
