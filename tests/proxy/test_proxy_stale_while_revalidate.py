"""stale-while-revalidate (RFC 5861 §3): serve the stale copy at once, refresh once, behind."""

from __future__ import annotations

import asyncio

from tests.proxy.harness import ProxyClient, proxy_client, ttl_near, wait_until
from tests.support.fixtures import StartProxy
from tests.support.origin import ProgrammableOrigin


async def test_stale_copy_is_served_at_once_while_one_background_refresh_runs(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/swr", headers={"Cache-Control": "max-age=1, stale-while-revalidate=30", "ETag": '"v1"'}, body="v1")
    await client.get("/swr")
    origin.set(
        "/swr", headers={"Cache-Control": "max-age=60, stale-while-revalidate=30", "ETag": '"v2"'}, body="v2", delay=0.3
    )
    await asyncio.sleep(1.1)

    stale = await asyncio.gather(*(client.get("/swr") for _ in range(20)))
    for seen in stale:
        assert seen.status == 200 and seen.body == b"v1", seen
        assert seen.cache_status.hit and seen.cache_status.detail == "stale-updating", seen
        assert seen.cache_status.ttl <= 0
        assert seen.headers["ETag"] == '"v1"'

    await wait_until(lambda: origin.count("/swr") == 2, what="the background refresh reaching the origin")
    # The refresh is conditional on the stored validator.
    assert origin.last("/swr").headers.get("If-None-Match") == '"v1"'

    for _ in range(40):  # the refresh lands once the origin's 0.3 s delay is over
        fresh = await client.get("/swr")
        if fresh.body != b"v1":
            break
        await asyncio.sleep(0.05)
    assert fresh.body == b"v2" and fresh.headers["ETag"] == '"v2"', fresh
    assert fresh.cache_status.hit and fresh.cache_status.detail == "l1", fresh
    assert fresh.cache_status.ttl in ttl_near(60)
    # Twenty stale answers, one refresh.
    assert origin.count("/swr") == 2


async def test_past_the_window_the_client_waits_for_the_origin(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/swr-short", headers={"Cache-Control": "max-age=1, stale-while-revalidate=1"}, body="old")
    await client.get("/swr-short")
    origin.set("/swr-short", headers={"Cache-Control": "max-age=60"}, body="new")
    await asyncio.sleep(2.1)

    seen = await client.get("/swr-short")
    assert seen.body == b"new" and not seen.cache_status.hit, seen
    assert origin.count("/swr-short") == 2


async def test_request_max_age_refuses_a_stale_while_revalidate_answer(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/swr-strict", headers={"Cache-Control": "max-age=1, stale-while-revalidate=30"}, body="old")
    await client.get("/swr-strict")
    origin.set("/swr-strict", headers={"Cache-Control": "max-age=60"}, body="new")
    await asyncio.sleep(1.1)
    # RFC 9111 §5.2.1.1: the client will not accept a response older than max-age.
    seen = await client.get("/swr-strict", headers={"Cache-Control": "max-age=0"})
    assert seen.body == b"new" and not seen.cache_status.hit, seen


async def test_a_failed_background_refresh_keeps_the_stale_copy_in_service(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set(
        "/swr-down", headers={"Cache-Control": "max-age=1, stale-while-revalidate=30", "ETag": '"v1"'}, body="v1"
    )
    await client.get("/swr-down")
    origin.set("/swr-down", status=503, headers={"Cache-Control": "no-store"}, body="down")
    await asyncio.sleep(1.1)

    first = await client.get("/swr-down")
    assert first.body == b"v1" and first.cache_status.detail == "stale-updating", first
    await wait_until(lambda: origin.count("/swr-down") == 2, what="the background refresh reaching the origin")
    await asyncio.sleep(0.1)  # let the failed refresh finish
    # Still inside the window: an origin error during a background refresh is no reason to stop
    # serving the stale copy (Varnish abandons a failed background fetch for the same reason).
    for _ in range(3):
        seen = await client.get("/swr-down")
        assert seen.status == 200 and seen.body == b"v1", seen


async def test_stopping_the_proxy_ends_a_background_refresh_still_waiting_for_the_origin(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    origin.set("/swr-slow", headers={"Cache-Control": "max-age=1, stale-while-revalidate=30"}, body="v1")
    async with start_proxy(origin_url, origin_read_timeout=60) as proxy, proxy_client(proxy.url) as client:
        await client.get("/swr-slow")
        origin.set("/swr-slow", headers={"Cache-Control": "max-age=60"}, body="v2", delay=30)
        await asyncio.sleep(1.1)
        assert (await client.get("/swr-slow")).cache_status.detail == "stale-updating"
        await wait_until(lambda: origin.count("/swr-slow") == 2, what="the background refresh reaching the origin")
        refreshing = set(proxy.edge._refreshing)
        assert refreshing
        loop = asyncio.get_running_loop()
        started = loop.time()
    # Leaving the block stopped the proxy: the refresh, 30 s from an answer, was cancelled.
    assert loop.time() - started < 5
    assert all(task.done() for task in refreshing)


async def test_a_refresh_answered_with_an_unstorable_response_retires_the_stale_copy(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/swr-gone", headers={"Cache-Control": "max-age=1, stale-while-revalidate=30", "ETag": '"old"'}, body="old")
    await client.get("/swr-gone")
    origin.set("/swr-gone", headers={"Cache-Control": "no-store", "ETag": '"new"'}, body="new")
    await asyncio.sleep(1.1)

    stale = await client.get("/swr-gone")
    assert stale.body == b"old" and stale.cache_status.detail == "stale-updating", stale
    await wait_until(lambda: origin.count("/swr-gone") == 2, what="the background refresh reaching the origin")
    for _ in range(40):  # the refresh's answer lands a moment after the origin saw the request
        seen = await client.get("/swr-gone")
        if seen.body != b"old":
            break
        await asyncio.sleep(0.05)
    # RFC 9111 §4.3.3: the full answer to the conditional refresh says the stored copy is no
    # longer suitable; it is not served again, though the new one could not be stored.
    assert seen.body == b"new" and not seen.cache_status.hit, seen
    for _ in range(2):
        again = await client.get("/swr-gone")
        assert again.body == b"new" and not again.cache_status.hit, again


async def test_the_isr_header_s_maxage_with_stale_while_revalidate_serves_stale(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10), but the same origin allowing stale
    # use outright is the header every CDN honours (Next.js incremental static regeneration).
    origin.set("/isr", headers={"Cache-Control": "s-maxage=1, stale-while-revalidate=59"}, body="built")
    await client.get("/isr")
    origin.set("/isr", headers={"Cache-Control": "s-maxage=1, stale-while-revalidate=59"}, body="rebuilt")
    await asyncio.sleep(1.1)
    stale = await client.get("/isr")
    assert stale.body == b"built" and stale.cache_status.detail == "stale-updating", stale
    await wait_until(lambda: origin.count("/isr") == 2, what="the background rebuild")
