"""The origin connection pool: an idle connection is reused only within ``idle_timeout``, so a
request is never written on a connection the origin's keep-alive timeout is about to close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from edgeproxy.policies.model import OriginSettings
from edgeproxy.proxy.upstream import IDLE_TIMEOUT, Upstream
from tests.support.origin import serve_app

IDLE = 0.3


class PeerCounter:
    """An origin that records the client address (one per TCP connection) of each request."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername")[:2])
        await request.read()
        return web.Response(text="ok")


@pytest.fixture
async def counted() -> AsyncIterator[tuple[PeerCounter, OriginSettings]]:
    origin = PeerCounter()
    async with serve_app(origin.app()) as url:
        yield origin, OriginSettings(url)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    pool = Upstream(idle_timeout=IDLE)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


async def _exchange(upstream: Upstream, origin: OriginSettings, method: str = "GET") -> None:
    body = b"payload" if method == "PUT" else None
    response = await upstream.send(origin, method, "/x", (), body)
    assert response.status == 200
    _, complete = await response.read_up_to(1024)  # reading to the end returns it to the pool
    assert complete


def test_the_default_bound_is_below_the_usual_origin_keep_alive_timeouts():
    # Node's http server and uvicorn close idle keep-alive connections after 5 s by default.
    assert IDLE_TIMEOUT < 5.0


async def test_requests_within_the_idle_bound_share_one_connection(counted, upstream: Upstream):
    origin, settings = counted
    await _exchange(upstream, settings)
    await asyncio.sleep(IDLE / 3)
    await _exchange(upstream, settings, "PUT")
    assert len(origin.peers) == 2
    assert origin.peers[0] == origin.peers[1], origin.peers


async def test_a_connection_idle_beyond_the_bound_is_not_reused(counted, upstream: Upstream):
    origin, settings = counted
    await _exchange(upstream, settings)
    await asyncio.sleep(IDLE + 0.2)
    # A PUT is never retried on a fresh connection, so it must not be given a stale one.
    await _exchange(upstream, settings, "PUT")
    assert len(origin.peers) == 2
    assert origin.peers[0] != origin.peers[1], origin.peers
