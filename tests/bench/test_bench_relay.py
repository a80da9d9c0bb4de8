"""The relay peer (bench/peers/relay.py), the floor a miss is measured against, relays faithfully:
what the origin said, in request order, on one keep-alive connection, and a 502 when it is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.peers import Peer, start_peer
from bench.procs import free_port
from tests.support.origin import serve_app
from tests.support.rawhttp import exchange


async def echo(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "0")))
    return web.json_response({"path": request.path_qs, "accept": request.headers.get("Accept")},
                             headers={"Cache-Control": "max-age=60", "X-Origin": "yes"})


@contextlib.asynccontextmanager
async def relay_in_front_of(origin_port: int, workdir: Path) -> AsyncIterator[int]:
    """The relay as ``bench compare`` starts it; its readiness check asks the origin through it,
    so it runs off this loop, which serves the origin."""
    with contextlib.ExitStack() as stack:
        relay = await asyncio.to_thread(start_peer, stack, Peer.RELAY, workdir, origin_port, workers=1, cache_bytes=0)
        yield relay.port


@pytest.fixture
async def origin_port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    async with serve_app(app) as url:
        yield int(url.rsplit(":", 1)[1])


async def test_pipelined_requests_are_answered_in_order_with_the_origins_fields(
    origin_port: int, tmp_path: Path
) -> None:
    async with relay_in_front_of(origin_port, tmp_path) as port:
        # The first answer is the slowest: order must come from the requests, not the origin.
        requests = b"".join(
            f"GET /item?n={n}&delay={0.2 if n == 0 else 0} HTTP/1.1\r\nHost: x\r\nAccept: text/{n}\r\n\r\n".encode()
            for n in range(3)
        )
        got = await exchange("127.0.0.1", port, requests, idle=1.0)
    assert [r.status for r in got.responses] == [200, 200, 200]
    assert [r.body.count(f'"accept": "text/{n}"'.encode()) for n, r in enumerate(got.responses)] == [1, 1, 1]
    first = got.first
    assert first.header("x-origin") == "yes" and first.header("cache-control") == "max-age=60"
    assert first.header("cache-status") == "relay; fwd=miss"
    assert first.header("content-length") == str(len(first.body))
    assert not got.closed


async def test_an_unreachable_origin_gets_a_502(tmp_path: Path) -> None:
    async with relay_in_front_of(free_port(), tmp_path) as port:
        got = await exchange("127.0.0.1", port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.first.status == 502
