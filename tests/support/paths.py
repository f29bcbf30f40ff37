# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the checkout is, for tests that run its files."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
