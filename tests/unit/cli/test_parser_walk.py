# SPDX-License-Identifier: GPL-3.0-or-later
"""The parser the man page and completions are made from holds every subcommand's arguments.

A normal run loads only the wanted subcommand's heavy argument definitions; build_parser(ALL)
must load all of them, or the manual would silently lack a command's options.
"""

from __future__ import annotations

import argparse

from bridge.cli.main import ALL, build_parser
from bridge.cli.manual import subparsers


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def test_the_full_parser_has_every_subcommands_arguments() -> None:
    full = subparsers(build_parser(ALL))
    assert {"run", "simulate", "snapshot", "status", "url", "demo", "doctor"} <= set(full)
    for name, sub in full.items():
        alone = subparsers(build_parser(name.split()[0]))[name]
        assert options(alone) <= options(sub), (name, options(alone) - options(sub))
    # the lazily loaded ones really are there
    assert "--loss" in options(full["simulate"]) and "--no-probe" in options(full["doctor"])
    assert "--loss" not in options(subparsers(build_parser("run"))["simulate"])
