# SPDX-License-Identifier: GPL-3.0-or-later
"""borescope-bridge(1) and the bash and zsh completions, as `make man` makes them (issue 22).

They are generated from the live parser (bridge/cli/manual.py); these tests walk that parser
and find every subcommand and every option in each file, render the page as man does, let bash
complete real command lines, and check that the unit's Documentation= resolves to the page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.paths import REPO

from bridge.cli.main import build_parser
from bridge.cli.manual import full_parser, subparsers

MAN_PYTHON = "/usr/bin/python3"


def _tools_missing() -> str | None:
    probe = subprocess.run(
        [MAN_PYTHON, "-c", "import shtab, numpy\n"
         "try:\n import argparse_manpage\nexcept ImportError:\n import build_manpages"],
        capture_output=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return (
            "argparse-manpage, shtab or numpy missing for /usr/bin/python3 "
            "(make unit installs python3-argparse-manpage python3-shtab python3-numpy)"
        )
    return None


pytestmark = pytest.mark.skipif(
    not os.path.exists(MAN_PYTHON) or _tools_missing() is not None,
    reason=str(_tools_missing()) if os.path.exists(MAN_PYTHON) else "no /usr/bin/python3",
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("man")
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "man", f"MAN_DIR={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def every_option() -> dict[str, set[str]]:
    """Each subcommand ("" for the program itself) and its option strings, from the parser."""
    parser = full_parser()
    out = {"": {s for a in parser._actions for s in a.option_strings}}
    for name, sub in subparsers(parser).items():
        out[name] = {s for a in sub._actions for s in a.option_strings}
    return out


def test_the_man_page_has_every_subcommand_and_option(made: Path) -> None:
    page = (made / "borescope-bridge.1").read_text()
    missing = []
    for name, opts in every_option().items():
        if name and f".SH OPTIONS 'borescope-bridge {name}'" not in page:
            missing.append(f"section for {name}")
        for opt in opts - {"-h", "--help"}:
            if opt.replace("-", "\\-") not in page:
                missing.append(f"{name} {opt}")
    assert not missing, f"not in the man page (run `make man`): {missing}"
    assert page.startswith('.TH BORESCOPE-BRIDGE 1 ""')
    assert "\n.SH NAME\nborescope-bridge \\- turn a USB borescope" in page
    assert "\n.SH EXAMPLES\n" in page and "borescope\\-bridge run \\-\\-print\\-config" in page


def test_the_man_page_renders_without_warnings(made: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed (apt install man-db)")
    proc = subprocess.run(
        [
            "man",
            "--warnings",
            "-E",
            "UTF-8",
            "-l",
            "-Tutf8",
            "-Z",
            str(made / "borescope-bridge.1"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MANWIDTH": "80"},
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_the_completions_know_every_subcommand_and_option(made: Path) -> None:
    for name in ("borescope-bridge", "_borescope-bridge"):
        text = (made / name).read_text()
        missing = [
            f"{sub} {opt}"
            for sub, opts in every_option().items()
            for opt in opts
            if not any(f"{a}{opt}{b}" in text for a in "'\"{,)" for b in "'\"[,}")
        ]
        missing += [sub for sub in every_option() if sub and sub.split()[-1] not in text]
        assert not missing, f"{name} lacks (run `make man`): {missing}"


def complete(made: Path, line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end), with the generated script loaded."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    words = line.split(" ")
    script = (
        f"source {made / 'borescope-bridge'}\n"
        "fn=$(complete -p borescope-bridge | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')\n"
        f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '"$fn" borescope-bridge "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return sorted(w.strip() for w in proc.stdout.splitlines() if w.strip())


def test_bash_completes_commands_and_options(made: Path) -> None:
    assert complete(made, "borescope-bridge d") == ["demo", "doctor"]
    assert complete(made, "borescope-bridge url --") == sorted(
        {s for a in subparsers(build_parser())["url"]._actions for s in a.option_strings}
        - {"-h", "-v"}
    )
    assert complete(made, "borescope-bridge run --format ") == ["mjpeg", "raw"]


def test_the_units_documentation_is_this_page(made: Path, tmp_path: Path) -> None:
    unit = (REPO / "systemd/borescope-bridge.service").read_text()
    assert "\nDocumentation=man:borescope-bridge(1)\n" in unit
    if shutil.which("systemd-analyze") is None or shutil.which("man") is None:
        pytest.skip("systemd-analyze or man is not installed")
    (tmp_path / "man1").mkdir()
    shutil.copy(made / "borescope-bridge.1", tmp_path / "man1")
    copy = tmp_path / "borescope-bridge.service"
    copy.write_text(
        unit.replace("ExecStart=/usr/local/bin/borescope-bridge", "ExecStart=/bin/true")
    )
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MANPATH": str(tmp_path)},
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
