"""Hostile pacing (slowloris, stalled uploads, slow readers), the per-worker connection cap and
graceful drain (issue 9). Timeouts are ~0.5 s here (``FAST_LIMITS``)."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace

import aiohttp
import pytest

from edgeproxy.proxy.runtime import ProxyConfig, ProxyRuntime
from tests.server.conftest import FAST_LIMITS, StartProxy
from tests.support.rawhttp import parse_responses

HOST = b"Host: a.example\r\n"
GRACE = 3.0
"""Upper bound for "promptly": a timeout of 0.5 s must have acted well within this."""


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = GRACE) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or ``timeout`` passes (False)."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                return bytes(received), True
            received += chunk
    except TimeoutError:
        return bytes(received), False
    except ConnectionResetError:
        return bytes(received), True
    return bytes(received), False


async def test_slowloris_head_is_cut_after_the_header_timeout(proxy: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = time.monotonic()
    writer.write(b"GET /echo HTTP/1.1\r\n" + HOST)

    async def trickle() -> None:
        # One header byte every 0.1 s: never complete, always active.
        for _ in range(int(GRACE * 10)):
            await asyncio.sleep(0.1)
            writer.write(b"X")

    trickling = asyncio.create_task(trickle())
    try:
        data, closed = await read_until_closed(reader)
    finally:
        trickling.cancel()
        writer.close()
    assert closed and time.monotonic() - started < GRACE
    assert [r.status for r in parse_responses(data)] == [408]


async def test_connection_that_never_sends_a_request_gets_408(proxy: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    data, closed = await read_until_closed(reader)
    writer.close()
    assert closed and [r.status for r in parse_responses(data)] == [408]


async def test_stalled_request_body_gets_408(proxy: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
    data, closed = await read_until_closed(reader)
    writer.close()
    assert closed and [r.status for r in parse_responses(data)] == [408]


async def test_idle_keep_alive_connection_is_closed_silently(proxy: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /echo HTTP/1.1\r\n" + HOST + b"\r\n")
    data, closed = await read_until_closed(reader)
    writer.close()
    assert closed
    assert [r.status for r in parse_responses(data)] == [200]  # and nothing after it


async def test_client_that_stops_reading_is_cut_after_the_send_timeout(proxy: ProxyRuntime):
    size = 32 * 1024 * 1024
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", proxy.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(b"GET /big?size=%d HTTP/1.1\r\n" % size + HOST + b"\r\n")
    await asyncio.sleep(FAST_LIMITS.send_timeout + 1.0)  # never reading meanwhile
    data, closed = await read_until_closed(reader, timeout=10)
    writer.close()
    assert closed and len(data) < size


async def test_connections_beyond_the_cap_are_closed_at_once(start_proxy: StartProxy):
    limits = replace(FAST_LIMITS, keepalive_timeout=10.0, header_timeout=10.0)
    async with start_proxy(limits=limits) as proxy:
        held = []
        for _ in range(limits.max_connections):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET /echo HTTP/1.1\r\n" + HOST + b"\r\n")
            await reader.readuntil(b"\r\n\r\n")  # admitted and answered
            held.append((reader, writer))
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), GRACE) == b""
        writer.close()
        held.pop()[1].close()  # one slot frees up
        deadline = time.monotonic() + GRACE
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET /echo HTTP/1.1\r\n" + HOST + b"\r\n")
            line = await asyncio.wait_for(reader.readline(), GRACE)
            writer.close()
            if line or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert line.startswith(b"HTTP/1.1 200")
        for _, w in held:
            w.close()


@pytest.fixture
async def runtime(origin_url: str) -> ProxyRuntime:
    """A started proxy the test stops itself (``stop`` is what is under test)."""
    proxy = ProxyRuntime(ProxyConfig(origin=origin_url, port=0, policies=None, limits=FAST_LIMITS))
    await proxy.start()
    return proxy


async def test_drain_finishes_requests_in_flight_and_closes_idle_connections_at_once(runtime: ProxyRuntime):
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", runtime.port)
    idle_writer.write(b"GET /echo HTTP/1.1\r\n" + HOST + b"\r\n")
    await idle_reader.readuntil(b"\r\n\r\n")
    async with aiohttp.ClientSession() as session:
        slow = asyncio.create_task(session.get(runtime.url + "/slow?delay=0.6"))
        await asyncio.sleep(0.2)  # the slow request is in flight
        stopping = asyncio.create_task(runtime.stop(drain_timeout=GRACE))
        idle_rest, idle_closed = await read_until_closed(idle_reader, timeout=0.3)
        assert idle_closed and not slow.done()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", runtime.port)  # no longer accepting
        response = await slow
        assert response.status == 200 and await response.text() == "slow"
        assert response.headers["Connection"] == "close"
        await asyncio.wait_for(stopping, GRACE)
    idle_writer.close()


async def test_drain_aborts_what_outlives_the_drain_timeout(runtime: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.port)
    writer.write(b"GET /slow?delay=2 HTTP/1.1\r\n" + HOST + b"\r\n")
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await runtime.stop(drain_timeout=0.3)
    assert time.monotonic() - started < 1.5
    data, closed = await read_until_closed(reader)
    writer.close()
    assert closed and data == b""
