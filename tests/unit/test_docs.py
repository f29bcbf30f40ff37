# SPDX-License-Identifier: GPL-3.0-or-later
"""The README stays a user's page that reads in a few minutes, and no link in it or in docs/
leads nowhere (issue 22).

Other branches bring some of the pages and the screenshot the README links to; a missing one is
listed by name, with the file that links to it.
"""

from __future__ import annotations

import re
from pathlib import Path

from support.paths import REPO

README_MAX_LINES = 250
# [text](target) and ![alt](target), outside code spans; the target up to a space or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Lab notes belong in docs/performance.md and docs/testing.md, not in the user's page.
LAB_NOTES = ("measured", "load average", "in one run", "p99", "µs", "the test guest")


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, and anchors within the page
        out.append(target.split("#", 1)[0])
    return out


def test_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"


def test_readme_has_no_lab_notes() -> None:
    text = (REPO / "README.md").read_text().lower()
    found = [note for note in LAB_NOTES if note in text]
    assert not found, f"lab notes in README.md (they go to docs/): {found}"


def test_readme_has_the_users_sections() -> None:
    text = (REPO / "README.md").read_text()
    for heading in ("## Supported devices", "## Try it", "## Install", "## Use it",
                    "## Troubleshooting"):  # fmt: skip
        assert f"\n{heading}" in text, heading
    assert "![The live page](docs/page.png)" in text
    for page in ("performance", "security", "packaging", "development", "testing"):
        assert f"](docs/{page}.md)" in text, page


def test_every_relative_link_points_to_a_file() -> None:
    missing: list[str] = []
    for page in pages():
        for target in relative_links(page):
            link = f"{page.relative_to(REPO)} -> {target}"
            if not (page.parent / target).exists() and link not in missing:
                missing.append(link)
    assert not missing, "links to missing files:\n  " + "\n  ".join(missing)


def test_the_link_finder_finds_links(tmp_path: Path) -> None:
    """The check above cannot pass by finding nothing."""
    page = tmp_path / "x.md"
    page.write_text(
        'see [a](docs/a.md#part), ![pic](b.png "t"), [web](https://x.org), [top](#top)\n'
        "`[not](c.md)`\n```\n[nor](d.md)\n```\n"
    )
    assert relative_links(page) == ["docs/a.md", "b.png"]
    assert len(relative_links(REPO / "README.md")) >= 10


def test_the_licence_is_an_spdx_expression() -> None:
    """setuptools 77 reads it as one (no deprecation box); debian/rules rewrites it for
    bookworm's setuptools 66, and tests/system/test_deb.py checks what that build records."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-3.0-or-later"
