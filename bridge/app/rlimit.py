# SPDX-License-Identifier: GPL-3.0-or-later
"""The descriptor limit: raise the soft RLIMIT_NOFILE to the hard one at start (issue 18).

systemd gives a service a soft limit of 1024 (for programs that still use select()) and a much
higher hard one, to be raised by programs that do not. This one does not use select(): every
loop is epoll (asyncio, selectors.DefaultSelector). The caps on the web port and the control
socket are what bound a flood; the higher limit is the margin for everything else.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# What to ask for when the hard limit is unlimited (the kernel refuses more than nr_open).
UNLIMITED_TARGET = 1 << 16


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft limit to the hard one where it is lower; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.info(
                "keeping the descriptor limit %d: cannot raise it to %d (%s)", soft, target, exc
            )
            return soft, hard
        log.debug("descriptor limit raised from %d to %d", soft, target)
        soft = target
    return soft, hard
