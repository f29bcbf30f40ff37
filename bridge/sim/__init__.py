# SPDX-License-Identifier: GPL-3.0-or-later
"""A faithful fake borescope on real UDP, for tests, the demo and benchmarks.

It behaves like the J10x-OTG device as far as the bridge can tell: it streams a generated,
moving JPEG picture to whoever sends heartbeats, answers the snapshot-button poll, and can
inject loss, duplication, reordering, corruption, foreign packets and reboots.

Modules: ``scene`` (the picture), ``device`` (the behaviour, a pure state machine), ``faults``
(the seeded fault decisions), ``server`` (sockets and the I/O thread: ``Simulator``) and
``cli`` (`borescope-bridge simulate`).
"""
