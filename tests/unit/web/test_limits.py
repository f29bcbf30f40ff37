# SPDX-License-Identifier: GPL-3.0-or-later
"""The web port's connection limits (bridge.web.limits) in front of a real aiohttp server on a
loop of the test's own, with small caps and timeouts so every rule shows in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import pytest
from aiohttp import web

from bridge.web import limits

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


class Served:
    def __init__(self, limiter: limits.ConnectionLimiter, port: int) -> None:
        self.limiter = limiter
        self.port = port

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self) -> bytes:
        r, w = await self.connect()
        try:
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return await asyncio.wait_for(r.read(), 5)
        finally:
            w.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes (EOF or reset) within `seconds`."""
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@contextlib.asynccontextmanager
async def serve(keepalive_timeout: float = 75.0, **kw: Any) -> AsyncIterator[Served]:
    """A hello-world aiohttp app behind a ConnectionLimiter with the given limits."""
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_timeout)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    assert runner.server is not None
    limiter = limits.ConnectionLimiter(runner.server, **kw)
    limiter.start(asyncio.get_running_loop(), sock)
    try:
        yield Served(limiter, sock.getsockname()[1])
    finally:
        limiter.close()
        await runner.cleanup()


def test_requests_are_served_and_places_freed() -> None:
    async def main() -> None:
        async with serve() as s:
            for _ in range(5):
                assert b"hello" in await s.get()
            await asyncio.sleep(0.05)
            assert s.limiter.connections == 0

    asyncio.run(main())


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["idle", "slow"])
def test_no_request_head_in_time_is_closed(sent: bytes) -> None:
    async def main() -> None:
        async with serve(header_timeout_s=0.3) as s:
            r, w = await s.connect()
            w.write(sent)
            assert await closed_within(r, 3)
            w.close()
            assert s.limiter.timed_out == 1
            assert s.limiter.connections == 0

    asyncio.run(main())


def test_idle_keep_alive_is_closed() -> None:
    async def main() -> None:
        async with serve(keepalive_timeout=0.3) as s:
            r, w = await s.connect()
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(r.readuntil(b"hello"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            w.write(b"GET / HTTP/1.1\r\n")  # a second request that never ends
            assert await closed_within(r, 3)
            w.close()

    asyncio.run(main())


def test_a_peer_over_its_cap_evicts_its_oldest_pending_connection() -> None:
    async def main() -> None:
        async with serve(max_per_peer=4, max_connections=100) as s:
            flood = [await s.connect() for _ in range(4)]
            await asyncio.sleep(0.05)
            assert s.limiter.connections == 4
            # A real request still gets in: the oldest silent connection gives way.
            assert b"hello" in await s.get()
            assert await closed_within(flood[0][0], 2)
            assert s.limiter.evicted == 1
            for _r, w in flood:
                w.close()

    asyncio.run(main())


def test_every_place_busy_with_a_request_refuses_at_once() -> None:
    async def main() -> None:
        async with serve(max_per_peer=2, max_connections=2) as s:
            busy = []
            for _ in range(2):  # requests whose heads are complete: not evictable
                r, w = await s.connect()
                w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
                busy.append((r, w))
            await asyncio.sleep(0.05)
            try:
                r, w = await s.connect()
            except ConnectionError:
                pass  # the reset came before the handshake was reported: refused too
            else:
                assert await closed_within(r, 2)
                w.close()
            await asyncio.sleep(0.05)
            assert s.limiter.refused == 1
            assert s.limiter.connections == 2
            for _r, w in busy:
                w.close()

    asyncio.run(main())


def test_out_of_descriptors_pauses_accepting_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with serve() as s:
            real = s.limiter._sock
            assert real is not None
            failing = mock.Mock(wraps=real)
            failing.fileno.return_value = real.fileno()
            failing.accept.side_effect = OSError(errno.EMFILE, "Too many open files")
            s.limiter._sock = failing
            for _ in range(3):
                s.limiter._accept()
                s.limiter._resume()
            assert s.limiter.accept_failures == 3
            s.limiter._sock = real
            assert b"hello" in await s.get()

    with caplog.at_level("WARNING"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "cannot accept connections (Too many open files)" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
