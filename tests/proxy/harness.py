"""What the end-to-end proxy tests look at: responses as a client saw them, their parsed
Cache-Status (RFC 9211), and origins that misbehave at the byte level.

The proxy runs for real (``edgeproxy.proxy.runtime.running_proxy``) in front of a real origin on
127.0.0.1 port 0; nothing here imitates either side.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

from tests.support.origin import serve_streams

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class CacheStatusView:
    """One parsed Cache-Status list member: ``edgeproxy; fwd=uri-miss; fwd-status=200; stored``."""

    raw: str
    cache: str
    params: Mapping[str, str | bool]

    @classmethod
    def parse(cls, raw: str | None) -> CacheStatusView:
        if raw is None:
            raise AssertionError("the response has no Cache-Status header (RFC 9211)")
        cache, *members = (part.strip() for part in raw.split(";"))
        params: dict[str, str | bool] = {}
        for member in members:
            name, eq, value = member.partition("=")
            params[name] = value.strip('"') if eq else True
        return cls(raw, cache, params)

    @property
    def hit(self) -> bool:
        return self.params.get("hit") is True

    @property
    def fwd(self) -> str | None:
        value = self.params.get("fwd")
        return value if isinstance(value, str) else None

    @property
    def fwd_status(self) -> int | None:
        value = self.params.get("fwd-status")
        return int(value) if isinstance(value, str) else None

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return int(value) if isinstance(value, str) else None

    @property
    def stored(self) -> bool:
        return self.params.get("stored") is True

    @property
    def collapsed(self) -> bool:
        return self.params.get("collapsed") is True

    @property
    def detail(self) -> str | None:
        value = self.params.get("detail")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Seen:
    """A complete response as the client received it (body read to the end)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def cache_status(self) -> CacheStatusView:
        return CacheStatusView.parse(self.headers.get("Cache-Status"))

    @property
    def age(self) -> int:
        raw = self.headers.get("Age")
        if raw is None:
            raise AssertionError(f"no Age header; headers were {dict(self.headers)}")
        return int(raw)

    def __str__(self) -> str:
        return f"{self.status} Cache-Status: {self.headers.get('Cache-Status')!r} body[:60]={self.body[:60]!r}"


@dataclass(slots=True)
class ProxyClient:
    """Sends requests to the proxy with the target byte-exact (no URL normalization)."""

    session: aiohttp.ClientSession
    base_url: str

    async def request(self, method: str, target: str, *, headers: HeaderInput = (), data: bytes | None = None) -> Seen:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        url = URL(self.base_url + target, encoded=True)
        async with self.session.request(method, url, headers=pairs, data=data, allow_redirects=False) as response:
            body = await response.read()
            return Seen(response.status, response.headers, body)

    async def get(self, target: str, *, headers: HeaderInput = ()) -> Seen:
        return await self.request("GET", target, headers=headers)

    async def head(self, target: str, *, headers: HeaderInput = ()) -> Seen:
        return await self.request("HEAD", target, headers=headers)


@asynccontextmanager
async def proxy_client(base_url: str) -> AsyncIterator[ProxyClient]:
    """A keep-alive client for ``base_url`` that does not decompress (bodies are compared as
    relayed). Exit it before the proxy stops, as real clients disconnect before a proxy drains."""
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        yield ProxyClient(session, base_url)


@dataclass(slots=True)
class InFlight:
    """aiohttp middleware counting requests the origin is handling at once, and the peak,
    so a test can tell "the waiters went to the origin together" from "one after another"."""

    now: int = 0
    peak: int = 0

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await handler(request)
        finally:
            self.now -= 1


@dataclass(slots=True)
class RawOrigin:
    """An origin that answers every request with fixed bytes and then closes the connection,
    for responses no well-behaved server would send (e.g. a body shorter than its Content-Length)."""

    response: bytes
    hold: float = 0.0
    """Seconds to keep the connection open after the response bytes (a stalled origin), unless
    the proxy hangs up first."""
    requests: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def serving(self) -> AbstractAsyncContextManager[str]:
        return serve_streams(self._answer, self._writers)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            self.requests += 1
            writer.write(self.response)
            await writer.drain()
            if self.hold:
                await asyncio.wait_for(reader.read(), self.hold)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


def ttl_near(lifetime: int) -> range:
    """Cache-Status ttl values acceptable just after a fill with ``lifetime``: the origin's Date
    has one-second precision (apparent age up to 1 s, RFC 9111 §4.2.3) and ttl is truncated."""
    return range(lifetime - 2, lifetime + 1)


def unused_url() -> str:
    """A loopback URL where nothing listens (the port was just free), for connection-refused tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def wait_until(condition: Callable[[], bool], *, timeout: float = 3.0, what: str) -> None:
    """Poll ``condition`` until true; fail saying ``what`` did not happen within ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.02)
