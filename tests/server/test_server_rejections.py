"""Requests the server refuses itself (RFC 9112 §2.2, §3.2, §6, §11.2; issue 9): each gets the
exact status, a short ``no-store`` text body and a closed connection, and nothing reaches the
origin. Written as raw bytes because client libraries refuse to send them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.server.conftest import FAST_LIMITS, EchoOrigin

HOST = b"Host: a.example\r\n"


def post(headers: bytes, body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


SMUGGLING = [
    pytest.param(post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), id="cl-and-te"),
    pytest.param(post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), id="duplicate-cl"),
    pytest.param(post(b"Content-Length: 4\r\nContent-Length: 5\r\n", b"hello"), id="conflicting-cl"),
    pytest.param(post(b"Content-Length: 5, 5\r\n", b"hello"), id="cl-list"),
    pytest.param(post(b"Content-Length: +5\r\n", b"hello"), id="cl-sign"),
    pytest.param(post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), id="te-gzip-chunked"),
    pytest.param(post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), id="te-chunked-identity"),
    pytest.param(post(b"Transfer-Encoding: identity\r\n", b"hello"), id="te-identity"),
    pytest.param(post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), id="te-twice"),
    pytest.param(
        b"POST /echo HTTP/1.0\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="te-in-http10"
    ),
    pytest.param(post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"), id="bad-chunk-size"),
    pytest.param(
        post(b"Transfer-Encoding: chunked\r\n", b"FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n"), id="chunk-overflow"
    ),
    pytest.param(post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n"), id="chunk-bare-lf"),
    pytest.param(post(b"Content-Length: 5\r\nConnection: content-length\r\n", b"hello"), id="connection-nominates-cl"),
    pytest.param(
        post(b"Transfer-Encoding: chunked\r\nConnection: close, Transfer-Encoding\r\n", b"0\r\n\r\n"),
        id="connection-nominates-te",
    ),
    pytest.param(b"GET /echo HTTP/1.1\r\n" + HOST + b"X-A: 1\r\n folded\r\n\r\n", id="obs-fold"),
    pytest.param(b"GET /echo HTTP/1.1\n" + b"Host: a.example\n\n", id="bare-lf"),
    pytest.param(b"GET /echo HTTP/1.1\r\nHost: a.example\rX-A: 1\r\n\r\n", id="bare-cr"),
    pytest.param(b"GET /echo HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", id="nul-in-value"),
    pytest.param(b"GET /echo HTTP/1.1\r\nHost : a.example\r\n\r\n", id="space-before-colon"),
]

OPEN_PROXY = [
    pytest.param(b"GET /echo HTTP/1.1\r\n\r\n", 400, id="no-host"),
    pytest.param(b"GET /echo HTTP/1.1\r\nHost:\r\n\r\n", 400, id="empty-host"),
    pytest.param(b"GET /echo HTTP/1.1\r\n" + HOST + b"Host: b.example\r\n\r\n", 400, id="two-hosts"),
    pytest.param(b"GET http://b.example/echo HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="absolute-form-other-host"),
    pytest.param(b"GET http://user@a.example/echo HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="absolute-form-userinfo"),
    pytest.param(b"GET //b.example/echo HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="network-path"),
    pytest.param(b"GET http://a.example//b.example/ HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="absolute-network-path"),
    pytest.param(b"GET echo HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="no-leading-slash"),
    pytest.param(b"GET /echo#frag HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="fragment"),
    pytest.param(b"GET * HTTP/1.1\r\n" + HOST + b"\r\n", 400, id="asterisk-not-options"),
    pytest.param(b"CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", 405, id="connect"),
    pytest.param(b"GET /echo HTTP/2.0\r\n" + HOST + b"\r\n", 505, id="http2-over-h1"),
    pytest.param(
        post(b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n", b"hello"),
        501,
        id="upgrade-with-body",
    ),
]


def assert_refused(answer: Any, status: int, origin: EchoOrigin) -> None:
    assert [r.status for r in answer.responses] == [status], answer.raw[:300]
    refused = answer.first
    assert refused.header("cache-control") == "no-store"
    assert refused.header("connection") == "close"
    assert refused.header("content-type", ) == "text/plain; charset=utf-8"
    assert refused.body.startswith(str(status).encode()), refused.body
    assert answer.closed, "the connection must be closed after a refusal"
    assert sum(origin.completed.values()) == 0, origin.completed


@pytest.mark.parametrize("request_bytes", SMUGGLING)
async def test_ambiguous_framing_is_refused_with_400_and_closes(
    raw: Callable[..., Any], origin: EchoOrigin, request_bytes: bytes
):
    # A second request is pipelined behind each: it must never be answered (or reach the origin).
    answer = await raw(request_bytes + b"GET /echo?smuggled HTTP/1.1\r\n" + HOST + b"\r\n")
    assert_refused(answer, 400, origin)


@pytest.mark.parametrize(("request_bytes", "status"), OPEN_PROXY)
async def test_requests_that_would_make_an_open_proxy_are_refused(
    raw: Callable[..., Any], origin: EchoOrigin, request_bytes: bytes, status: int
):
    answer = await raw(request_bytes)
    assert_refused(answer, status, origin)


async def test_connect_answer_says_which_methods_are_allowed(raw: Callable[..., Any]):
    # RFC 9110 §15.5.6: a 405 carries Allow.
    answer = await raw(b"CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n")
    assert "GET" in (answer.first.header("allow") or "")


async def test_request_target_over_the_line_limit_gets_414(raw: Callable[..., Any], origin: EchoOrigin):
    target = b"/echo?" + b"a" * FAST_LIMITS.max_line_size
    assert_refused(await raw(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n"), 414, origin)


async def test_target_at_the_line_limit_is_served(raw: Callable[..., Any]):
    target = b"/echo?" + b"a" * (FAST_LIMITS.max_line_size - 6)
    answer = await raw(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    assert answer.first.status == 200


async def test_header_field_over_the_field_limit_gets_431(raw: Callable[..., Any], origin: EchoOrigin):
    big = b"X-Big: " + b"x" * FAST_LIMITS.max_field_size + b"\r\n"
    assert_refused(await raw(b"GET /echo HTTP/1.1\r\n" + HOST + big + b"\r\n"), 431, origin)


async def test_too_many_header_fields_get_431(raw: Callable[..., Any], origin: EchoOrigin):
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(FAST_LIMITS.max_headers))
    assert_refused(await raw(b"GET /echo HTTP/1.1\r\n" + HOST + fields + b"\r\n"), 431, origin)


async def test_head_over_the_total_limit_gets_431(raw: Callable[..., Any], origin: EchoOrigin):
    # Every field is under the field limit; together they exceed the head limit.
    field = b"x" * (FAST_LIMITS.max_field_size - 100)
    count = FAST_LIMITS.max_head_size // len(field) + 1
    fields = b"".join(b"X-F%d: %s\r\n" % (i, field) for i in range(count))
    assert_refused(await raw(b"GET /echo HTTP/1.1\r\n" + HOST + fields + b"\r\n"), 431, origin)


async def test_a_head_that_never_ends_is_cut_at_the_head_limit(raw: Callable[..., Any], origin: EchoOrigin):
    # One endless field: refused once the head limit is passed, without waiting for its end.
    endless = b"GET /echo HTTP/1.1\r\n" + HOST + b"X-Endless: " + b"x" * (FAST_LIMITS.max_head_size + 70_000)
    assert_refused(await raw(endless), 431, origin)


async def test_declared_body_over_the_limit_gets_413_before_it_is_sent(raw: Callable[..., Any], origin: EchoOrigin):
    too_big = FAST_LIMITS.max_body_size + 1
    assert_refused(await raw(post(b"Content-Length: %d\r\n" % too_big, b"")), 413, origin)


async def test_chunked_body_growing_over_the_limit_gets_413(raw: Callable[..., Any], origin: EchoOrigin):
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(FAST_LIMITS.max_body_size // len(chunk) + 1))
    answer = await raw(post(b"Transfer-Encoding: chunked\r\n", chunks + b"0\r\n\r\n"))
    assert_refused(answer, 413, origin)
