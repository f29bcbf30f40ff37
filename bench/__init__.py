# SPDX-License-Identifier: GPL-3.0-or-later
"""Side-by-side benchmark of the video path (`make bench` / `python -m bench`); never a test."""
