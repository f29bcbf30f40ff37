# SPDX-License-Identifier: GPL-3.0-or-later
"""borescope-bridge: a J10x-OTG USB borescope as an ordinary Linux webcam."""

__version__ = "0.1.0"
