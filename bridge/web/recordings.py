# SPDX-License-Identifier: GPL-3.0-or-later
"""The page's recording routes: start, stop, the list, and the files to download.

    POST /api/record/start, POST /api/record/stop   a header credential, like POST /api/snapshot
    GET  /api/recordings      [{"name", "bytes", "time", "duration"}], newest first
    GET  /recordings/NAME     the file, as an attachment (only names the daemon makes)

The page plays nothing: it lists and downloads. Directory listings and file reads run on the
executor, a chunk at a time, so a hung disk never stalls the server's loop and a 2 GiB file
never sits in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from bridge.capture.names import RECORDING_NAME
from bridge.core.matroska import read_duration_s
from bridge.web.feed import Feed
from bridge.web.files import open_ours

CHUNK_BYTES = 256 * 1024
HEAD_BYTES = 4096  # the part of a file where a finished recording keeps its Duration


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


def list_recordings(directory: str) -> list[dict[str, Any]]:
    """Our recording files (regular files with our name pattern), newest first. `duration` is
    None for a file cut short (its players work it out) or still being written."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not RECORDING_NAME.fullmatch(entry.name):
            continue
        fd = open_ours(directory, entry.name, RECORDING_NAME)
        if fd is None:
            continue
        try:
            st = os.fstat(fd)
            duration = read_duration_s(os.pread(fd, HEAD_BYTES, 0))
        except OSError:
            continue
        finally:
            os.close(fd)
        out.append(
            {
                "name": entry.name,
                "bytes": st.st_size,
                "time": st.st_mtime,
                "duration": None if duration is None else round(duration, 3),
            }
        )
    out.sort(key=lambda e: (e["time"], e["name"]), reverse=True)
    return out


def _open_sized(directory: str, name: str) -> tuple[int, int] | None:
    fd = open_ours(directory, name, RECORDING_NAME)
    if fd is None:
        return None
    return fd, os.fstat(fd).st_size


class RecordingRoutes:
    """The handlers; `feed.recordings` is the daemon's control object (None: not offered)."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/record/start", self._start)
        router.add_post("/api/record/stop", self._stop)
        router.add_get("/api/recordings", self._list, allow_head=False)
        router.add_get("/recordings/{name}", self._file, allow_head=False)

    def _directory(self) -> str | None:
        rec = self.feed.recordings
        return rec.directory if rec is not None else None

    async def _start(self, request: web.Request) -> web.Response:
        return await self._act(request, "start")

    async def _stop(self, request: web.Request) -> web.Response:
        return await self._act(request, "stop")

    async def _act(self, request: web.Request, action: str) -> web.Response:
        # The guard admitted this POST for a header (the token or the page's session), which
        # no other site can set; tickets admit GETs only (bridge/web/access.py).
        rec = self.feed.recordings
        if rec is None:
            return _json({"ok": False, "error": "recording is not available"}, 404)
        future = rec.start("web page") if action == "start" else rec.stop("web page")
        answer: dict[str, Any] = await asyncio.wrap_future(future)
        reply = dict(answer)
        reply.pop("path", None)  # the page needs the name, not where the daemon keeps files
        if reply.get("ok"):
            return _json(reply)
        # Already running / nothing running: a conflict the page resolves by refreshing.
        conflict = reply.get("running") or reply.get("error") == "no recording is running"
        return _json(reply, 409 if conflict else 500)

    async def _list(self, request: web.Request) -> web.Response:
        directory = self._directory()
        if directory is None:
            return _json([])
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(None, list_recordings, directory)
        rec = self.feed.recordings
        status = rec.status() if rec is not None else {}
        for f in files:
            if status.get("running") and f["name"] == status.get("name"):
                f["duration"] = status.get("duration_s")
                f["recording"] = True
        return _json(files)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        directory = self._directory()
        loop = asyncio.get_running_loop()
        opened = None
        if directory is not None:
            opened = await loop.run_in_executor(None, _open_sized, directory, name)
        if opened is None:
            raise web.HTTPNotFound(text="no such recording\n")
        fd, size = opened
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "video/x-matroska",
                    "Content-Length": str(size),
                    # A download (a phone saves it) rather than a page that tries to play it.
                    "Content-Disposition": f'attachment; filename="{name}"',
                }
            )
            await response.prepare(request)
            sent = 0
            while sent < size:
                chunk = await loop.run_in_executor(
                    None, os.pread, fd, min(CHUNK_BYTES, size - sent), sent
                )
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response
        finally:
            os.close(fd)
