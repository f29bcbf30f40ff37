# SPDX-License-Identifier: GPL-3.0-or-later
"""The built-in web page: live picture, snapshots and status in any browser, phones included.

- ``feed.py``: the one interface between the daemon and the page (newest frame, snapshot
  request, status, snapshot/snapshot-failed/state events). The daemon fills it; nothing
  here reaches into the daemon.
- ``auth.py``: the access token (made once, kept in the state directory, replaced by
  `url --new-token`) and the pure rules: Host allow-list, the token in a header.
- ``credentials.py``: what the page uses instead of sending the token: sessions got by an
  HMAC proof, one-use tickets for URLs, one-time codes for `borescope-bridge open`.
- ``access.py``: the guard every request passes, and the routes that hand those out.
- ``server.py``: aiohttp on its own asyncio thread; the routes, streams and events.
- ``limits.py``: our own accept loop in front of aiohttp: connection caps and header deadlines.
- ``stall.py``: which viewer or listener has taken nothing while data waited for it.
- ``files.py``: the snapshot files the page lists and serves (read off the loop's thread).
- ``recordings.py``: record start/stop, the recordings list and their downloads.
- ``urls.py``: the addresses `borescope-bridge url` prints, the LAN advice, the QR code.
- ``index.html``, ``app.js``, ``style.css``: the page, plain files shipped in the package;
  ``credential.js``: all the page knows of authentication (``window.bbAuth``).
"""
