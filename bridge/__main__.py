# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m bridge` runs the same CLI as the `borescope-bridge` command."""

import sys

from bridge.cli.main import main

sys.exit(main())
