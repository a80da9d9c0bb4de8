"""Requests the proxy must refuse before they reach the origin (RFC 9112 §3.2, §6.1, §6.3),
written as raw bytes because a well-behaved client library will not send them."""

from __future__ import annotations

import asyncio

import pytest

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.support.origin import ProgrammableOrigin
from tests.support.rawhttp import exchange

CLIENT_PATIENCE = 2.0
"""How long a client holding its body waits for 100 Continue (curl: 1 s) before sending anyway."""


async def send_raw(proxy: ProxyRuntime, data: bytes) -> int:
    answer = await exchange("127.0.0.1", proxy.port, data, idle=0.3)
    return answer.first.status


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /a HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET /a HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", id="two-hosts"),
        pytest.param(
            b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="content-length-and-chunked",
        ),
        pytest.param(
            b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            id="conflicting-content-lengths",
        ),
        pytest.param(b"GET /a HTTP/1.1\r\nHost: a.example\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n", id="huge-field"),
    ],
)
async def test_malformed_request_is_refused_and_never_forwarded(
    proxy: ProxyRuntime, origin: ProgrammableOrigin, request_bytes: bytes
):
    origin.set("/a", headers={"Cache-Control": "max-age=60"}, body="x")
    status = await send_raw(proxy, request_bytes)
    assert status in (400, 431), status
    assert origin.count("/a") == 0


async def test_get_body_is_not_forwarded(proxy: ProxyRuntime, origin: ProgrammableOrigin):
    origin.set("/a", headers={"Cache-Control": "no-store"}, body="x")
    status = await send_raw(proxy, b"GET /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello")
    assert status == 200
    assert origin.last("/a").body == b""


async def test_absolute_form_target_goes_to_the_configured_origin_with_its_path(
    proxy: ProxyRuntime, origin: ProgrammableOrigin
):
    # RFC 9112 §3.2.2: a server must accept absolute-form; the host in it replaces Host. A reverse
    # proxy still sends the request to its own origin, as origin-form.
    origin.set("/a", headers={"Cache-Control": "no-store"}, body="x")
    status = await send_raw(proxy, b"GET http://a.example/a?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert status == 200
    assert origin.last("/a").path_qs == "/a?q=1"


@pytest.mark.parametrize("request_line", [b"OPTIONS * HTTP/1.1", b"CONNECT a.example:443 HTTP/1.1"])
async def test_non_origin_form_targets_get_a_clean_answer(proxy: ProxyRuntime, request_line: bytes):
    # RFC 9112 §3.2.3-§3.2.4: asterisk-form and authority-form are legal; a reverse proxy may
    # answer them itself or refuse them, but must not fail with an internal error.
    status = await send_raw(proxy, request_line + b"\r\nHost: a.example\r\n\r\n")
    assert status in (200, 204, 400, 405, 501), status


async def test_expect_100_continue_gets_an_interim_response_before_the_body_is_sent(
    proxy: ProxyRuntime, origin: ProgrammableOrigin
):
    # RFC 9110 §10.1.1: a client may hold the body until it sees 100 (curl waits 1 s per upload);
    # the proxy answers 100 itself or relays the origin's, but must not leave the client waiting.
    origin.set("/upload", status=201, body="stored")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"PUT /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        await writer.drain()
        try:
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_PATIENCE)
        except TimeoutError:
            pytest.fail(f"no 100 Continue within {CLIENT_PATIENCE}s of a complete header section")
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(b"hello")
        await writer.drain()
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert final.startswith(b"HTTP/1.1 201"), final
    finally:
        writer.close()
    assert origin.last("/upload").body == b"hello"
