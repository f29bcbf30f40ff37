# SPDX-License-Identifier: GPL-3.0-or-later
"""Recordings end to end: a real daemon fed by the simulator, started and stopped through the
control socket (the CLI) and the page's HTTP API, checked with Debian's ffprobe, ffmpeg and
mkvinfo: the frames copied out are the simulator's bytes, in order; the packet count is the
daemon's; the duration is the frames' own time span. Then the hard endings: SIGKILL, the
free-space floor, the time limit."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import Daemon, run_cli
from support.media import extract_frames, in_order, mkvinfo, need_ffmpeg, probe
from support.sim import simulator
from support.waiting import wait_for

from bridge.capture.names import RECORDING_NAME
from bridge.capture.space import MIN_FREE_BYTES

pytestmark = pytest.mark.slow


def cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--socket", d.sock)


def recording(d: Daemon) -> dict[str, Any]:
    rec: dict[str, Any] = d.status()["recording"]
    return rec


def check_file_frames(
    path: Path, sent: list[bytes], frames: int
) -> tuple[dict[str, Any], list[bytes]]:
    """ffprobe, ffmpeg -c copy and mkvinfo agree with what the daemon says it wrote, and each
    frame is one the simulator sent: (ffprobe's view, the frames)."""
    info = probe(path)
    (stream,) = info["streams"]
    assert stream["codec_name"] == "mjpeg"
    assert (stream["width"], stream["height"]) == (640, 480)
    assert len(info["packets"]) == frames
    got = extract_frames(path)
    assert len(got) == frames and set(got) <= set(sent)
    times = [float(p["pts_time"]) for p in info["packets"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    mkvinfo(path)
    return info, got


def check_file(path: Path, sent: list[bytes], frames: int) -> dict[str, Any]:
    """check_file_frames, and the frames are in the order sent."""
    info, got = check_file_frames(path, sent, frames)
    in_order(got, sent)
    return info


def test_record_start_stop_through_the_cli(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    need_ffmpeg()
    recdir = tmp_path / "videos"
    with simulator() as sim:
        d = run_daemon(sim, "--recordings-dir", str(recdir))
        d.wait_streaming()
        idle = cli(d, "record", "status")
        assert idle.returncode == 0 and idle.stdout.startswith("not recording"), idle
        before = d.status()["frames_received"]
        t0 = time.monotonic()
        started = cli(d, "record", "start")
        t1 = time.monotonic()
        assert started.returncode == 0, started.stderr
        path = Path(started.stdout.strip())
        assert path.parent == recdir and RECORDING_NAME.fullmatch(path.name)
        again = cli(d, "record", "start")
        assert again.returncode == 1 and "already recording" in again.stderr
        wait_for(lambda: recording(d)["frames"] >= 60, what="two seconds of frames")
        running = json.loads(cli(d, "record", "status", "--json").stdout)
        assert running["running"] is True and running["name"] == path.name
        assert running["duration_s"] > 0
        t2 = time.monotonic()
        stopped = cli(d, "record", "stop")
        t3 = time.monotonic()
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == str(path)
        after = d.status()["frames_received"]
        rec = recording(d)
        assert rec["running"] is False and rec["last_error"] is None and rec["dropped"] == 0
        # Every frame received while recording is in the file, and nothing else.
        assert rec["frames"] <= after - before
        info = check_file(path, sim.frames, rec["frames"])
        duration = float(info["format"]["duration"])
        # The frames' own time span (arrival times) plus one frame: inside the wall time
        # between the start and stop requests, as measured from outside.
        assert abs(duration - rec["duration_s"]) < 0.01
        assert duration <= (t3 - t0) + 0.1
        assert duration >= (t2 - t1) - 1.0
        assert cli(d, "record", "stop").returncode == 1  # nothing running
        assert d.terminate() == 0


def _events(url: str, token: str, out: list[dict[str, Any]], stop: threading.Event) -> None:
    req = urllib.request.Request(url + "/api/events", headers={"X-Borescope-Token": token})
    with contextlib.suppress(OSError), urllib.request.urlopen(req, timeout=30) as resp:
        kind = ""
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "recording":
                out.append(json.loads(line[5:]))
            if stop.is_set():
                return


def http(
    base: str, path: str, token: str | None, method: str = "GET"
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"X-Borescope-Token": token} if token else {}
    req = urllib.request.Request(base + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def page(run_daemon: Callable[..., Daemon], tmp_path: Path) -> Iterator[tuple[Daemon, str, str]]:
    with simulator() as sim:
        d = run_daemon(sim, "--recordings-dir", str(tmp_path / "videos"))
        d.wait_streaming()
        d.sim = sim  # type: ignore[attr-defined]
        reply = cli(d, "url")
        assert reply.returncode == 0, reply.stderr
        url = reply.stdout.strip()
        base, token = url.split("/?token=")
        yield d, base, token


def test_record_through_the_page_api(page: tuple[Daemon, str, str], tmp_path: Path) -> None:
    need_ffmpeg()
    d, base, token = page
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    listener = threading.Thread(target=_events, args=(base, token, events, stop), daemon=True)
    listener.start()
    # Without a header credential (all a cross-site form could send is the address): refused,
    # nothing started.
    code, body, _ = http(base, "/api/record/start?token=" + token, None, "POST")
    assert code == 401 and not recording(d)["running"]
    code, body, _ = http(base, "/api/record/start", token, "POST")
    assert code == 200, body
    name = json.loads(body)["name"]
    assert RECORDING_NAME.fullmatch(name)
    code, body, _ = http(base, "/api/record/start", token, "POST")
    assert code == 409
    wait_for(lambda: recording(d)["frames"] >= 30, what="a second of frames")
    code, body, _ = http(base, "/api/recordings", token)
    listed = json.loads(body)
    assert listed[0]["name"] == name and listed[0].get("recording") is True
    code, body, _ = http(base, "/api/record/stop", token, "POST")
    assert code == 200, body
    stopped = json.loads(body)
    assert stopped["name"] == name and "path" not in stopped
    wait_for(lambda: len(events) >= 2, what="the started and stopped events")
    assert events[:2] == [
        {"state": "started", "name": name},
        {"state": "stopped", "name": name},
    ]
    code, body, _ = http(base, "/api/recordings", token)
    (entry,) = json.loads(body)
    path = tmp_path / "videos" / name
    assert entry["name"] == name and entry["bytes"] == path.stat().st_size
    assert abs(entry["duration"] - stopped["duration_s"]) < 0.01
    # The download is the file itself, as an attachment.
    code, body, headers = http(base, f"/recordings/{name}", token)
    assert code == 200 and body == path.read_bytes()
    assert headers["Content-Type"] == "video/x-matroska"
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    check_file(path, d.sim.frames, stopped["frames"])  # type: ignore[attr-defined]
    # Only names the daemon makes: a file of another name, a symlink, a path: 404.
    (tmp_path / "videos" / "secret.mkv").write_bytes(b"x")
    os.symlink("/etc/passwd", tmp_path / "videos" / "borescope-20200101-000000.mkv")
    for other in ("secret.mkv", "borescope-20200101-000000.mkv", "..%2Fdaemon.log"):
        assert http(base, f"/recordings/{other}", token)[0] == 404, other
    assert http(base, f"/recordings/{name}", None)[0] == 401  # no token: nothing
    stop.set()


def test_sigkill_mid_recording_leaves_a_playable_file(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    need_ffmpeg()
    with simulator() as sim:
        d = run_daemon(sim, "--recordings-dir", str(tmp_path / "videos"))
        d.wait_streaming()
        started = cli(d, "record", "start")
        assert started.returncode == 0, started.stderr
        path = Path(started.stdout.strip())
        wait_for(lambda: recording(d)["frames"] >= 75, what="2.5 s of frames")
        written = recording(d)["frames"]
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        # Everything written before the kill plays: the kernel had it, the file says so.
        got = extract_frames(path)
        assert len(got) >= written
        in_order(got, sim.frames)
        info = probe(path)
        assert info["streams"][0]["codec_name"] == "mjpeg"
        assert len(info["packets"]) == len(got)


def test_the_time_limit_stops_the_recording(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    need_ffmpeg()
    with simulator() as sim:
        d = run_daemon(
            sim, "--recordings-dir", str(tmp_path / "videos"), "--record-max-seconds", "1.5"
        )
        d.wait_streaming()
        base, token = cli(d, "url").stdout.strip().split("/?token=")
        events: list[dict[str, Any]] = []
        stop = threading.Event()
        threading.Thread(target=_events, args=(base, token, events, stop), daemon=True).start()
        time.sleep(0.5)  # the listener connects (its events are only checked, never timed)
        started = cli(d, "record", "start")
        assert started.returncode == 0, started.stderr
        path = Path(started.stdout.strip())
        rec = wait_for(
            lambda: (r := recording(d))["last_error"] and not r["running"] and r,
            what="the recording to stop by itself",
        )
        assert "time limit (1.5 s" in rec["last_error"]
        assert "time limit" in d.log.read_text()
        # The page hears it, with the reason.
        stopped = wait_for(
            lambda: [e for e in events if e["state"] == "stopped"], what="the stopped event"
        )
        assert stopped == [{"state": "stopped", "name": path.name, "reason": rec["last_error"]}]
        stop.set()
        info = check_file(path, sim.frames, rec["frames"])
        assert float(info["format"]["duration"]) <= 1.5 + 0.1


def test_the_free_space_floor_stops_the_recording_with_a_playable_file(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    """A disk that reaches the floor mid-recording: the recording stops with the reason in
    status and the log, the file ends on a whole frame and plays, streaming goes on."""
    need_ffmpeg()
    disk = tmp_path / "disk"
    disk.mkdir()
    size = MIN_FREE_BYTES + 4 * 1024 * 1024
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(disk)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        st = os.statvfs(disk)
        room = st.f_bavail * st.f_frsize - MIN_FREE_BYTES  # above the floor
        (disk / "filler").write_bytes(bytes(max(0, room - 1024 * 1024)))  # leave ~1 MiB
        with simulator() as sim:
            d = run_daemon(sim, "--recordings-dir", str(disk / "videos"))
            d.wait_streaming()
            started = cli(d, "record", "start")
            assert started.returncode == 0, started.stderr
            path = Path(started.stdout.strip())
            rec = wait_for(
                lambda: (r := recording(d))["last_error"] and not r["running"] and r,
                what="the recording to stop at the floor",
            )
            assert rec["last_error"].startswith(f"disk nearly full: recording to {path} stopped")
            assert "disk nearly full" in d.log.read_text()
            check_file(path, sim.frames, rec["frames"])
            before = d.status()["frames_received"]
            wait_for(lambda: d.status()["frames_received"] > before + 10, what="frames go on")
            assert d.terminate() == 0
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


def test_a_reload_moves_the_next_recording_and_bad_requests_are_answered(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    from bridge.control.client import request

    first, second = tmp_path / "first", tmp_path / "second"
    with simulator() as sim:
        d = run_daemon(sim)
        d.wait_streaming()
        d.config.write_text(f'recordings_dir = "{first}"\n')
        d.proc.send_signal(signal.SIGHUP)  # the daemon was started with the empty config
        wait_for(lambda: recording(d)["dir"] == str(first), what="the reloaded folder")
        assert Path(cli(d, "record", "start").stdout.strip()).parent == first
        wait_for(lambda: recording(d)["frames"] >= 5, what="frames")
        d.config.write_text(f'recordings_dir = "{second}"\n')
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: recording(d)["dir"] == str(second), what="the second folder")
        # The running recording stays where it began; the next one goes to the new place.
        assert Path(cli(d, "record", "stop").stdout.strip()).parent == first
        assert Path(cli(d, "record", "start").stdout.strip()).parent == second
        for bad in ({"cmd": "record"}, {"cmd": "record", "action": "pause"}):
            reply = request(d.sock, bad, timeout=10)
            assert reply["ok"] is False and "unknown action" in reply["error"], reply
        wait_for(lambda: recording(d)["frames"] >= 5, what="frames in the second recording")
        assert d.terminate() == 0
        # Stopping the daemon finished the running recording: indexed, with its duration.
        (clip,) = second.glob("*.mkv")
        assert "Duration" in (mkvinfo(clip) or "Duration")
        assert float(probe(clip)["format"]["duration"]) > 0


def test_a_brief_unplug_is_a_gap_and_the_file_seeks(
    tmp_path: Path, run_daemon: Callable[..., Daemon]
) -> None:
    """The scope goes silent for 3 s mid-recording (a power cycle): the recording goes on, the
    gap is a gap in the timestamps (no made-up frames), and players seek by the index."""
    need_ffmpeg()
    with simulator() as sim:
        d = run_daemon(sim, "--recordings-dir", str(tmp_path / "videos"))
        d.wait_streaming()
        started = cli(d, "record", "start")
        assert started.returncode == 0, started.stderr
        path = Path(started.stdout.strip())
        wait_for(lambda: recording(d)["frames"] >= 30, what="a second of frames")
        sim.reboot(downtime_s=3.0)
        wait_for(lambda: d.status()["state"] != "streaming", what="the signal lost")
        mark = d.mark()
        d.wait_streaming(since=mark)
        before = recording(d)["frames"]
        wait_for(lambda: recording(d)["frames"] >= before + 30, what="frames after the gap")
        assert recording(d)["running"] is True  # it never stopped
        stopped = cli(d, "record", "stop")
        assert stopped.returncode == 0, stopped.stderr
        rec = recording(d)
        info, _ = check_file_frames(path, sim.frames, rec["frames"])
        times = [float(p["pts_time"]) for p in info["packets"]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) >= 2.5  # the silence, as long as it was
        assert sorted(gaps)[len(gaps) // 2] < 0.1  # the rest: the scope's rate
        # Seeking (by the Cues): a read from the middle starts near the time asked for.
        middle = times[-1] / 2
        near = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-read_intervals",
                f"{middle}%+#1",
                "-show_entries",
                "packet=pts_time",
                "-of",
                "csv=p=0",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert near and abs(float(near[0]) - middle) <= 3.5, (near, middle)
