"""Fixtures: the real proxy (httptools server) with short limits, in front of a real aiohttp
origin on port 0 that reports what reached it; raw-socket helpers for hostile clients."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime, running_proxy
from edgeproxy.proxy.server import ServerLimits
from tests.support.origin import serve_app
from tests.support.rawhttp import RawExchange, exchange

FAST_LIMITS = ServerLimits(
    max_line_size=4096,  # below the test origin's own limits, so "at the limit" reaches it
    max_field_size=4096,
    max_body_size=1024 * 1024,
    header_timeout=0.5,
    body_timeout=0.5,
    keepalive_timeout=0.5,
    send_timeout=0.5,
    linger_timeout=0.5,
    max_connections=8,
    body_buffer=16 * 1024,
)
"""Small enough that every limit and timeout is reached quickly."""

StartProxy = Callable[..., AbstractAsyncContextManager[ProxyRuntime]]


@dataclass
class EchoOrigin:
    """An origin that answers with what it received, and counts complete requests per path."""

    completed: Counter[str] = field(default_factory=Counter)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/cached", self._cached)
        app.router.add_get("/empty", self._empty)
        app.router.add_get("/chunks", self._chunks)
        app.router.add_get("/big", self._big)
        app.router.add_get("/slow", self._slow)
        return app

    async def _echo(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
        self.completed["/echo"] += 1
        answer = {"method": request.method, "target": request.path_qs, "length": length, "sha256": digest.hexdigest()}
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def _cached(self, request: web.Request) -> web.Response:
        self.completed["/cached"] += 1
        headers = {"Cache-Control": "max-age=60", "ETag": '"v1"'}
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=b"hello", headers=headers)

    async def _empty(self, request: web.Request) -> web.Response:
        self.completed["/empty"] += 1
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    async def _chunks(self, request: web.Request) -> web.StreamResponse:
        """A streamed body of unknown length: relayed chunked by the proxy."""
        self.completed["/chunks"] += 1
        response = web.StreamResponse(headers={"Cache-Control": "no-store"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(int(request.query.get("n", "3"))):
            await response.write(f"part{i};".encode())
        await response.write_eof()
        return response

    async def _big(self, request: web.Request) -> web.Response:
        self.completed["/big"] += 1
        return web.Response(body=b"x" * int(request.query["size"]), headers={"Cache-Control": "no-store"})

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.5")))
        self.completed["/slow"] += 1
        return web.Response(text="slow", headers={"Cache-Control": "no-store"})


@pytest.fixture
def origin() -> EchoOrigin:
    return EchoOrigin()


@pytest.fixture
async def origin_url(origin: EchoOrigin) -> AsyncIterator[str]:
    async with serve_app(origin.app()) as url:
        yield url


@pytest.fixture
def start_proxy(origin_url: str) -> StartProxy:
    """``async with start_proxy(limits=...) as proxy:`` — a proxy with L1 only and the built-in
    policy in front of ``origin``, on a free port."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[ProxyRuntime]:
        settings: dict[str, Any] = {"port": 0, "policies": None, "limits": FAST_LIMITS, **overrides}
        return running_proxy(ProxyConfig(origin=origin_url, **settings))

    return start


@pytest.fixture
async def proxy(start_proxy: StartProxy) -> AsyncIterator[ProxyRuntime]:
    async with start_proxy() as runtime:
        yield runtime


@pytest.fixture
def raw(proxy: ProxyRuntime) -> Callable[..., Any]:
    """``await raw(b"GET / HTTP/1.1...")``: write bytes, collect what the proxy answers."""

    async def send(data: bytes, *, idle: float = 0.3, timeout: float = 5.0) -> RawExchange:
        return await exchange("127.0.0.1", proxy.port, data, idle=idle, timeout=timeout)

    return send
