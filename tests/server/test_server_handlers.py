"""The server with plain handler functions: the synchronous fast path (``ServerContext.fast_path``)
is framed, observed and ordered exactly like the asynchronous path, and a handler or reply stream
that fails never leaves the client with a complete-looking answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from edgeproxy.cache.phases import CachePhase
from edgeproxy.proxy.protocol import EdgeProtocol
from edgeproxy.proxy.reply import Incoming, Reply
from edgeproxy.proxy.server import ServerContext
from tests.support.rawhttp import exchange

HOST = b"Host: a.example\r\n"


class Site:
    """Paths under /fast are answered by the fast path, the rest by the async handler (which
    takes a loop turn or two); every observed reply is recorded."""

    def __init__(self) -> None:
        self.observed: list[tuple[str, CachePhase]] = []

    def fast_path(self, inc: Incoming) -> Reply | None:
        if inc.head.path == "/boom":
            raise RuntimeError("a fast path bug must not cost the request")
        if not inc.head.path.startswith("/fast"):
            return None
        body = f"fast {inc.head.target}".encode()
        return Reply(200, [("content-type", "text/plain")], body=body, phase=CachePhase.HIT)

    async def handler(self, inc: Incoming) -> Reply:
        await asyncio.sleep(0.05 if inc.head.path == "/slow" else 0)
        if inc.head.path == "/raises":
            raise RuntimeError("a handler bug")
        if inc.head.path == "/breaks-mid-body":
            return Reply(200, [("content-type", "text/plain")], stream=_breaking_stream())
        return Reply(200, [("content-type", "text/plain")], body=f"async {inc.head.target}".encode())

    def on_reply(self, inc: Incoming, reply: Reply, seconds: float) -> None:
        self.observed.append((inc.head.target, reply.phase))


async def _breaking_stream() -> AsyncIterator[bytes]:
    yield b"first part"
    raise RuntimeError("the stream broke")


@asynccontextmanager
async def serving(site: Site) -> AsyncIterator[int]:
    context = ServerContext(handler=site.handler, fast_path=site.fast_path, on_reply=site.on_reply)
    server = await asyncio.get_running_loop().create_server(lambda: EdgeProtocol(context), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await context.connections.drain(1.0)


def get(target: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n"


async def test_fast_replies_are_framed_and_observed_like_any_other():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/fast?1") + get(b"/fast?2"), idle=0.2)
    assert [r.body for r in answer.responses] == [b"fast /fast?1", b"fast /fast?2"]
    assert all(r.header("content-length") == str(len(r.body)) for r in answer.responses)
    assert answer.responses[0].header("server-timing").startswith('cache;desc="hit"')
    assert not answer.closed
    assert site.observed == [("/fast?1", CachePhase.HIT), ("/fast?2", CachePhase.HIT)]


async def test_fast_path_never_overtakes_a_request_in_flight():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/slow") + get(b"/fast") + get(b"/other"), idle=0.3)
    # Queued behind /slow, /fast is answered in its turn by the async path.
    assert [r.body for r in answer.responses] == [b"async /slow", b"async /fast", b"async /other"]
    assert [target for target, _ in site.observed] == ["/slow", "/fast", "/other"]


async def test_requests_the_fast_path_declines_or_fails_take_the_async_path():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/other") + get(b"/boom"), idle=0.2)
    assert [r.body for r in answer.responses] == [b"async /other", b"async /boom"]


async def test_fast_head_reply_has_the_length_but_no_body():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/fast", b"HEAD") + get(b"/fast?after"), idle=0.2)
    head, _, rest = answer.raw.partition(b"\r\n\r\n")
    assert b"\r\ncontent-length: 10" in head
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"fast /fast?after")


async def test_handler_failure_is_a_500_and_closes():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/raises") + get(b"/other"), idle=0.2)
    assert [r.status for r in answer.responses] == [500]
    assert answer.first.header("cache-control") == "no-store" and answer.closed


async def test_stream_failing_mid_body_aborts_without_the_last_chunk():
    site = Site()
    async with serving(site) as port:
        answer = await exchange("127.0.0.1", port, get(b"/breaks-mid-body"), idle=0.5)
    assert answer.closed
    assert answer.raw.startswith(b"HTTP/1.1 200") and b"first part" in answer.raw
    assert not answer.raw.endswith(b"0\r\n\r\n")  # never the terminating chunk
    assert answer.responses == ()  # so no client can take it for a complete response
