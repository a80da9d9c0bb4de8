"""Request collapsing and hit-for-miss: concurrent misses share one origin request, and an
uncacheable answer never makes clients queue behind one another."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.proxy.conftest import SMALL_OBJECTS_POLICY, StartProxy
from tests.proxy.harness import InFlight, ProxyClient, proxy_client, wait_until
from tests.support.origin import ProgrammableOrigin

CLIENTS = 200


async def test_concurrent_misses_for_one_key_make_exactly_one_origin_request(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/hot", headers={"Cache-Control": "max-age=60", "ETag": '"h"'}, body=b"h" * 10_000, delay=0.5)

    replies = await asyncio.gather(*(client.get("/hot") for _ in range(CLIENTS)))

    assert origin.count("/hot") == 1
    assert all(r.status == 200 and r.body == b"h" * 10_000 for r in replies)
    statuses = [r.cache_status for r in replies]
    leaders = [s for s in statuses if not s.hit]
    assert len(leaders) == 1 and leaders[0].stored and leaders[0].fwd == "uri-miss"
    # Those that arrived while the leader fetched say they waited on it.
    assert any(s.hit and s.collapsed for s in statuses)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({"Cache-Control": "max-age=60", "Set-Cookie": "sid=1"}, "set-cookie"),
        ({"Cache-Control": "no-store"}, "no-store"),
    ],
)
async def test_uncacheable_answer_releases_waiters_then_skips_collapsing(
    client: ProxyClient, origin: ProgrammableOrigin, inflight: InFlight, headers: dict[str, str], reason: str
):
    origin.set("/u", headers=headers, body="per-user", delay=0.5)

    first_wave = await asyncio.gather(*(client.get("/u") for _ in range(10)))
    assert all(r.status == 200 and r.body == b"per-user" for r in first_wave)
    # Each waiter was released to fetch its own copy: none got the leader's response.
    assert origin.count("/u") == 10
    assert all(not r.cache_status.hit and not r.cache_status.stored for r in first_wave)
    assert all(r.cache_status.detail == reason for r in first_wave), [r.cache_status.raw for r in first_wave]

    # Hit-for-miss: the key is now known uncacheable, so requests go to the origin together.
    inflight.peak = 0
    second_wave = await asyncio.gather(*(client.get("/u") for _ in range(10)))
    assert origin.count("/u") == 20
    assert inflight.peak == 10
    for seen in second_wave:
        assert seen.body == b"per-user"
        assert seen.cache_status.fwd == "bypass" and seen.cache_status.fwd_status == 200, seen
        assert seen.cache_status.detail == reason


async def test_a_cacheable_answer_after_hit_for_miss_is_stored_again(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/flip", headers={"Cache-Control": "no-store"}, body="one")
    await client.get("/flip")
    origin.set("/flip", headers={"Cache-Control": "max-age=60"}, body="two")

    passed = await client.get("/flip")
    assert passed.cache_status.stored, passed
    hit = await client.get("/flip")
    assert hit.cache_status.hit and hit.body == b"two"
    assert origin.count("/flip") == 2


async def test_concurrent_revalidations_make_one_conditional_request(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/reval", headers={"Cache-Control": "max-age=1", "ETag": '"r"'}, body="kept")
    await client.get("/reval")
    origin.set("/reval", headers={"Cache-Control": "max-age=60", "ETag": '"r"'}, body="kept", delay=0.5)
    await asyncio.sleep(1.1)

    replies = await asyncio.gather(*(client.get("/reval") for _ in range(50)))

    assert all(r.status == 200 and r.body == b"kept" for r in replies)
    assert origin.count("/reval") == 2
    assert sum(1 for r in replies if r.cache_status.fwd_status == 304) == 1


async def test_waiters_survive_the_leading_client_going_away(
    client: ProxyClient, origin: ProgrammableOrigin, proxy: ProxyRuntime
):
    origin.set("/leader", headers={"Cache-Control": "max-age=60"}, body="for everyone", delay=0.6)
    async with proxy_client(proxy.url) as impatient:
        leader = asyncio.ensure_future(impatient.get("/leader"))
        await wait_until(lambda: origin.count("/leader") == 1, what="the leader's request reaching the origin")
        waiter = asyncio.ensure_future(client.get("/leader"))
        await asyncio.sleep(0.1)
        leader.cancel()  # the leading client hangs up while its fetch is in flight
        await asyncio.gather(leader, return_exceptions=True)
    seen = await waiter
    assert seen.status == 200 and seen.body == b"for everyone", seen


async def test_waiters_on_a_too_large_response_fetch_it_themselves(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, tmp_path: Path
):
    (tmp_path / "small.yaml").write_text(SMALL_OBJECTS_POLICY)
    big = bytes(range(256)) * 256  # 64 KiB, above the policy's 16 KiB
    origin.set("/big", headers={"Cache-Control": "max-age=60"}, body=big, delay=0.3)
    async with start_proxy(origin_url, policies=tmp_path) as proxy, proxy_client(proxy.url) as client:
        replies = await asyncio.gather(*(client.get("/big") for _ in range(5)))
        assert all(r.status == 200 and r.body == big for r in replies)
        assert all(not r.cache_status.stored for r in replies)
        assert {r.cache_status.detail for r in replies} == {"too-large"}
        assert origin.count("/big") == 5


async def test_a_client_leaving_mid_stream_releases_the_origin_connection(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, inflight: InFlight, tmp_path: Path
):
    (tmp_path / "small.yaml").write_text(SMALL_OBJECTS_POLICY)
    origin.set("/huge", headers={"Cache-Control": "max-age=60"}, body=b"h" * (32 * 1024 * 1024))
    async with start_proxy(origin_url, policies=tmp_path) as proxy:
        for _ in range(3):
            async with proxy_client(proxy.url) as client, client.session.get(proxy.url + "/huge") as response:
                assert response.status == 200
                await response.content.readexactly(64 * 1024)
            # The client hung up after 64 KiB of 32 MiB: the proxy must let go of the upstream
            # response rather than leave the origin blocked on a connection nobody reads.
            await wait_until(lambda: inflight.now == 0, timeout=5, what="the origin's send being abandoned")
        origin.set("/after", headers={"Cache-Control": "max-age=60"}, body="fine")
        async with proxy_client(proxy.url) as client:
            assert (await client.get("/after")).body == b"fine"


async def test_a_key_too_large_to_store_is_then_passed_as_the_client_asked(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, tmp_path: Path
):
    """Varnish's hit-for-pass: once a response proved too large to store, fetching it whole is
    futile; Range, validators and HEAD go to the origin as sent (seeking in a big file)."""
    (tmp_path / "small.yaml").write_text(SMALL_OBJECTS_POLICY)
    big = bytes(range(256)) * 256  # 64 KiB, above the policy's 16 KiB
    origin.set("/video", headers={"Cache-Control": "max-age=60", "ETag": '"v"'}, body=big)
    async with start_proxy(origin_url, policies=tmp_path) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/video", headers={"Range": "bytes=0-9"})
        # Not yet known too large: fetched whole to be stored, and the Range ignored (RFC 9110 §14.2).
        assert first.status == 200 and first.cache_status.detail == "too-large", first
        assert "Range" not in origin.last("/video").headers

        seeking = await client.get("/video", headers={"Range": "bytes=100-199", "If-None-Match": '"w"'})
        assert seeking.cache_status.fwd == "bypass" and seeking.cache_status.detail == "hit-for-pass", seeking
        assert origin.last("/video").headers["Range"] == "bytes=100-199"
        assert origin.last("/video").headers["If-None-Match"] == '"w"'
        head = await client.head("/video")
        assert head.status == 200 and origin.last("/video").method == "HEAD", head
    assert origin.count("/video") == 3


async def test_head_on_a_key_known_uncacheable_goes_to_the_origin_as_head(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/nostore", headers={"Cache-Control": "no-store"}, body="x" * 5000)
    await client.get("/nostore")
    head = await client.head("/nostore")
    assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == "5000", head
    assert head.cache_status.fwd == "bypass" and head.cache_status.detail == "hit-for-miss", head
    assert origin.last("/nostore").method == "HEAD"
