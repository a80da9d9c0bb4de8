"""HTTP/1.1 connection handling toward clients (RFC 9112 §9): pipelining, HTTP/1.0 framing,
Connection: close."""

from __future__ import annotations

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.proxy.conftest import StartProxy
from tests.proxy.harness import RawOrigin
from tests.support.origin import ProgrammableOrigin
from tests.support.rawhttp import exchange

CHUNKED_UNCACHEABLE = (
    b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


async def test_pipelined_requests_are_answered_in_order(proxy: ProxyRuntime, origin: ProgrammableOrigin):
    # RFC 9112 §9.3.2: responses go back in request order, even when the first is the slowest.
    origin.set("/slow", headers={"Cache-Control": "no-store"}, body="first", delay=0.3)
    origin.set("/fast", headers={"Cache-Control": "max-age=60"}, body="second")
    pipelined = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: a.example\r\n\r\n".encode() for path in ("/slow", "/fast", "/slow")
    )
    answer = await exchange("127.0.0.1", proxy.port, pipelined, idle=1.0)
    assert [(r.status, r.body) for r in answer.responses] == [(200, b"first"), (200, b"second"), (200, b"first")]


async def test_http_1_0_client_gets_a_close_delimited_body_never_chunked(start_proxy: StartProxy):
    raw = RawOrigin(CHUNKED_UNCACHEABLE)
    async with raw.serving() as url, start_proxy(url) as proxy:
        answer = await exchange("127.0.0.1", proxy.port, b"GET /b HTTP/1.0\r\nHost: a.example\r\n\r\n", idle=1.0)
    # RFC 9112 §7.1: chunked is HTTP/1.1 only; without a length the body ends at the close.
    assert answer.closed
    response = answer.first
    assert response.header("transfer-encoding") is None
    assert response.body == b"hello world"


async def test_connection_close_is_honoured(proxy: ProxyRuntime, origin: ProgrammableOrigin):
    origin.set("/a", headers={"Cache-Control": "max-age=60"}, body="x")
    answer = await exchange(
        "127.0.0.1", proxy.port, b"GET /a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n", idle=2.0
    )
    assert answer.closed and [r.status for r in answer.responses] == [200]
    assert answer.first.header("connection") == "close"


async def test_chunked_request_body_reaches_the_origin_whole(proxy: ProxyRuntime, origin: ProgrammableOrigin):
    origin.set("/upload", status=201, body="ok")
    request = (
        b"POST /upload HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    answer = await exchange("127.0.0.1", proxy.port, request, idle=1.0)
    assert answer.first.status == 201
    assert origin.last("/upload").body == b"hello world"
