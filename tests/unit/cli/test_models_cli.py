# SPDX-License-Identifier: GPL-3.0-or-later
"""`models`, and --model on run/simulate/demo, as a user sees them in --help."""

import json

import pytest

from bridge.cli.main import main
from bridge.core import models


def test_models_table_lists_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for m in models.MODELS:
        line = next(x for x in out.splitlines() if x.startswith(m.name + " "))
        assert m.address in line and m.framing in line and str(m.video_port) in line
        assert ("confirmed on hardware" in line) == m.confirmed
        assert m.confirmed or "from public descriptions" in line


def test_models_json_has_the_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(models.NAMES)
    assert all(r["sources"] for r in rows)
    assert {r["video_transport"] for r in rows} == {"udp", "tcp"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--help"], "models"),
        (["run", "--help"], "--model NAME|auto"),
        (["simulate", "--help"], "--model"),
        (["demo", "--help"], "--model"),
        (["models", "--help"], "--json"),
    ],
)
def test_help_mentions(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert needle in capsys.readouterr().out


def test_run_refuses_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "j999", "--print-config", "--config", "/dev/null"]) == 2
    assert "j999" in capsys.readouterr().err


def test_status_text_names_the_model() -> None:
    from bridge.cli.client import format_status

    def row(s: dict[str, object]) -> str:
        return next(x for x in format_status(s).splitlines() if x.strip().startswith("model"))

    assert "wf070 (framing B)" in row({"model": "wf070", "framing": "B"})
    assert "cannot be told apart" in row({"model": "A", "framing": "A"})
    assert "not found yet" in row({"model": None, "framing": None})
