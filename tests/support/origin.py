"""Run origins for tests on 127.0.0.1 port 0: any aiohttp app, the demo origin, or a programmable one.

The programmable origin answers what a test sets per path at runtime and records what reached it,
so tests assert how many requests the proxy forwarded and with which headers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from edgeproxy.cache.httpdate import parse_http_date
from edgeproxy.demo.origin import make_app, not_modified

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]

SHUTDOWN_TIMEOUT = 1.0
"""Seconds cleanup waits for in-flight handlers (e.g. a slow route) before cancelling them."""


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 port 0 for the duration of the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_demo_origin(*, catalog_size: int = 200) -> AsyncIterator[str]:
    """The demo origin (edgeproxy.demo.origin) with a small catalog; yields its base URL."""
    async with serve_app(make_app(catalog_size=catalog_size)) as url:
        yield url


@dataclass(frozen=True, slots=True)
class Reply:
    """What the programmable origin answers on one path."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    conditional: bool = True
    """Answer 304 when the request's validators match this reply's ETag / Last-Modified."""


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as it reached the origin (what the proxy forwarded)."""

    method: str
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(slots=True)
class ProgrammableOrigin:
    """An origin whose routes a test programs at runtime.

    >>> origin = ProgrammableOrigin()
    >>> origin.set("/a", headers={"Cache-Control": "max-age=60", "ETag": '"v1"'}, body=b"hello")
    >>> # async with serve_app(origin.app()) as url: ...; assert origin.count("/a") == 1
    """

    replies: dict[str, Reply] = field(default_factory=dict)
    seen: list[SeenRequest] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    """Requests per path (query excluded); ``seen`` has the full path and query."""

    def set(
        self,
        path: str,
        *,
        status: int = 200,
        headers: HeaderInput = (),
        body: bytes | str = b"",
        delay: float = 0.0,
        conditional: bool = True,
    ) -> None:
        """Program ``path``. Repeated header names are kept (pass a list of pairs for that)."""
        pairs = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        payload = body.encode() if isinstance(body, str) else body
        self.replies[path] = Reply(status, pairs, payload, delay, conditional)

    def count(self, path: str) -> int:
        return self.counts[path]

    def last(self, path: str) -> SeenRequest:
        """The most recent request for ``path``; fails the test clearly when there was none."""
        for request in reversed(self.seen):
            if request.path_qs.split("?", 1)[0] == path:
                return request
        raise AssertionError(f"the origin received no request for {path}; it saw {sorted(self.counts)}")

    def forget(self) -> None:
        """Clear the request record (replies stay programmed)."""
        self.seen.clear()
        self.counts.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(SeenRequest(request.method, request.path_qs, CIMultiDictProxy(request.headers.copy()), body))
        self.counts[request.path] += 1
        reply = self.replies.get(request.path)
        if reply is None:
            return web.Response(status=404, text=f"no reply programmed for {request.path}; call origin.set() first")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = CIMultiDict(reply.headers)
        etag, last_modified = headers.get(hdrs.ETAG), parse_http_date(headers.get(hdrs.LAST_MODIFIED))
        if (
            reply.conditional
            and request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
            and reply.status == 200
            and (etag is not None or last_modified is not None)
            and not_modified(request, etag, last_modified)
        ):
            return web.Response(status=304, headers=headers)
        no_body = reply.status in (204, 304) or reply.status < 200
        return web.Response(status=reply.status, headers=headers, body=None if no_body else reply.body)


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve_streams(handle: StreamHandler, writers: set[asyncio.StreamWriter]) -> AsyncIterator[str]:
    """A raw TCP origin on 127.0.0.1 port 0 for bytes no well-behaved server sends; yields its
    URL and, on exit, closes the connections ``handle`` registered in ``writers``."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()
