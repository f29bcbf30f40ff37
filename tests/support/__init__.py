# SPDX-License-Identifier: GPL-3.0-or-later
"""What the tests share: the daemon process harness, the simulator, waiting, floods."""
