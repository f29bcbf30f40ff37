# SPDX-License-Identifier: GPL-3.0-or-later
"""The package layout is a rule, not a habit: bridge/'s subpackages import only downwards.

The order reads as the data flow seen from the top (docs/development.md, "How it works"): a
package may import the packages after it in LAYERS, never one before it, so there is no cycle
and the pure core stays pure. Lazy imports inside functions count too: they are still dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge

PACKAGE = Path(bridge.__file__).resolve().parent
# Top to bottom: each may import only those below it.
LAYERS = ["cli", "app", "control", "web", "capture", "camera", "device", "pixels", "core"]
# The simulator is a fake scope beside the stack: it draws pictures and speaks the wire format.
SIDE = {"sim": {"pixels", "core"}}
TOP_LEVEL_MODULES = {"__init__", "__main__", "errors"}
# What the core may not touch: I/O, threads, clocks, processes, native code.
CORE_FORBIDDEN = {
    "socket", "selectors", "select", "threading", "asyncio", "time", "subprocess", "ctypes",
    "os", "signal",
}  # fmt: skip
MAX_MODULE_LINES = 600


def allowed(package: str) -> set[str]:
    if package in SIDE:
        return SIDE[package]
    below = set(LAYERS[LAYERS.index(package) + 1 :])
    return below | {"sim"} if package == "cli" else below


def imported_modules(source: str) -> set[str]:
    """Every module named by an import statement anywhere in `source` (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import: bridge uses absolute imports only"
            module = node.module or ""
            names.add(module)
            # `from bridge import x` names the subpackage x itself.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def bridge_packages(names: set[str]) -> set[str]:
    """The bridge subpackages among `names` (bridge.errors and bridge itself are shared)."""
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "bridge" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
            out.add(parts[1])
    return out


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def test_every_subpackage_has_a_place_in_the_layers() -> None:
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert found == set(LAYERS) | set(SIDE), "add the new subpackage to LAYERS or SIDE"


def test_only_a_handful_of_modules_stay_at_the_top() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL_MODULES, f"move {sorted(top - TOP_LEVEL_MODULES)} into a subpackage"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_only_downwards(path: Path) -> None:
    package = package_of(path)
    if package is None:
        return
    used = bridge_packages(imported_modules(path.read_text())) - {package}
    wrong = used - allowed(package)
    assert not wrong, f"bridge.{package} may not import bridge.{', bridge.'.join(sorted(wrong))}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_does_no_io(path: Path) -> None:
    roots = {name.split(".")[0] for name in imported_modules(path.read_text())}
    assert not roots & CORE_FORBIDDEN, (
        f"bridge.core may not import {sorted(roots & CORE_FORBIDDEN)}"
    )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by reason to change"


def test_the_rules_catch_a_core_module_that_opens_a_socket() -> None:
    """The checks themselves: a core module importing socket, or a lower layer an upper one."""
    roots = {n.split(".")[0] for n in imported_modules("import socket\nx = 1\n")}
    assert roots & CORE_FORBIDDEN == {"socket"}
    lazy = "def f():\n    from bridge.app import daemon\n"
    assert bridge_packages(imported_modules(lazy)) == {"app"}
    assert "app" not in allowed("camera")
    assert "camera" in allowed("app")
