"""The test utilities in tests/support do what other tests rely on them to do."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.support.faultproxy import Fault, FaultProxy
from tests.support.rawhttp import exchange, parse_responses


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


# --- programmable origin ---------------------------------------------------------------------


async def test_programmable_origin_answers_what_was_set_and_records_requests(client, programmable, programmable_url):
    programmable.set("/a", headers=[("Cache-Control", "max-age=60"), ("X-Tag", "1"), ("X-Tag", "2")], body="hello")
    async with client.get(f"{programmable_url}/a?x=1", headers={"X-Forwarded-For": "10.0.0.1"}) as response:
        assert response.status == 200
        assert await response.text() == "hello"
        assert response.headers.getall("X-Tag") == ["1", "2"]
    assert programmable.count("/a") == 1
    seen = programmable.last("/a")
    assert seen.path_qs == "/a?x=1"
    assert seen.headers["X-Forwarded-For"] == "10.0.0.1"


async def test_programmable_origin_answers_validators_with_304(client, programmable, programmable_url):
    programmable.set("/v", headers={"ETag": '"v1"', "Cache-Control": "no-cache"}, body="v1")
    async with client.get(f"{programmable_url}/v", headers={"If-None-Match": '"v1"'}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == '"v1"'
    programmable.set("/v", headers={"ETag": '"v2"'}, body="v2")
    async with client.get(f"{programmable_url}/v", headers={"If-None-Match": '"v1"'}) as response:
        assert response.status == 200
        assert await response.text() == "v2"


async def test_programmable_origin_reply_can_change_and_be_slow(client, programmable, programmable_url):
    programmable.set("/s", status=503, body="down", delay=0.05)
    async with client.get(f"{programmable_url}/s") as response:
        assert response.status == 503
    programmable.forget()
    assert programmable.count("/s") == 0


async def test_programmable_origin_says_when_a_path_was_not_programmed(client, programmable, programmable_url):
    async with client.get(f"{programmable_url}/nothing") as response:
        assert response.status == 404
        assert "origin.set()" in await response.text()
    with pytest.raises(AssertionError, match="no request for /other"):
        programmable.last("/other")


# --- fault proxy in front of an HTTP origin --------------------------------------------------


BLOB = 200_000
CLOSING_GET = b"GET /static/app.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def test_faultproxy_passes_traffic_through_by_default(client, demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        async with client.get(f"{proxy.url}/api/blob?size={BLOB}") as response:
            assert len(await response.read()) == BLOB
        assert proxy.accepted == 1


async def test_faultproxy_truncate_closes_after_exactly_n_response_bytes(demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        await proxy.set(Fault.TRUNCATE, after_bytes=1000)
        answer = await exchange(*proxy.address, f"GET /api/blob?size={BLOB} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.closed
    assert len(answer.raw) == 1000
    assert answer.raw.startswith(b"HTTP/1.1 200 OK")
    assert answer.responses == ()  # the body was cut short, so no complete response


async def test_faultproxy_reset_breaks_an_aiohttp_download(client, demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        await proxy.set(Fault.RESET, after_bytes=5000)
        with pytest.raises(aiohttp.ClientError):
            async with client.get(f"{proxy.url}/api/blob?size={BLOB}") as response:
                await response.read()


async def test_faultproxy_refuse_stops_listening_and_pass_reopens_the_same_port(client, demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        port = proxy.port
        await proxy.set(Fault.REFUSE)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*proxy.address)
        await proxy.set(Fault.PASS)
        assert proxy.port == port
        async with client.get(f"{proxy.url}/static/app.css") as response:
            assert response.status == 200


async def test_faultproxy_delay_adds_latency_per_chunk(client, demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        await proxy.set(Fault.DELAY, delay=0.2)
        started = time.monotonic()
        async with client.get(f"{proxy.url}/static/app.css") as response:
            assert response.status == 200
        assert time.monotonic() - started >= 0.4  # one chunk each way


async def test_faultproxy_blackhole_holds_traffic_until_switched_back(client, demo_url):
    async with FaultProxy(*host_port(demo_url)) as proxy:
        await proxy.set(Fault.BLACKHOLE)
        request = asyncio.create_task(exchange(*proxy.address, CLOSING_GET, idle=2))
        await asyncio.sleep(0.1)
        assert not request.done()
        await proxy.set(Fault.PASS)
        answer = await request
    assert answer.first.status == 200


# --- fault proxy in front of Redis -----------------------------------------------------------


async def test_faultproxy_blackhole_makes_redis_time_out_on_a_pooled_connection(redis_url):
    host_port_part = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port_part.partition(":")
    async with FaultProxy(host, int(port or 6379)) as proxy:
        client = aioredis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
        try:
            assert await client.ping()
            await proxy.set(Fault.BLACKHOLE)
            with pytest.raises(aioredis.RedisError):
                await client.ping()
            await proxy.set(Fault.PASS)
            assert await client.ping()
        finally:
            await client.aclose()


# --- raw HTTP --------------------------------------------------------------------------------


def test_parse_responses_splits_pipelined_and_chunked_responses():
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v\"\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nT: 1\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
    )
    first, second, third = parse_responses(raw)
    assert (first.status, first.body, first.header("x-a")) == (200, b"hello", "1")
    assert (second.status, second.reason, second.body) == (304, "Not Modified", b"")
    assert third.body == b"abcde"


async def test_exchange_sees_every_pipelined_response(demo_url):
    keep_alive = b"GET /static/app.css HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await exchange(*host_port(demo_url), keep_alive + CLOSING_GET)
    assert answer.closed
    assert [r.status for r in answer.responses] == [200, 200]
    assert answer.first.header("content-type") == "text/css"


async def test_exchange_sends_what_aiohttp_would_refuse(demo_url):
    smuggle = (
        b"POST /_control/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    answer = await exchange(*host_port(demo_url), smuggle)
    assert answer.first.status == 400


def test_parse_responses_stops_at_bytes_it_cannot_frame():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert len(parse_responses(ok + b"garbage\r\n\r\n")) == 1
    assert parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nhi") == ()
    assert parse_responses(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == ()


header_names = st.from_regex(r"X-[A-Za-z0-9]{1,8}", fullmatch=True)
header_values = st.from_regex(r"[ -~]{0,20}", fullmatch=True).map(str.strip)
raw_responses = st.tuples(
    st.sampled_from([200, 201, 404, 500, 503]),
    st.lists(st.tuples(header_names, header_values), max_size=4),
    st.binary(max_size=64),
    st.booleans(),
)


def serialize(status: int, headers: list[tuple[str, str]], body: bytes, chunked: bool) -> bytes:
    head = f"HTTP/1.1 {status} Reason\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if chunked:
        framed = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + framed
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@given(st.lists(raw_responses, min_size=1, max_size=4))
def test_parse_responses_round_trips_any_pipelined_sequence(sequence):
    parsed = parse_responses(b"".join(serialize(*response) for response in sequence))
    assert [(r.status, r.body) for r in parsed] == [(status, body) for status, _, body, _ in sequence]
    for response, (_, headers, _, _) in zip(parsed, sequence, strict=True):
        assert response.headers[: len(headers)] == tuple((k.lower(), v) for k, v in headers)
