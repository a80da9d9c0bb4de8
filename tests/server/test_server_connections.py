"""Keep-alive, pipelining and response framing (RFC 9112 §6, §9), and streamed request bodies
reaching a real origin intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.server.conftest import FAST_LIMITS, EchoOrigin
from tests.support.rawhttp import parse_responses

HOST = b"Host: a.example\r\n"


def get(target: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + HOST + extra + b"\r\n"


async def test_keep_alive_connection_answers_several_requests(raw: Callable[..., Any]):
    answer = await raw(get(b"/echo?1"))
    assert answer.first.status == 200 and not answer.closed
    assert answer.first.header("connection") is None  # HTTP/1.1 persists by default


async def test_pipelined_requests_are_answered_in_order(raw: Callable[..., Any]):
    body = b"x" * 40_000  # several reads: request bodies interleave with the pipelined heads
    burst = (
        get(b"/echo?first")
        + b"POST /echo?second HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(body) + body
        + get(b"/cached")
        + get(b"/echo?fourth")
    )
    answer = await raw(burst)
    assert [r.status for r in answer.responses] == [200, 200, 200, 200]
    first, second, third, fourth = answer.responses
    assert json.loads(first.body)["target"] == "/echo?first"
    assert json.loads(second.body) | {"method": "POST", "length": len(body)} == json.loads(second.body)
    assert json.loads(second.body)["sha256"] == hashlib.sha256(body).hexdigest()
    assert third.body == b"hello"
    assert json.loads(fourth.body)["target"] == "/echo?fourth"
    assert not answer.closed


async def test_connection_close_request_gets_its_answer_then_the_close(raw: Callable[..., Any]):
    answer = await raw(get(b"/echo", b"Connection: close\r\n") + get(b"/echo?never"))
    assert [r.status for r in answer.responses] == [200]
    assert answer.first.header("connection") == "close"
    assert answer.closed


async def test_http10_closes_unless_keep_alive_was_asked(raw: Callable[..., Any]):
    closing = await raw(get(b"/echo", version=b"HTTP/1.0"))
    assert closing.first.header("connection") == "close" and closing.closed
    kept = await raw(get(b"/echo", b"Connection: keep-alive\r\n", b"HTTP/1.0"))
    assert kept.first.header("connection") == "keep-alive" and not kept.closed


async def test_http10_client_gets_an_unknown_length_body_delimited_by_close(raw: Callable[..., Any]):
    # RFC 9112 §6.3: no chunked coding for HTTP/1.0, so the close ends the body.
    answer = await raw(get(b"/chunks?n=3", b"Connection: keep-alive\r\n", b"HTTP/1.0"))
    assert answer.first.header("transfer-encoding") is None
    assert answer.first.header("content-length") is None
    assert answer.first.body == b"part0;part1;part2;"
    assert answer.closed


async def test_stream_of_unknown_length_is_relayed_chunked(raw: Callable[..., Any]):
    answer = await raw(get(b"/chunks?n=5") + get(b"/echo?after"))
    chunked, after = answer.responses
    assert chunked.header("transfer-encoding") == "chunked"
    assert chunked.body == b"part0;part1;part2;part3;part4;"
    assert after.status == 200


async def test_reply_fields_for_framing_are_ours_and_never_duplicated(raw: Callable[..., Any]):
    answer = await raw(get(b"/big?size=1000"))
    names = [name for name, _ in answer.first.headers]
    assert names.count("content-length") == 1 and "transfer-encoding" not in names
    assert answer.first.header("content-length") == "1000" and len(answer.first.body) == 1000
    assert names.count("date") == 1
    assert answer.first.header("server-timing", ).startswith('cache;desc="')


async def test_head_keeps_the_length_and_sends_no_body(raw: Callable[..., Any]):
    answer = await raw(b"HEAD /cached HTTP/1.1\r\n" + HOST + b"\r\n" + get(b"/echo?after"))
    head, sep, rest = answer.raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"\r\ncontent-length: 5\r\n" in head.lower() + b"\r\n"
    # The next response starts right after the head: no body bytes were sent.
    assert rest.startswith(b"HTTP/1.1 200")


async def test_not_modified_and_no_content_have_no_body(raw: Callable[..., Any]):
    answer = await raw(get(b"/cached") + get(b"/cached", b'If-None-Match: "v1"\r\n') + get(b"/empty") + get(b"/echo"))
    assert [r.status for r in answer.responses] == [200, 304, 204, 200]
    assert answer.responses[2].header("content-length") is None
    assert answer.responses[2].header("transfer-encoding") is None


async def test_options_asterisk_is_answered_by_the_server(raw: Callable[..., Any], origin: EchoOrigin):
    answer = await raw(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n")
    assert answer.first.status == 200 and "GET" in (answer.first.header("allow") or "")
    assert not answer.closed and sum(origin.completed.values()) == 0


async def test_absolute_form_naming_the_host_is_served_as_origin_form(raw: Callable[..., Any]):
    answer = await raw(b"GET http://A.example/echo?q=1 HTTP/1.1\r\n" + HOST + b"\r\n")
    assert json.loads(answer.first.body)["target"] == "/echo?q=1"


async def test_upgrade_is_ignored_and_the_connection_closes_after_the_answer(raw: Callable[..., Any]):
    # RFC 9110 §7.8: a server may ignore Upgrade. We answer in HTTP/1.1 without switching, and
    # read nothing more (llhttp hands the rest to the "upgraded" protocol).
    upgrade = get(b"/echo", b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
    answer = await raw(upgrade + get(b"/echo?never"))
    assert [r.status for r in answer.responses] == [200]
    assert answer.first.header("upgrade") is None
    assert answer.closed


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_request_bodies_stream_to_the_origin_intact(proxy: ProxyRuntime):
    # Bigger than the body buffer, so reading from the client pauses and resumes on the way.
    body = bytes(range(256)) * (FAST_LIMITS.max_body_size // 256)
    async with aiohttp.ClientSession() as session:
        for data in (body, _chunks(body, 10_000)):  # Content-Length, then chunked
            async with session.put(proxy.url + "/echo", data=data) as resp:
                echoed = await resp.json()
            assert echoed["length"] == len(body)
            assert echoed["sha256"] == hashlib.sha256(body).hexdigest()


async def test_unread_request_body_closes_the_connection_after_the_answer(raw: Callable[..., Any]):
    # A cache hit ignores a GET body; if it has not fully arrived it would be parsed as requests.
    await raw(get(b"/cached"))
    answer = await raw(b"GET /cached HTTP/1.1\r\n" + HOST + b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
    assert answer.first.status == 200 and answer.first.body == b"hello"
    assert answer.first.header("connection") == "close"
    assert answer.closed


async def test_expect_100_continue_is_answered_when_the_body_is_wanted(proxy: ProxyRuntime):
    # RFC 9110 §10.1.1: the client holds the body until it sees 100 Continue.
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"PUT /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert final.startswith(b"HTTP/1.1 200")
        length = int(final.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        echoed = json.loads(await reader.readexactly(length))
        assert echoed["sha256"] == hashlib.sha256(b"hello").hexdigest()
    finally:
        writer.close()


async def test_client_that_half_closes_after_its_requests_still_gets_the_answers(proxy: ProxyRuntime):
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(get(b"/echo?1") + get(b"/echo?2"))
    writer.write_eof()  # like `printf ... | nc -N`
    data = await asyncio.wait_for(reader.read(), 3)  # until the server closes
    writer.close()
    assert [json.loads(r.body)["target"] for r in parse_responses(data)] == ["/echo?1", "/echo?2"]
