# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line: teaching help, exit codes, --print-config, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.paths import REPO

from bridge import __version__
from bridge.cli.client import format_status, recording_text
from bridge.cli.main import main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=e,
        check=False,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "snapshot", "status", "url", "open", "record", "demo"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "borescope-bridge " + command in out


def test_run_help_lists_exactly_the_contract_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--interface",
        "--device-ip",
        "--stream-port",
        "--event-port",
        "--camera",
        "--snapshot-dir",
        "--record",
        "--control-socket",
        "--rotate",
        "--flip",
        "--wait",
        "--linger",
        "--config",
        "--format",
        "--print-config",
        "--http",
        "--max-picture-size",
        "--recordings-dir",
        "--record-max-bytes",
        "--record-max-seconds",
    ):
        assert flag in out


def test_print_config_shows_effective_settings(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('rotate = 90\nflip = "vertical"\nlinger = 0\n')
    r = run_cli(
        "run", "--config", str(conf), "--rotate", "180", "--device-ip", "10.1.2.3", "--print-config"
    )
    assert r.returncode == 0, r.stderr
    parsed = tomllib.loads(r.stdout)
    assert parsed["rotate"] == 180  # flag wins over the file
    assert parsed["flip"] == "vertical"  # file wins over the default
    assert parsed["linger"] == 0
    assert parsed["device_ip"] == "10.1.2.3"
    assert parsed["stream_port"] == 8030


def test_config_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('flip = "sideways"\n')
    r = run_cli("run", "--config", str(conf), "--print-config")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(conf) in lines[0] and "flip" in lines[0] and "sideways" in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_explicit_config_is_exit_2(tmp_path: Path) -> None:
    r = run_cli("run", "--config", str(tmp_path / "absent.toml"), "--print-config")
    assert r.returncode == 2
    assert "absent.toml" in r.stderr


def test_bad_flag_value_is_exit_2() -> None:
    r = run_cli("run", "--device-ip", "192.168.10.999", "--print-config")
    assert r.returncode == 2
    assert "--device-ip" in r.stderr


def test_status_without_daemon_says_what_to_do(tmp_path: Path) -> None:
    r = run_cli(
        "status", "--socket", str(tmp_path / "none.sock"), env={"XDG_RUNTIME_DIR": str(tmp_path)}
    )
    assert r.returncode == 1
    assert "nothing is running" in r.stderr and "demo`" in r.stderr
    assert "Traceback" not in r.stderr


def test_snapshot_without_daemon_says_what_to_do(tmp_path: Path) -> None:
    r = run_cli(
        "snapshot", "--socket", str(tmp_path / "none.sock"), env={"XDG_RUNTIME_DIR": str(tmp_path)}
    )
    assert r.returncode == 1
    assert "nothing is running" in r.stderr and "demo`" in r.stderr


def test_human_status_is_readable() -> None:
    text = format_status(
        {
            "state": "streaming",
            "device_ip": "192.168.10.123",
            "stream_port": 8030,
            "event_port": 50000,
            "interface": "enx1",
            "resolution": "1280x720",
            "fps": 29.9,
            "frames_received": 100,
            "frames_shown": 98,
            "frames_skipped": 2,
            "frames_incomplete": 1,
            "frames_corrupt": 0,
            "decode_errors": 4,
            "frames_too_large": 5,
            "foreign_packets": 3,
            "last_frame_age_s": 0.01,
            "latency_p50_ms": 3.2,
            "latency_p99_ms": 7.5,
            "snapshots_taken": 2,
            "snapshots_failed": 0,
            "snapshots_writing": 3,
            "last_snapshot": "/x/a.jpg",
            "snapshot_dir": "/x",
            "camera": "/dev/video2",
            "recording": None,
            "receive_buffer_bytes": 425984,
            "receive_buffer_requested": 8388608,
            "receive_buffer_capped": True,
            "uptime_s": 12.5,
            "http": "127.0.0.1:8031",
            "stream_clients": 2,
        }
    )
    assert "state:" in text and "streaming" in text
    assert "web page:" in text and "http://127.0.0.1:8031/ (2 viewers" in text
    assert "1280x720" in text and "/dev/video2" in text and "/x/a.jpg" in text
    assert "receive buffer:  208 KiB of the 8 MiB asked for (capped by net.core.rmem_max" in text
    assert "p99 7.5 ms" in text
    assert "corrupt 0, undecodable 4, too large 5" in text
    assert "3 being written" in text and "refused" not in text
    routed = format_status({"interface": None, "device_interface": "enx2", "wrong_interface": 4,
                            "foreign_packets": 6})  # fmt: skip
    assert "enx2 (the route to the device)" in routed
    assert "6 (4 with its address on another interface: forged?)" in routed
    assert "none leads to the device yet" in format_status({"device_interface": None})


def test_open_and_new_token_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["open", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--socket", "--lan", "one-time code"):
        assert flag in out, flag
    assert "--qr" not in out  # the code is for this browser, not for a phone's camera
    assert main(["url", "--help"]) == 0
    assert "--new-token" in capsys.readouterr().out


def test_demo_resolution_is_checked_like_simulates(capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import demo
    from bridge.sim.cli import RESOLUTIONS

    assert set(demo.RESOLUTIONS) == set(RESOLUTIONS)
    assert main(["demo", "--resolution", "800x600"]) == 2
    err = capsys.readouterr().err
    assert "--resolution: invalid choice: '800x600'" in err and "1280x720" in err


def test_record_without_daemon_says_what_to_do(tmp_path: Path) -> None:
    r = run_cli("record", "start", "--socket", str(tmp_path / "none.sock"))
    assert r.returncode == 1
    assert "nothing is running" in r.stderr and "demo" in r.stderr, r.stderr
    bad = run_cli("record", "pause", "--socket", str(tmp_path / "none.sock"))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_recording_text_says_what_runs_and_why_the_last_one_stopped() -> None:
    assert recording_text(None) == "off"
    running = {
        "running": True,
        "name": "borescope-20260101-120000.mkv",
        "path": "/v/borescope-20260101-120000.mkv",
        "duration_s": 75.4,
        "frames": 2262,
        "dropped": 3,
    }
    assert (
        recording_text(running) == "/v/borescope-20260101-120000.mkv (1:15, 2262 frames, 3 dropped)"
    )
    stopped = {
        **running,
        "running": False,
        "last_error": "the recording reached its time limit (60 s; ...)",
    }
    text = recording_text(stopped)
    assert text.startswith("not recording (last: /v/borescope-20260101-120000.mkv, 1:15")
    assert text.endswith("; stopped: the recording reached its time limit (60 s; ...)")
    idle = {"running": False, "name": None, "last_error": None}
    assert recording_text(idle) == "not recording"
