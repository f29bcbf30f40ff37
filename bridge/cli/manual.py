# SPDX-License-Identifier: GPL-3.0-or-later
"""borescope-bridge(1) and the bash and zsh completions, made from the live argparse parser.

A build step, not a command: `make man` (which `make install` and debian/rules call) runs
`python3 -m bridge.cli.manual OUTDIR` from the source tree. The parser is the one `--help`
prints from (bridge.cli.main.build_parser with every subcommand's arguments), so the manual
and the completions cannot drift from the program; tests/system/test_manual.py walks the
parser and finds every subcommand and option in all three files.

The formatting is done by kept tools that Debian 12 packages: argparse-manpage
(python3-argparse-manpage) for the page and shtab (python3-shtab) for the completions. This
module only adds what a parser does not hold: the NAME line, the examples each command's
epilog carries, the files, the exit status and the references. shtab has no fish output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge import __version__
from bridge.cli.main import ALL, PROG, build_parser

SUMMARY = "turn a USB borescope into an ordinary Linux webcam, with snapshots and a web page"
MAN_NAME = f"{PROG}.1"
BASH_NAME = PROG  # bash-completion loads completions/NAME for command NAME
ZSH_NAME = f"_{PROG}"

FILES = (
    ("/etc/borescope-bridge/config.toml", "the service's settings; keys mirror the run flags"),
    ("/var/lib/borescope-bridge/snapshots", "the service's snapshots (group borescope-bridge)"),
    ("/run/borescope-bridge/control.sock", "the service's control socket"),
    (
        "$XDG_RUNTIME_DIR/borescope-bridge/control.sock",
        "the control socket of a run started by a user; demo.sock beside it is the demo's",
    ),
    ("~/Pictures/Borescope", "snapshots of a run started by a user"),
    (
        "~/.local/state/borescope-bridge/http-token",
        "the web page's access token of a user's run (the service's: /var/lib/borescope-bridge)",
    ),
)
EXIT_STATUS = (
    "0: success, or a clean stop (Ctrl-C, SIGTERM, no borescope within --wait). "
    "1: an error the message explains. 2: invalid configuration or arguments."
)
SEE_ALSO = (
    r"\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBffplay\fR(1), \fBmodprobe\fR(8); "
    "README.md (in /usr/share/doc/borescope-bridge for the package) and the pages in docs/ "
    "of the source tree"
)
# Options whose value is a path: the completions offer files or directories for them.
FILE_METAVARS = ("PATH", "FILE")
DIR_METAVARS = ("DIR",)


def full_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand's arguments (a normal run loads only one's)."""
    return build_parser(ALL)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by its full name ("run", "record start"), depth first."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                for inner, subsub in subparsers(sub).items():
                    out[f"{name} {inner}"] = subsub
    return out


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no line read as a request."""
    lines = []
    for line in text.replace("\\", "\\\\").replace("-", "\\-").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _examples(parser: argparse.ArgumentParser) -> list[str]:
    """The "start here" list and each subcommand's epilog (examples, signals, exit status)."""
    out = [".SH EXAMPLES"]
    for name, sub in [("", parser), *subparsers(parser).items()]:
        if not sub.epilog:
            continue
        if name:
            out.append(f".SS {_roff(f'{PROG} {name}')}")
        out += [".nf", _roff(sub.epilog.strip("\n")), ".fi"]
    return out


def manpage(parser: argparse.ArgumentParser | None = None) -> str:
    """borescope-bridge(1) in roff."""
    try:
        from argparse_manpage.manpage import Manpage  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from build_manpages.manpage import Manpage  # type: ignore[import-not-found,unused-ignore]

    parser = parser or full_parser()
    parser.man_short_description = SUMMARY  # type: ignore[attr-defined]
    body = str(Manpage(parser)).splitlines()
    # The tool's title line has no date, source or version: one that lintian and man accept.
    header = f'.TH {PROG.upper()} 1 "" "{PROG} {__version__}" "User Commands"'
    # Left-aligned: justifying the long option names and paths would stretch lines (and warn).
    lines = [header, ".ad l", *(line for line in body if not line.startswith(".TH "))]
    lines += _examples(parser)
    lines.append(".SH FILES")
    for path, what in FILES:
        lines += [".TP", f"\\fI{_roff(path)}\\fR", _roff(what)]
    lines += [".SH EXIT STATUS", _roff(EXIT_STATUS), ".SH SEE ALSO", SEE_ALSO]
    return "\n".join(lines) + "\n"


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    """Tell shtab which options take a file or a directory (its `complete` attribute)."""
    import shtab  # type: ignore[import-not-found,unused-ignore]

    for p in [parser, *subparsers(parser).values()]:
        for action in p._actions:
            if action.metavar in FILE_METAVARS:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
            elif action.metavar in DIR_METAVARS:
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]


# shtab 1.5.5 (Debian 12) reads only the first of an action's choices in bash, so
# `borescope-bridge <TAB>` offered "run" alone; shtab 1.6 fixed it. The same fix, applied to
# the older tool's output: every choice, one per line (its compgen call splits on newlines).
SHTAB_155_CHOICES = (
    '  local current_action_choices_var="${current_action}_choices"\n'
    '  current_action_choices="${!current_action_choices_var}"\n'
)
SHTAB_FIXED_CHOICES = (
    '  local current_action_choices_var="${current_action}_choices[@]"\n'
    "  current_action_choices=$(printf '%s\\n' \"${!current_action_choices_var}\")\n"
)


def completion(shell: str, parser: argparse.ArgumentParser | None = None) -> str:
    """The completion script for `shell` (bash or zsh)."""
    import shtab

    parser = parser or full_parser()
    _mark_paths(parser)
    script = str(shtab.complete(parser, shell=shell))
    if shell == "bash":
        script = script.replace(SHTAB_155_CHOICES, SHTAB_FIXED_CHOICES)
    return script


def write_all(outdir: Path) -> list[Path]:
    """The man page and both completions in `outdir`; returns their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = {
        MAN_NAME: manpage(),
        BASH_NAME: completion("bash"),
        ZSH_NAME: completion("zsh"),
    }
    paths = []
    for name, text in files.items():
        path = outdir / name
        path.write_text(text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print(f"usage: python3 -m bridge.cli.manual OUTDIR (writes {MAN_NAME}, {BASH_NAME}, "
              f"{ZSH_NAME})", file=sys.stderr)  # fmt: skip
        return 2
    try:
        paths = write_all(Path(args[0]))
    except ImportError as exc:
        print(
            f"cannot make the man page and completions: {exc}; install argparse-manpage and "
            "shtab (Debian/Ubuntu: sudo apt install python3-argparse-manpage python3-shtab; "
            "elsewhere: pip install argparse-manpage shtab)",
            file=sys.stderr,
        )
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
