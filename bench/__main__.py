# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m bench [--quick]`."""

import sys

from bench.run import main

sys.exit(main())
