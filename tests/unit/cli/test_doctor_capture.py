# SPDX-License-Identifier: GPL-3.0-or-later
"""`doctor --capture`: header fields and control replies of a simulated scope, no picture."""

from collections.abc import Callable

import pytest

from bridge.cli.doctor.capture import Capture, describe, run_capture
from bridge.cli.main import main
from bridge.core.framing_b import chunk_jpeg
from bridge.core.protocol import fragment_jpeg
from bridge.device.probe import make_plan
from bridge.sim.server import Simulator

JPEG = b"\xff\xd8" + bytes(range(256)) * 12 + b"\xff\xd9"


def test_describe_shows_header_fields_only() -> None:
    a = describe(fragment_jpeg(7, JPEG, 1000)[0])
    assert a.startswith("A type=1 format=1 frame=7 total=3076 ") and "index=0 size=1000" in a
    b = describe(chunk_jpeg(9, JPEG, inverted=True)[1])
    assert b.startswith("B ") and "invert-flag=0" in b and "chunk=2" in b and "frame=9" in b
    assert describe(b"hello").startswith("? 5 bytes")
    cap = Capture()
    for d in fragment_jpeg(1, JPEG, 1000):
        cap.video("192.168.10.123:8030", d)
    report = cap.report(1, ["UDP 192.168.10.123:8030"])
    assert "4 packets" in report
    assert bytes(range(100, 132)).hex() not in report  # no picture bytes


@pytest.mark.parametrize("name", ["wf070", "wf028", "nidage"])
def test_capture_of_a_simulated_model(
    name: str, simulator_factory: Callable[..., Simulator]
) -> None:
    sim = simulator_factory(model=name, resolution=(320, 240), fps=15, loop_frames=3)
    plan = make_plan(name, "127.0.0.1", sim.stream_port, sim.event_port)
    report = run_capture(plan, None, 1.5)
    framing = {"wf070": "B", "wf028": "C", "nidage": "B"}[name]
    assert f"\n  {framing} " in report, report
    assert "524554434d44" in report  # a RETCMD came back and is shown in hex
    for frame in sim.frames:
        assert frame[200:240].hex() not in report  # never picture data


def test_doctor_capture_flag_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--capture", "0"]) == 2
    assert main(["doctor", "--capture", "1", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
