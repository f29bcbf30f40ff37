# SPDX-License-Identifier: GPL-3.0-or-later
"""The web page's HTTP server: aiohttp on its own asyncio thread, fed by a :class:`Feed`.

Why aiohttp: a kept library (Debian 12 ships python3-aiohttp 3.8.4) with a streaming response
API, so the HTTP parsing is not ours; one thread and one event loop serve every viewer, which
the service's sandbox allows as it is (AF_INET and AF_UNIX sockets only). The code uses only
API that 3.8.4 and the newest 3.x both have.

The stream, theory of operation:

- The daemon's loop thread puts the newest frame (its immutable bytes) in the Feed and, while
  someone watches, wakes this loop with one ``call_soon_threadsafe``. It never waits for us.
- Each stream client loops: take the newest frame it has not sent, write it as one multipart
  part (headers, the JPEG as the borescope sent it, and at once the next boundary, because
  browsers paint a part only when the boundary after it arrives), and wait until the
  transport has drained below its high-water mark. A slow client therefore gets the newest
  frame whenever it is ready and skips the rest: per client there is at most one frame in
  flight, never a growing queue. A client that accepts nothing for ``STALL_S`` is dropped.
- No new frame for ``IDLE_RESEND_S``: the no-signal picture is sent while there is no signal
  (or the last frame again while streaming slowly), so a viewer always sees the truth and the
  connection stays alive; a closed page is noticed within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from bridge.errors import BridgeError
from bridge.web import auth, limits, stall
from bridge.web.access import PAGE_FILES, Access, json_response
from bridge.web.credentials import Credentials
from bridge.web.feed import Feed
from bridge.web.files import list_snapshots, read_snapshot
from bridge.web.recordings import RecordingRoutes

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_STREAM_CLIENTS = 16
MAX_EVENT_CLIENTS = 16
STALL_S = 5.0  # a client that takes no bytes for this long is dropped
IDLE_RESEND_S = 1.0  # no new frame for this long: send the no-signal picture (or the last frame)
SSE_KEEPALIVE_S = 15.0
SSE_QUEUE = 64  # events waiting for one SSE client; beyond that the client is dropped
SNAPSHOT_TIMEOUT_S = 5.0
LATENCY_SAMPLES = 2000
BOUNDARY = "borescope-frame"
NO_SIGNAL_SIZE = (640, 480)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


_json = json_response


class WebServer:
    """Serves the page and its API on (host, port) until `stop()`; see the module docstring."""

    def __init__(
        self,
        feed: Feed,
        host: str,
        port: int,
        token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.host = host
        self.port = port
        self.token_file: str | None = None  # where the token is kept, if anywhere
        self.token_mode = 0o600  # the token file's mode when a new token replaces it
        self.loopback = host.startswith("127.")
        self.access = Access(Credentials(token, port, clock), self.loopback)
        self._token_lock = asyncio.Lock()  # one new token at a time: file and memory agree
        self.stream_clients = 0
        self.event_clients = 0
        self.dropped_stalled = 0
        self.refused = 0
        self.frames_sent = 0
        self._latency: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping = False
        self._frame_event: asyncio.Event | None = None
        self._transports: set[asyncio.Transport] = set()
        self.limiter: limits.ConnectionLimiter | None = None
        self._subscribers: set[_Subscriber] = set()
        self._no_signal: dict[tuple[int, int], bytes] = {}
        self._page = self._load_page()

    # ---- lifecycle ------------------------------------------------------------------------

    @staticmethod
    def _load_page() -> dict[str, bytes]:
        files = resources.files("bridge.web")
        return {
            name: files.joinpath(name).read_bytes()
            for name in ("index.html", "app.js", "style.css", "credential.js")
        }

    def start(self) -> None:
        """Bind (BridgeError says why not) and serve on a thread of our own."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            hint = {
                errno.EADDRINUSE: "another program (another borescope-bridge?) uses it",
                errno.EADDRNOTAVAIL: "that address is not one of this machine's",
                errno.EACCES: "ports below 1024 need privileges the daemon does not have",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise BridgeError(
                f"cannot serve the web page on {self.host}:{self.port}: {hint}; choose another "
                '--http HOST:PORT (config key http), or --http off (http = "off")'
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.access.credentials.port = self.port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="web", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise BridgeError(f"the web page could not start: {self._start_error}")
        self.feed.attach(self._from_daemon)
        log.info("web page on http://%s:%d/ (borescope-bridge url prints it)", self.host, self.port)

    def _run(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(
            self._make_app(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=limits.KEEPALIVE_S,
        )
        self._frame_event = asyncio.Event()
        try:
            loop.run_until_complete(runner.setup())
            assert runner.server is not None
            self.limiter = limits.ConnectionLimiter(runner.server)  # our accept loop, not a site
            self.limiter.start(loop, sock)
        except BaseException as exc:  # reported by start() in the daemon's thread
            self._start_error = exc
            sock.close()
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
            if self.limiter is not None:
                self.limiter.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(runner.cleanup(), 3.0))
        finally:
            loop.close()

    def stop(self) -> None:
        """Close every connection and the listening socket; returns within a few seconds."""
        self.feed.attach(None)
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._begin_stop)
        thread.join(5.0)
        self._thread = None

    def _begin_stop(self) -> None:
        self._stopping = True
        for transport in list(self._transports):
            transport.abort()
        self._wake_frames()
        for sub in list(self._subscribers):
            sub.overflow = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        assert self._loop is not None
        self._loop.stop()

    @property
    def token(self) -> str:
        return self.access.credentials.token

    def _on_loop(self, work: Callable[[], Coroutine[Any, Any, T]]) -> Future[T]:
        """Run the coroutine `work()` on the web thread (it owns the credentials), from any
        thread; its result as a future."""
        loop = self._loop
        if loop is not None and not self._stopping:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                return asyncio.run_coroutine_threadsafe(work(), loop)
        failed: Future[T] = Future()
        failed.set_exception(BridgeError("the web page is stopping"))
        return failed

    def issue_code(self) -> Future[str]:
        """A one-time code for `borescope-bridge open` (any thread)."""

        async def code() -> str:
            return self.access.credentials.code()

        return self._on_loop(code)

    def new_token(self) -> Future[str]:
        """A new token, kept in the token file, in place of the old one at once: every
        session, ticket and code of the old one dies, every open stream and event listener is
        closed (any thread). If the file cannot be written, nothing changes."""
        return self._on_loop(self._new_token)

    async def _new_token(self) -> str:
        async with self._token_lock:
            token_file = self.token_file
            if token_file is None:  # kept nowhere: this run's token only
                token = secrets.token_urlsafe(auth.TOKEN_BYTES)
            else:
                loop = asyncio.get_running_loop()
                try:  # the executor's thread: a slow disk must not stall the viewers
                    token = await loop.run_in_executor(
                        None, auth.replace_token, os.path.dirname(token_file), self.token_mode
                    )
                except OSError as exc:
                    raise BridgeError(
                        f"cannot write a new token to {token_file}: {exc.strerror or exc}; "
                        "the old one stays valid"
                    ) from None
            self._rotate(token)
            return token

    def _rotate(self, token: str) -> None:
        self.access.credentials.rotate(token)
        for transport in list(self._transports):
            transport.abort()
        for sub in list(self._subscribers):
            sub.close()
        log.info("web: a new access token; every old address, page and script is refused")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "127.0.0.1") else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def stats(self) -> dict[str, Any]:
        lat = list(self._latency)
        p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
        return {
            "stream_clients": self.stream_clients,
            "event_clients": self.event_clients,
            "frames_sent": self.frames_sent,
            "dropped_stalled": self.dropped_stalled,
            "refused": self.refused,
            "latency_p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "latency_p99_ms": None if p99 is None else round(p99 * 1000, 3),
        }

    def reset_latency(self) -> None:
        self._latency.clear()

    # ---- from the daemon's threads ----------------------------------------------------------

    def _from_daemon(self, kind: str, data: Any) -> None:
        loop = self._loop
        if loop is None or self._stopping:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody listens
            if kind == "frame":
                loop.call_soon_threadsafe(self._wake_frames)
            else:
                loop.call_soon_threadsafe(self._broadcast, kind, data)

    def _wake_frames(self) -> None:
        event = self._frame_event
        self._frame_event = asyncio.Event()
        if event is not None:
            event.set()

    def _broadcast(self, kind: str, data: Any) -> None:
        if kind == "state":
            self._wake_frames()  # no-signal at once, not after the idle timeout
        message = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.overflow = True

    # ---- the application ---------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.access.guard], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/", self._index, allow_head=False)
        for path in PAGE_FILES:
            r.add_get(path, self._page_file, allow_head=False)
        r.add_get("/stream.mjpeg", self._stream, allow_head=False)
        r.add_get("/frame.jpg", self._frame, allow_head=False)
        r.add_post("/api/snapshot", self._snapshot)
        r.add_get("/api/status", self._status, allow_head=False)
        r.add_get("/api/snapshots", self._snapshots, allow_head=False)
        r.add_get("/api/instances", self._instances, allow_head=False)
        r.add_get("/api/events", self._events, allow_head=False)
        r.add_get("/snapshots/{name}", self._snapshot_file, allow_head=False)
        self.access.add_routes(r)
        RecordingRoutes(self.feed).add_to(r)
        app.on_response_prepare.append(self._common_headers)
        return app

    @staticmethod
    async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h.setdefault("Cache-Control", "no-store")
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h["Content-Security-Policy"] = CSP

    # ---- the page ------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        # Static: it holds no secret, so it needs no credential (credential.js finds the token
        # in the address, a one-time code or the browser's storage for this origin).
        return web.Response(
            body=self._page["index.html"], content_type="text/html", charset="utf-8"
        )

    async def _page_file(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        return web.Response(
            body=self._page[name], content_type=PAGE_FILES[request.path], charset="utf-8"
        )

    # ---- frames ------------------------------------------------------------------------------

    def no_signal_jpeg(self) -> bytes:
        size = self.feed.resolution or NO_SIGNAL_SIZE
        jpeg = self._no_signal.get(size)
        if jpeg is None:
            from bridge.pixels.nosignal import no_signal_jpeg

            jpeg = no_signal_jpeg(*size)
            self._no_signal[size] = jpeg
        return jpeg

    async def _frame(self, request: web.Request) -> web.Response:
        _seq, data, _t = self.feed.newest()
        if data is None or not self.feed.streaming:
            data = self.no_signal_jpeg()
        return web.Response(body=data, content_type="image/jpeg")

    async def _next_frame(self, after: int, live: bool) -> tuple[int, bytes, float] | None:
        """The newest frame after sequence `after`; None after IDLE_RESEND_S without one, or at
        once when the signal is lost while the viewer sees the live picture (`live`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_RESEND_S
        while not self._stopping:
            seq, data, completed = self.feed.newest()
            if not self.feed.streaming:
                if live:
                    return None
            elif seq != after and data is not None:
                return seq, data, completed
            event = self._frame_event
            remaining = deadline - loop.time()
            if event is None or remaining <= 0:
                return None
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return None
        return None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self.stream_clients >= MAX_STREAM_CLIENTS:
            self.refused += 1
            return web.Response(
                status=503,
                text=f"too many viewers: at most {MAX_STREAM_CLIENTS} live streams at once; "
                "close another viewer and reload (single pictures: /frame.jpg)\n",
                headers={"Retry-After": "5"},
            )
        self.stream_clients += 1
        self.feed.wanted = True
        transport = request.transport
        if transport is not None:
            self._transports.add(transport)
        watcher = self._watch(request, "a viewer")
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        boundary = f"\r\n--{BOUNDARY}\r\n".encode()
        try:
            await response.prepare(request)
            await response.write(boundary[2:])
            sent = -1
            live = False
            while not self._stopping:
                item = await self._next_frame(sent, live)
                if self._stopping:
                    break
                completed: float | None = None
                _seq, last, _t = self.feed.newest()
                if item is not None:
                    sent, data, completed = item
                    live = True
                elif self.feed.streaming and last is not None:
                    data, live = last, True  # streaming slowly: the last frame again
                else:
                    data, live = self.no_signal_jpeg(), False
                head = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                try:
                    await asyncio.wait_for(response.write(head + data + boundary), STALL_S)
                except TimeoutError:
                    self.dropped_stalled += 1
                    log.info(
                        "web: dropped a viewer (%s) that took no data for %g s",
                        request.remote,
                        STALL_S,
                    )
                    if transport is not None:
                        transport.abort()
                    break
                if completed is not None:
                    self.frames_sent += 1
                    self._latency.append(time.monotonic() - completed)
        except ConnectionError:
            pass  # the viewer went away (closing the page closes its stream)
        finally:
            watcher.cancel()
            self.stream_clients -= 1
            self.feed.wanted = self.stream_clients > 0
            if transport is not None:
                self._transports.discard(transport)
        return response

    def _watch(
        self, request: web.Request, what: str, then: Callable[[], None] | None = None
    ) -> asyncio.Future[None]:
        """Drop this client once it takes nothing for STALL_S while data waits for it."""
        transport = request.transport

        def stalled() -> None:
            self.dropped_stalled += 1
            log.info("web: dropped %s (%s): took nothing for %g s", what, request.remote, STALL_S)
            if then is not None:
                then()
            if transport is not None:
                transport.abort()

        if transport is None:
            return asyncio.get_running_loop().create_future()
        return asyncio.ensure_future(stall.watch(transport, STALL_S, stalled))

    # ---- API ---------------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self.feed.status())

    async def _snapshot(self, request: web.Request) -> web.Response:
        # The guard admitted this POST for a header (the token, or the page's session): no
        # other site can set one, and a cross-site script asking to is preflighted with
        # OPTIONS, which carries none and is refused with 401. Tickets admit GETs only.
        # A future the daemon completes by the deadline: no thread waits for the frame.
        reply = await asyncio.wrap_future(self.feed.take_snapshot(SNAPSHOT_TIMEOUT_S, "web page"))
        if reply.get("ok") and reply.get("path"):
            return _json({"ok": True, "name": os.path.basename(reply["path"])})
        error = reply.get("error") or "snapshot failed"
        if reply.get("limited"):
            return _json({"ok": False, "error": error}, 429, {"Retry-After": "1"})
        status = 503 if reply.get("busy") else 500
        return _json({"ok": False, "error": error}, status)

    async def _instances(self, request: web.Request) -> web.Response:
        """The other instances (several borescopes): interface, host, port, state."""
        loop = asyncio.get_running_loop()
        return _json({"instances": await loop.run_in_executor(None, self.feed.instances)})

    # Directory listings and file reads stay on the executor: a hung disk (a stale NFS mount)
    # blocks that thread, never this loop and every viewer with it.

    async def _snapshots(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(None, list_snapshots, self.feed.snapshot_dir())
        return _json(files)

    async def _snapshot_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, read_snapshot, self.feed.snapshot_dir(), name)
        if data is None:
            raise web.HTTPNotFound(text="no such snapshot\n")
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={
                # Names are unique and files are never rewritten: the browser may keep them.
                "Cache-Control": "private, max-age=86400, immutable",
                "Content-Disposition": f'inline; filename="{name}"',
            },
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.event_clients >= MAX_EVENT_CLIENTS and self._subscribers:
            # Listeners get too little data for TCP to show one that never reads: when all
            # places are taken the oldest makes room (a page's EventSource reconnects).
            oldest = min(self._subscribers, key=lambda s: s.started)
            log.info("web: %d event listeners: closing the oldest", self.event_clients)
            oldest.close()
        self.event_clients += 1
        sub = _Subscriber()
        self._subscribers.add(sub)
        transport = request.transport
        if transport is not None:
            self._transports.add(transport)
        watcher = self._watch(request, "an event listener", sub.close)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await response.prepare(request)
            state = {"state": self.feed.state, "streaming": self.feed.streaming}
            await response.write(
                f"retry: 2000\nevent: state\ndata: {json.dumps(state)}\n\n".encode()
            )
            while not self._stopping and not sub.overflow:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), SSE_KEEPALIVE_S)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                if message is None or sub.overflow:
                    break
                await asyncio.wait_for(response.write(message), STALL_S)
        except (TimeoutError, ConnectionError):
            pass  # a stalled or departed listener; a cancelled task stays cancelled
        finally:
            watcher.cancel()
            self.event_clients -= 1
            self._subscribers.discard(sub)
            if transport is not None:
                self._transports.discard(transport)
                if sub.overflow and not self._stopping:
                    transport.abort()
        return response


class _Subscriber:
    """One SSE client's pending events; bounded, and overflowing drops the client."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(SSE_QUEUE)
        self.overflow = False
        self.started = time.monotonic()

    def close(self) -> None:
        """End this listener's response: its handler wakes and drops the connection."""
        self.overflow = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
