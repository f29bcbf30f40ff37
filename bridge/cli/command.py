# SPDX-License-Identifier: GPL-3.0-or-later
"""How to spell this command in advice, so every command line we print runs as printed.

`make demo` runs `.venv/bin/borescope-bridge`, which nothing puts on PATH: advice that says
`borescope-bridge snapshot` would fail with "command not found". So advice names the command
the way it was started: the bare name where PATH finds this very program, else its full path
(a new terminal opens in the home directory, where a relative path would not work).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

PROG = "borescope-bridge"


def command_line(argv0: str | None = None, path: str | None = None) -> str:
    """The shortest command a user can paste in any directory to run this program again."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(argv0) == PROG:
        own = os.path.abspath(argv0)
        found = shutil.which(PROG, path=path)
        if found and os.path.exists(own) and os.path.samefile(found, own):
            return PROG
        return _home_relative(own)
    # `python -m bridge` (tests, a source tree): the interpreter and the module
    return f"{shlex.quote(sys.executable)} -m bridge"


def _home_relative(path: str) -> str:
    """~/... where that needs no quoting (the shell expands ~ only unquoted)."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home.rstrip("/") + "/"):
        rest = path[len(home.rstrip("/")) + 1 :]
        if shlex.quote(rest) == rest:
            return "~/" + rest
    return shlex.quote(path)
