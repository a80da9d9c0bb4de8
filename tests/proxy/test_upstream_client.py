"""The origin client itself (edgeproxy/proxy/upstream.py over originconn.py), against real loopback
origins: aiohttp apps for well-behaved servers, raw asyncio servers for the bytes no
well-behaved server sends (malformed, truncated, chunked, close-delimited, interim 1xx,
unsolicited). Errors are asserted by ``UpstreamFailure`` kind, since that decides what the
edge does (stale, 502 or 504)."""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from edgeproxy.policies.model import OriginSettings
from edgeproxy.proxy.originconn import READ_BUFFER
from edgeproxy.proxy.upstream import Upstream, UpstreamError, UpstreamFailure, UpstreamResponse
from tests.proxy.harness import unused_url
from tests.support.origin import serve_app

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# ------------------------------------------------------------------ raw origins


@dataclass(eq=False)
class Peer:
    """One connection to a raw origin, as its handler sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> tuple[bytes, bytes] | None:
        """The next request's head and body (Content-Length or chunked), or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return head, body
                body += data[:-2]
        for line in lowered.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                return head, await self.reader.readexactly(int(line.split(b":")[1]))
        return head, b""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@dataclass(eq=False)
class RawOrigin:
    """A loopback origin whose ``handle(peer)`` coroutine speaks bytes; counts connections."""

    handle: Callable[[Peer], Awaitable[None]]
    connections: int = 0
    url: str = ""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(Peer(reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test ended (a cancelled task here would be logged)
        finally:
            writer.close()
            self._tasks.discard(task)


@asynccontextmanager
async def raw_origin(handle: Callable[[Peer], Awaitable[None]]) -> AsyncIterator[RawOrigin]:
    origin = RawOrigin(handle)
    server = await asyncio.start_server(origin._serve, "127.0.0.1", 0)
    origin.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield origin
    finally:
        server.close()
        for task in list(origin._tasks):
            task.cancel()
        await asyncio.gather(*origin._tasks, return_exceptions=True)
        await server.wait_closed()


def answering(*responses: bytes, then_close: bool = False) -> Callable[[Peer], Awaitable[None]]:
    """A handler answering each request on a connection with the next of ``responses``
    (the last one repeats), keeping the connection open unless ``then_close``."""

    async def handle(peer: Peer) -> None:
        n = 0
        while await peer.request() is not None:
            await peer.send(responses[min(n, len(responses) - 1)])
            n += 1
            if then_close:
                return

    return handle


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ------------------------------------------------------------------ fixtures and helpers


@asynccontextmanager
async def started(**options: object) -> AsyncIterator[Upstream]:
    upstream = Upstream(**options)  # type: ignore[arg-type]
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with started() as pool:
        yield pool


async def get(upstream: Upstream, url: str, target: str = "/", **settings: float) -> tuple[UpstreamResponse, bytes]:
    response = await upstream.send(OriginSettings(url, **settings), "GET", target, (("host", "shop.example"),))
    body, complete = await response.read_up_to(1 << 30)
    assert complete
    return response, body


async def failure(awaitable: Awaitable[object]) -> UpstreamFailure:
    with pytest.raises(UpstreamError) as raised:
        await awaitable
    return raised.value.kind


# ------------------------------------------------------------------ the request on the wire


async def test_the_request_carries_what_the_caller_gave_and_its_framing_only(upstream: Upstream):
    origin_seen: list[bytes] = []

    async def handle(peer: Peer) -> None:
        while (got := await peer.request()) is not None:
            origin_seen.append(got[0] + got[1])
            await peer.send(OK)

    async with raw_origin(handle) as origin:
        settings = OriginSettings(origin.url)
        headers = (("x-a", "1"), ("host", "shop.example"), ("x-a", "2"), ("cookie", "name=J\xc3\xbcrgen; raw=\xe9"))
        await (await upstream.send(settings, "GET", "/p?q=1", headers)).read_up_to(10)
        await (await upstream.send(settings, "POST", "/form", ())).read_up_to(10)
        await (await upstream.send(settings, "PUT", "/blob", (), b"payload")).read_up_to(10)
    get_request, bare_post, put = origin_seen
    # RFC 9112 §3.2: Host first; the caller's fields in order; their bytes exactly as received
    # (latin-1 text, one char per byte), including a lone non-UTF-8 byte.
    assert get_request == (
        b"GET /p?q=1 HTTP/1.1\r\nHost: shop.example\r\nx-a: 1\r\nx-a: 2\r\n"
        b"cookie: name=J\xc3\xbcrgen; raw=\xe9\r\n\r\n"
    )
    port = origin.url.rsplit(":", 1)[1]
    # No Host from the caller: the origin's authority. A bodiless POST says Content-Length: 0.
    assert bare_post == f"POST /form HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode()
    assert put == f"PUT /blob HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 7\r\n\r\npayload".encode()


async def test_nothing_is_added_for_an_aiohttp_origin_either(upstream: Upstream):
    seen: list[list[tuple[bytes, bytes]]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(list(request.raw_headers))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serve_app(app) as url:
        response, body = await get(upstream, url)
    assert body == b"ok"
    names = [name.lower() for name, _ in seen[0]]
    assert names == [b"host"], seen[0]  # no User-Agent, Accept, Accept-Encoding, Content-Type


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_streamed_request_body_keeps_a_declared_length_or_goes_chunked(upstream: Upstream, declared: bool):
    received: list[tuple[bytes, bytes]] = []

    async def handle(peer: Peer) -> None:
        while (got := await peer.request()) is not None:
            received.append(got)
            await peer.send(OK)

    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"", b"two,", b"three"):
            await asyncio.sleep(0)
            yield part

    headers = (("content-length", "13"),) if declared else ()
    async with raw_origin(handle) as origin:
        settings = OriginSettings(origin.url)
        for _ in range(2):  # the connection is reused after a streamed upload
            response = await upstream.send(settings, "POST", "/up", headers, body())
            assert await response.read_up_to(10) == (b"ok", True)
    assert [b for _, b in received] == [b"one,two,three"] * 2
    head = received[0][0].lower()
    assert (b"content-length: 13" in head) is declared
    assert (b"transfer-encoding: chunked" in head) is not declared
    assert origin.connections == 1


async def test_an_answer_before_the_upload_ends_is_the_response(upstream: Upstream):
    # An origin may refuse an upload (413, 401) before reading it; that answer is what the client
    # gets, and the connection, whose request was never finished, is not reused.
    async def handle(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await peer.send(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await asyncio.sleep(0.5)

    gate = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await gate.wait()
        yield b"y" * 10

    async with raw_origin(handle) as origin:
        response = await upstream.send(OriginSettings(origin.url), "PUT", "/up", (("content-length", "20"),), body())
        assert response.status == 413
        assert await response.read_up_to(100) == (b"big", True)
        gate.set()
        await get(upstream, origin.url)
    assert origin.connections == 2


# ------------------------------------------------------------------ the response as parsed


async def test_response_fields_are_lower_cased_latin1_and_repeated_in_order(upstream: Upstream):
    head = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Name: caf\xc3\xa9\r\nSet-Cookie: b=2\r\n"
        b"Connection: keep-alive, X-Hop\r\nX-Hop: dropped\r\nKeep-Alive: timeout=5\r\n"
        b"X-Folded: one\r\n two\r\nX-Trailing: v \t\r\nContent-Length: 5\r\n\r\nhello"
    )
    async with raw_origin(answering(head)) as origin:
        response, body = await get(upstream, origin.url)
    assert (response.status, body, response.content_length) == (200, b"hello", 5)
    # Hop-by-hop fields (and those Connection names) are not the response's (RFC 9110 §7.6.1);
    # obs-fold is unfolded (RFC 9112 §5.2); trailing whitespace is not part of a value.
    assert response.headers == (
        ("set-cookie", "a=1"),
        ("x-name", "caf\xc3\xa9"),
        ("set-cookie", "b=2"),
        ("x-folded", "one two"),
        ("x-trailing", "v"),
        ("content-length", "5"),
    )


async def test_a_chunked_body_is_decoded_and_its_trailers_dropped(upstream: Upstream):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with raw_origin(answering(chunked)) as origin:
        first, body = await get(upstream, origin.url)
        second, again = await get(upstream, origin.url)
    assert body == again == b"hello world"
    assert first.content_length is None
    assert all(name != "x-trailer" for name, _ in first.headers)
    assert origin.connections == 1


async def test_a_body_without_length_ends_with_the_connection(upstream: Upstream):
    # RFC 9112 §6.3 ¶8: neither Content-Length nor chunked: the close delimits the body.
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\n\r\nuntil ")
        await asyncio.sleep(0.05)
        await peer.send(b"the end")

    async with raw_origin(handle) as origin:
        response, body = await get(upstream, origin.url)
        await get(upstream, origin.url)
    assert (body, response.content_length) == (b"until the end", None)
    assert origin.connections == 2


async def test_interim_responses_are_skipped(upstream: Upstream):
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
    )
    async with raw_origin(answering(interim)) as origin:
        response, body = await get(upstream, origin.url)
        await get(upstream, origin.url)
    assert (response.status, body) == (201, b"done")
    assert [name for name, _ in response.headers] == ["content-length"]
    assert origin.connections == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_after_204_or_304_and_the_connection_is_reused(upstream: Upstream, status: int):
    async with raw_origin(answering(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status, OK)) as origin:
        response, body = await get(upstream, origin.url)
        _, after = await get(upstream, origin.url)
    assert (response.status, body, after) == (status, b"", b"ok")
    assert origin.connections == 1


async def test_a_head_response_has_no_body_whatever_its_length_says(upstream: Upstream):
    async with raw_origin(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", OK)) as origin:
        response = await upstream.send(OriginSettings(origin.url), "HEAD", "/", ())
        assert response.content_length == 1000
        assert await response.read_up_to(10) == (b"", True)
        _, after = await get(upstream, origin.url)
    assert after == b"ok"
    assert origin.connections == 1


@pytest.mark.parametrize(
    "head",
    [
        b"this is not HTTP at all\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: one\x00two\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: one\rX-Injected: cr\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A : one\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n",
    ],
    ids=["not-http", "nul", "bare-cr", "space-before-colon", "two-lengths", "length-and-chunked", "101", "huge-head"],
)
async def test_a_malformed_response_head_is_a_protocol_error(upstream: Upstream, head: bytes):
    async with raw_origin(answering(head)) as origin:
        assert await failure(get(upstream, origin.url)) is UpstreamFailure.PROTOCOL
    assert origin.connections == 1  # a fresh connection is not retried


# ------------------------------------------------------------------ bodies cut short


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    ],
    ids=["short-length", "no-last-chunk", "bad-chunk"],
)
@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_body_that_ends_early_is_truncated(upstream: Upstream, response: bytes, how: str):
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(response)
        await asyncio.sleep(0.05)
        if how == "reset":
            reset(peer.writer)

    async with raw_origin(handle) as origin:
        streamed = await upstream.send(OriginSettings(origin.url), "GET", "/", ())
        assert await failure(streamed.read_up_to(1 << 20)) is UpstreamFailure.TRUNCATED
        via_rest = await upstream.send(OriginSettings(origin.url), "GET", "/", ())
        with pytest.raises(UpstreamError) as raised:
            async for _ in via_rest.rest():
                pass
    assert raised.value.kind is UpstreamFailure.TRUNCATED


async def test_silence_is_a_timeout_before_the_head_and_mid_body(upstream: Upstream):
    async def stall_head(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(5)

    async def stall_body(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await asyncio.sleep(5)

    async with raw_origin(stall_head) as origin:
        assert await failure(get(upstream, origin.url, read_timeout=0.2)) is UpstreamFailure.TIMEOUT
    async with raw_origin(stall_body) as origin:
        response = await upstream.send(OriginSettings(origin.url, read_timeout=0.2), "GET", "/", ())
        assert await failure(response.read_up_to(100)) is UpstreamFailure.TIMEOUT


async def test_the_read_timeout_is_silence_between_bytes_not_the_whole_body(upstream: Upstream):
    async def drip(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for byte in b"drips!":
            await asyncio.sleep(0.1)
            await peer.send(bytes([byte]))

    async with raw_origin(drip) as origin:
        _, body = await get(upstream, origin.url, read_timeout=0.3)
    assert body == b"drips!"


async def test_connection_refused_is_a_connect_failure(upstream: Upstream):
    assert await failure(get(upstream, unused_url())) is UpstreamFailure.CONNECT


# ------------------------------------------------------------------ reuse and the pool


@pytest.mark.parametrize(
    "response, reused",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", True),
    ],
    ids=["1.1", "connection-close", "1.0", "1.0-keep-alive"],
)
async def test_a_connection_is_reused_only_when_the_response_allows(upstream: Upstream, response: bytes, reused: bool):
    async with raw_origin(answering(response)) as origin:
        for _ in range(3):
            assert (await get(upstream, origin.url))[1] == b"ok"
    assert origin.connections == (1 if reused else 3)


async def test_bytes_arriving_on_an_idle_pooled_connection_retire_it(upstream: Upstream):
    # Response splitting or a request smuggled into the origin: an unsolicited response must
    # never become the answer to the next request sent on that connection.
    async def desync(peer: Peer) -> None:
        while (got := await peer.request()) is not None:
            target = got[0].split(b" ")[1]
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
            if target == b"/split":
                await asyncio.sleep(0.05)
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")

    async with raw_origin(desync) as origin:
        await get(upstream, origin.url, "/split")
        await asyncio.sleep(0.2)
        _, body = await get(upstream, origin.url, "/victim")
    assert body == b"/victim"
    assert origin.connections == 2


async def test_bytes_right_behind_a_complete_response_retire_the_connection(upstream: Upstream):
    async with raw_origin(answering(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON", OK)) as origin:
        first = await get(upstream, origin.url)
        second = await get(upstream, origin.url)
    assert first[1] == second[1] == b"ok"
    assert origin.connections == 2


async def test_a_connection_idle_beyond_the_bound_is_not_reused():
    async with started(idle_timeout=0.2) as upstream, raw_origin(answering(OK)) as origin:
        await get(upstream, origin.url)
        await get(upstream, origin.url)
        assert origin.connections == 1
        await asyncio.sleep(0.35)
        await get(upstream, origin.url)
    assert origin.connections == 2


async def test_requests_wait_for_a_free_connection_at_the_pool_cap():
    release = asyncio.Event()

    async def handle(peer: Peer) -> None:
        while (got := await peer.request()) is not None:
            if got[0].startswith(b"GET /slow"):
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsl")
                await release.wait()
                await peer.send(b"ow")
            else:
                await peer.send(OK)

    async with started(pool_size=1) as upstream, raw_origin(handle) as origin:
        settings = OriginSettings(origin.url, connect_timeout=0.3)
        slow = await upstream.send(settings, "GET", "/slow", ())
        # The only connection is busy past the connect timeout: TIMEOUT, as aiohttp's pool did.
        assert await failure(upstream.send(settings, "GET", "/next", ())) is UpstreamFailure.TIMEOUT
        waiting = asyncio.create_task(get(upstream, origin.url, "/next", connect_timeout=5))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        release.set()
        assert await slow.read_up_to(10) == (b"slow", True)
        _, body = await waiting
    assert body == b"ok"
    assert origin.connections == 1


async def test_a_closed_connection_frees_its_slot_for_a_waiter():
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with started(pool_size=1) as upstream, raw_origin(answering(closing, then_close=True)) as origin:
        replies = await asyncio.gather(*(get(upstream, origin.url, connect_timeout=2) for _ in range(4)))
    assert [body for _, body in replies] == [b"ok"] * 4
    assert origin.connections == 4


async def test_a_safe_request_on_a_pooled_connection_the_origin_closed_is_retried_once(upstream: Upstream):
    # The origin's keep-alive timeout closing a connection just as a request is written on it:
    # RFC 9110 §9.2.2 lets a GET be retried; a POST is not (it may have taken effect).
    async def one_per_connection_then_hang_up(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        await peer.request()  # the next request on this connection is never answered

    async with raw_origin(one_per_connection_then_hang_up) as origin:
        await get(upstream, origin.url)
        _, body = await get(upstream, origin.url)
        assert (body, origin.connections) == (b"ok", 2)
        post = upstream.send(OriginSettings(origin.url), "POST", "/", (), b"x")
        assert await failure(post) is UpstreamFailure.RESET
        assert origin.connections == 2


async def test_a_safe_request_is_retried_once_only_and_only_on_a_reused_connection(upstream: Upstream):
    async def hang_up(peer: Peer) -> None:
        await peer.request()

    async with raw_origin(hang_up) as origin:
        assert await failure(get(upstream, origin.url)) is UpstreamFailure.RESET
    assert origin.connections == 1


async def test_a_mis_framed_answer_on_a_reused_connection_is_retried(upstream: Upstream):
    async def garbage_second(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        await peer.request()
        await peer.send(b"garbage\r\n\r\n")
        await asyncio.sleep(0.5)

    async with raw_origin(garbage_second) as origin:
        await get(upstream, origin.url)
        _, body = await get(upstream, origin.url)
    assert (body, origin.connections) == (b"ok", 2)


# ------------------------------------------------------------------ streaming and giving up


async def test_a_large_body_streams_with_bounded_buffering(upstream: Upstream):
    size = 8 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)

    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + payload)

    async with raw_origin(handle) as origin:
        response = await upstream.send(OriginSettings(origin.url, read_timeout=0.3), "GET", "/big", ())
        prefix, complete = await response.read_up_to(1000)
        assert not complete
        await asyncio.sleep(0.5)  # a slow reader, longer than the read timeout: not the origin's fault
        exchange = response._exchange  # noqa: SLF001 (white-box: how much waits unread)
        assert exchange.buffered <= 2 * READ_BUFFER, exchange.buffered
        received = bytearray(prefix)
        async for chunk in response.rest():
            received += chunk
        assert bytes(received) == payload
        await get(upstream, origin.url, "/after")
    assert origin.connections == 1


async def test_a_response_given_up_before_its_end_closes_its_connection(upstream: Upstream):
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000

    async def handle(peer: Peer) -> None:
        while (got := await peer.request()) is not None:
            await peer.send(big if got[0].startswith(b"GET /big") else OK)

    async with raw_origin(handle) as origin:
        settings = OriginSettings(origin.url)
        closed = await upstream.send(settings, "GET", "/big", ())
        await closed.read_up_to(10)
        closed.close()
        await get(upstream, origin.url)
        assert origin.connections == 2

        # Dropped unread, or dropped mid-stream (as when the client hangs up during a relay).
        dropped = await upstream.send(settings, "GET", "/big", ())
        del dropped
        await get(upstream, origin.url)
        assert origin.connections == 3
        streamed = await upstream.send(settings, "GET", "/big", ())
        stream = streamed.rest()
        await stream.__anext__()
        del streamed, stream
        gc.collect()
        await asyncio.sleep(0.05)  # asyncio closes a collected async generator in a task
        await get(upstream, origin.url)
        assert origin.connections == 4


async def test_close_of_a_complete_response_keeps_its_connection(upstream: Upstream):
    async with raw_origin(answering(OK)) as origin:
        response = await upstream.send(OriginSettings(origin.url), "GET", "/", ())
        await asyncio.sleep(0.05)  # the body arrived (with the head) and the connection went back
        response.close()
        await get(upstream, origin.url)
    assert origin.connections == 1


# ------------------------------------------------------------------ https


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_an_https_origin_is_verified_and_sent_its_name(certificate: tuple[Path, Path]):
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []

    def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_side.sni_callback = remember

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.scheme} {request.host}")

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_side)
    await site.start()
    port = runner.addresses[0][1]
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with started(ssl_context=trusting) as upstream:
            response = await upstream.send(OriginSettings(f"https://localhost:{port}"), "GET", "/", ())
            assert await response.read_up_to(100) == (f"https localhost:{port}".encode(), True)
        assert names == ["localhost"]
        async with started() as untrusting:  # the system's trust store does not know our certificate
            assert await failure(get(untrusting, f"https://localhost:{port}")) is UpstreamFailure.CONNECT
    finally:
        await runner.cleanup()
