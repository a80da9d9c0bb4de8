"""The relay peer (bench/peers/relay.py), the floor a miss is measured against, relays faithfully:
what the origin said, in request order, on one keep-alive connection, and a 502 when it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.peers import TEMPLATES
from tests.support.origin import serve_app
from tests.support.rawhttp import exchange


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def echo(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "0")))
    return web.json_response({"path": request.path_qs, "accept": request.headers.get("Accept")},
                             headers={"Cache-Control": "max-age=60", "X-Origin": "yes"})


@contextlib.asynccontextmanager
async def relay_in_front_of(origin_port: int) -> AsyncIterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TEMPLATES / "relay.py"), "--listen", f"127.0.0.1:{port}",
                             "--origin-port", str(origin_port)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"the relay did not start: {proc.stderr and proc.stderr.read()!r}") from None
                await asyncio.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
async def origin_port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    async with serve_app(app) as url:
        yield int(url.rsplit(":", 1)[1])


async def test_pipelined_requests_are_answered_in_order_with_the_origins_fields(origin_port: int) -> None:
    async with relay_in_front_of(origin_port) as port:
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


async def test_an_unreachable_origin_gets_a_502() -> None:
    async with relay_in_front_of(free_port()) as port:
        got = await exchange("127.0.0.1", port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.first.status == 502
