"""When the origin breaks: truncated bodies, refused connections, timeouts, and stale-if-error
(RFC 5861 §4) covering for an origin that errs or is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.proxy.conftest import SMALL_OBJECTS_POLICY, StartProxy
from tests.proxy.harness import ProxyClient, RawOrigin, proxy_client, unused_url
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin

TRUNCATED = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Cache-Control: max-age=60\r\n"
    b"Content-Length: 1000\r\n"
    b"\r\n" + b"x" * 500
)


def origin_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _get_allowing_abort(client: ProxyClient, target: str) -> int | None:
    """The status the client saw, or None when the response was cut off mid-body."""
    try:
        seen = await client.get(target)
    except aiohttp.ClientPayloadError:
        return None
    assert len(seen.body) != 500 or seen.status >= 500, f"a short body was delivered as complete: {seen}"
    return seen.status


async def test_truncated_origin_body_is_never_stored_or_delivered_as_complete(start_proxy: StartProxy):
    raw = RawOrigin(TRUNCATED)
    async with raw.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        # RFC 9111 §3.3: an incomplete response is not stored as complete; the client sees an
        # error status or a connection cut before the declared length.
        assert await _get_allowing_abort(client, "/t") in (None, 502)
        assert await _get_allowing_abort(client, "/t") in (None, 502)
        assert raw.requests == 2


async def test_truncated_body_of_a_streamed_response_aborts_the_client(start_proxy: StartProxy, tmp_path: Path):
    # A body above max_object_size is relayed as it arrives, so its status is already sent
    # when the origin breaks: the client must see the connection cut, not a short success.
    (tmp_path / "small.yaml").write_text(SMALL_OBJECTS_POLICY)
    big = 64 * 1024
    raw = RawOrigin(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n" % (big * 4) + b"y" * big
    )
    async with (
        raw.serving() as url,
        start_proxy(url, policies=tmp_path) as proxy,
        proxy_client(proxy.url) as client,
    ):
        async with client.session.get(proxy.url + "/big") as response:
            assert response.status == 200
            try:
                body = await response.read()
            except aiohttp.ClientPayloadError:
                body = None
        assert body is None, f"a {len(body)}-byte body was delivered as complete"
        assert await _get_allowing_abort(client, "/big") in (None, 502)
        assert raw.requests == 2


async def test_origin_stalling_mid_body_is_cut_off_and_not_stored(start_proxy: StartProxy):
    raw = RawOrigin(TRUNCATED, hold=5.0)
    async with (
        raw.serving() as url,
        start_proxy(url, origin_read_timeout=0.3) as proxy,
        proxy_client(proxy.url) as client,
    ):
        # The read timeout applies between body chunks too: the client is not held for the stall.
        assert await _get_allowing_abort(client, "/stall") in (None, 502, 504)
        assert await _get_allowing_abort(client, "/stall") in (None, 502, 504)
        assert raw.requests == 2


async def test_connection_refused_is_a_502_with_a_short_text_body(start_proxy: StartProxy):
    async with start_proxy(unused_url()) as proxy, proxy_client(proxy.url) as client:
        seen = await client.get("/anything")
    assert seen.status == 502
    assert seen.headers["Content-Type"].startswith("text/plain")
    assert seen.body.startswith(b"502 ") and len(seen.body) < 512
    assert seen.cache_status.detail == "connect"
    assert "no-store" in seen.headers["Cache-Control"]


async def test_origin_timeout_is_a_504(start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str):
    origin.set("/slow", headers={"Cache-Control": "max-age=60"}, body="late", delay=2.0)
    async with start_proxy(origin_url, origin_read_timeout=0.3) as proxy, proxy_client(proxy.url) as client:
        seen = await client.get("/slow")
    assert seen.status == 504
    assert seen.headers["Content-Type"].startswith("text/plain")
    assert seen.body.startswith(b"504 ") and len(seen.body) < 512
    assert seen.cache_status.detail == "timeout"


async def test_stale_if_error_serves_the_stale_copy_while_the_origin_errs_or_is_down(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    origin.set("/sie", headers={"Cache-Control": "max-age=2, stale-if-error=60", "ETag": '"s"'}, body="kept")
    origin.set("/sie-plain", headers={"Cache-Control": "max-age=2, stale-if-error=60"}, body="kept")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as fault,
        start_proxy(fault.url) as proxy,
        proxy_client(proxy.url) as client,
    ):
        await client.get("/sie")
        await client.get("/sie-plain")
        origin.set("/sie", status=503, headers={"Cache-Control": "no-store"}, body="down")
        origin.set("/sie-plain", status=503, headers={"Cache-Control": "no-store"}, body="down")
        await asyncio.sleep(2.1)

        for path in ("/sie", "/sie-plain"):
            served = await client.get(path)
            assert served.status == 200 and served.body == b"kept", served
            # RFC 9211 §2.2: the request was forwarded; what came back was not used.
            status = served.cache_status
            assert not status.hit and status.fwd == "stale" and status.fwd_status == 503, served
            assert status.detail == "origin-503" and not status.stored
            assert served.age >= 2
        assert origin.count("/sie") == 2 and origin.count("/sie-plain") == 2

        await fault.set(Fault.REFUSE)
        for path in ("/sie", "/sie-plain"):
            served = await client.get(path)
            assert served.status == 200 and served.body == b"kept", served
            status = served.cache_status
            assert not status.hit and status.fwd == "stale" and status.fwd_status is None, served
            assert status.detail == "origin-connect"


NO_DISCONNECTED_GRACE = """
policies:
  only-stale-if-error:
    match: {hosts: ["*"], paths: ["/*"]}
    stale: {if_disconnected: 0}
"""
"""Stale only by stale-if-error: the disconnected window (tests/proxy/test_proxy_stale_if_disconnected.py) off."""


async def test_beyond_the_stale_if_error_window_the_error_reaches_the_client(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    origin.set("/brief", headers={"Cache-Control": "max-age=1, stale-if-error=1", "ETag": '"b"'}, body="kept")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as fault,
        start_proxy(fault.url, policy=NO_DISCONNECTED_GRACE) as proxy,
        proxy_client(proxy.url) as client,
    ):
        await client.get("/brief")
        origin.set("/brief", status=503, headers={"Cache-Control": "no-store"}, body="down")
        await asyncio.sleep(2.1)

        errored = await client.get("/brief")
        assert errored.status == 503 and errored.body == b"down", errored
        assert not errored.cache_status.hit and errored.cache_status.fwd_status == 503

        await fault.set(Fault.REFUSE)
        refused = await client.get("/brief")
        assert refused.status == 502, refused
        assert refused.cache_status.detail == "connect"


async def test_a_copy_the_origin_replaced_is_not_brought_back_by_a_later_error(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/replaced", headers={"Cache-Control": "max-age=1, stale-if-error=60", "ETag": '"old"'}, body="old")
    await client.get("/replaced")
    await asyncio.sleep(1.1)
    origin.set("/replaced", headers={"Cache-Control": "no-store"}, body="new")
    replaced = await client.get("/replaced")
    assert replaced.body == b"new" and replaced.cache_status.fwd_status == 200, replaced

    # §4.3.3: the stored copy was superseded by a full response, so stale-if-error has
    # nothing of this resource left to serve.
    origin.set("/replaced", status=500, headers={"Cache-Control": "no-store"}, body="broken")
    errored = await client.get("/replaced")
    assert errored.status == 500 and errored.body == b"broken", errored


async def test_an_error_while_revalidating_leaves_the_stale_copy_for_the_next_error(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/flaky", headers={"Cache-Control": "max-age=1, stale-if-error=60", "ETag": '"f"'}, body="kept")
    await client.get("/flaky")
    await asyncio.sleep(1.1)
    # §4.3.3: a 5xx while validating may be treated as no answer: the copy stays usable.
    origin.set("/flaky", status=500, headers={"Cache-Control": "no-store"}, body="broken")
    for _ in range(2):
        seen = await client.get("/flaky")
        assert seen.status == 200 and seen.body == b"kept" and seen.cache_status.fwd_status == 500, seen


async def test_a_client_may_accept_a_stale_answer_to_an_error_for_itself(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/lenient", headers={"Cache-Control": "max-age=1", "ETag": '"l"'}, body="kept")
    await client.get("/lenient")
    origin.set("/lenient", status=500, headers={"Cache-Control": "no-store"}, body="broken")
    await asyncio.sleep(1.1)
    # RFC 5861 §4: the request's stale-if-error applies to that request alone.
    lenient = await client.get("/lenient", headers={"Cache-Control": "stale-if-error=60"})
    assert lenient.status == 200 and lenient.body == b"kept" and lenient.cache_status.fwd_status == 500, lenient
    strict = await client.get("/lenient")
    assert strict.status == 500 and strict.body == b"broken", strict


async def test_must_revalidate_forbids_serving_stale_on_error(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set(
        "/strict", headers={"Cache-Control": "max-age=1, must-revalidate, stale-if-error=60", "ETag": '"m"'}, body="x"
    )
    await client.get("/strict")
    origin.set("/strict", status=503, headers={"Cache-Control": "no-store"}, body="down")
    await asyncio.sleep(1.1)
    # RFC 9111 §5.2.2.2: once stale, must-revalidate means "validated or an error", never stale.
    seen = await client.get("/strict")
    assert seen.status in (503, 504), seen
    assert seen.body != b"x"


async def test_must_revalidate_with_the_origin_unreachable_is_a_504(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    """RFC 9111 §5.2.2.2: disconnected, the cache "MUST generate an error response rather than
    reuse the stale response. The generated status code SHOULD be 504 (Gateway Timeout)"."""
    origin.set("/strict", headers={"Cache-Control": "max-age=1, must-revalidate", "ETag": '"m"'}, body="x")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as fault,
        start_proxy(fault.url) as proxy,
        proxy_client(proxy.url) as client,
    ):
        await client.get("/strict")
        await fault.set(Fault.REFUSE)
        await asyncio.sleep(1.1)
        seen = await client.get("/strict")
        assert seen.status == 504 and seen.body != b"x", seen
        assert seen.cache_status.fwd == "stale" and seen.cache_status.detail == "connect", seen
        # Nothing stored to fall back on: a refused connection stays a 502.
        assert (await client.get("/never-stored")).status == 502


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_complete_chunked_body_is_stored_and_served_with_a_length(start_proxy: StartProxy):
    raw = RawOrigin(CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    async with raw.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/chunked")
        hit = await client.get("/chunked")
    assert first.body == hit.body == b"hello world"
    assert hit.cache_status.hit and hit.headers["Content-Length"] == "11", hit
    assert raw.requests == 1


async def test_chunked_body_cut_before_its_last_chunk_is_not_stored(start_proxy: StartProxy):
    raw = RawOrigin(CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n")
    async with raw.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        assert await _get_allowing_abort(client, "/cut") in (None, 502)
        assert await _get_allowing_abort(client, "/cut") in (None, 502)
    assert raw.requests == 2


async def test_an_unparseable_origin_response_is_a_502(start_proxy: StartProxy):
    raw = RawOrigin(b"this is not HTTP at all\r\n\r\n")
    async with raw.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        seen = await client.get("/garbage")
    assert seen.status == 502, seen
    assert seen.body.startswith(b"502 ")
