"""Purges at the edges of the fleet: a hard purge is not undone by stale-if-error, a purge does
not reach objects stored after it (even when replayed to a late joiner), a purge while Redis is
down tells the operator to retry (but a slow Redis is no reason to), a proxy cut off from Redis
catches up when it reconnects, also across a Redis restart, and every Vary variant is purged."""

from __future__ import annotations

import asyncio
import json
import time

from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT
from tests.conftest import RedisServer
from tests.fleet.harness import Node, fleet_node, url
from tests.proxy.harness import wait_until
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin


def program(origin: ProgrammableOrigin, version: str) -> None:
    origin.set("/page", headers={"Cache-Control": "public, max-age=60, stale-if-error=300", "ETag": f'"{version}"'},
               body=f"page {version}")


async def fill_both(a: Node, b: Node) -> None:
    assert (await a.get("/page")).cache_status.stored
    assert (await b.get("/page")).cache_status.detail == "l2"


async def test_a_hard_purged_object_is_not_served_stale_when_the_origin_fails(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    program(origin, "v1")
    async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, own_redis.url) as b:
        await fill_both(a, b)
        await a.admin.purge(urls=[url("/page")])
        await wait_until(lambda: b.bans == 1, what="B receiving the purge")
        origin.set("/page", status=503, body="origin down")
        for node in (a, b):
            seen = await node.get("/page")
            assert seen.status == 503 and b"page v1" not in seen.body, f"{node.name} resurrected a purged object: {seen}"


async def test_a_late_joiner_replays_a_purge_all_without_banning_what_was_stored_after_it(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    program(origin, "v1")
    async with fleet_node("A", origin_url, own_redis.url) as a:
        assert (await a.get("/page")).cache_status.stored
        await a.admin.purge(all=True)
        program(origin, "v2")
        assert (await a.get("/page")).cache_status.stored
        async with fleet_node("C", origin_url, own_redis.url) as c:
            assert c.bans == 1, "the late joiner replayed the purge from the bus log"
            seen = await c.get("/page")
            assert seen.cache_status.detail == "l2" and seen.body == b"page v2", str(seen)
    assert origin.count("/page") == 2


async def test_a_purge_while_redis_is_down_is_applied_locally_and_asks_for_a_retry(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    program(origin, "v1")
    async with fleet_node("A", origin_url, own_redis.url) as a:
        assert (await a.get("/page")).cache_status.stored
        own_redis.stop()
        status, answer = await a.admin.call("POST", "/purge", body=json.dumps({"urls": [url("/page")]}))
        assert (status, answer["outcome"]) == (503, "local-only"), answer
        assert "retry" in answer["detail"], answer
        program(origin, "v2")
        seen = await a.get("/page")
        assert seen.status == 200 and seen.body == b"page v2", f"the purge did not hold on A itself: {seen}"


async def test_a_proxy_cut_off_from_redis_applies_the_purges_it_missed_when_it_reconnects(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    program(origin, "v1")
    async with FaultProxy("127.0.0.1", own_redis.port) as link:
        b_redis = f"redis://127.0.0.1:{link.port}/0"
        async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, b_redis) as b:
            await fill_both(a, b)
            await link.set(Fault.REFUSE)
            await a.admin.purge(urls=[url("/page")])
            program(origin, "v2")
            await link.set(Fault.PASS)
            # B's subscriber reconnects by itself (backoff up to 2 s) and replays the bus log.
            await wait_until(lambda: b.bans == 1, timeout=5, what="B catching up with the purge it missed")
            seen = await b.get("/page")
            assert seen.body == b"page v2", f"B served the object purged while it was cut off: {seen}"


async def redis_up_on(node: Node, warm_path: str) -> None:
    """Send ``node`` requests until its health check reports Redis up (its breaker closes only
    when a request's probe succeeds)."""
    deadline = time.monotonic() + 5
    for attempt in range(1000):
        await node.get(f"{warm_path}?warm={attempt}")
        status, health = await node.admin.call("GET", "/healthz")
        if health["checks"]["redis"] == "up":
            return
        assert time.monotonic() < deadline, f"{node.name} still sees Redis {health['checks']['redis']} after 5s"
        await asyncio.sleep(0.05)


async def test_purges_published_after_a_redis_restart_reach_a_proxy_that_was_cut_off_meanwhile(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    """Redis without persistence restarts with an empty bus log and the generation counter back
    at 0; a proxy that was away meanwhile must not take the new generations for ones it has seen."""
    program(origin, "v1")
    origin.set("/other", headers={"Cache-Control": "public, max-age=60"}, body="other")
    async with FaultProxy("127.0.0.1", own_redis.port) as link:
        async with fleet_node("A", origin_url, own_redis.url) as a, \
                fleet_node("B", origin_url, f"redis://127.0.0.1:{link.port}/0") as b:
            for n in range(3):
                await a.admin.purge(urls=[url(f"/before-restart/{n}")])
            await wait_until(lambda: b.bans == 3, what="B receiving three purges")

            await link.set(Fault.REFUSE)
            own_redis.stop()
            await asyncio.to_thread(own_redis.start)
            async with fleet_node("C", origin_url, own_redis.url) as c:
                assert (await c.get("/page")).cache_status.stored, "C fills the restarted Redis"
                for target in ("/after-restart/1", "/page", "/after-restart/3", "/after-restart/4"):
                    await c.admin.purge(urls=[url(target)])
                program(origin, "v2")

                await link.set(Fault.PASS)
                await wait_until(lambda: b.bans >= 4, timeout=5, what="B catching up after reconnecting")
                await redis_up_on(b, "/other")
                seen = await b.get("/page")
                assert seen.body == b"page v2", (
                    f"B served from L2 an object purged while it was away (B holds {b.bans} bans of 7): {seen}")


def l2_stats(*nodes: Node) -> str:
    return "; ".join(f"{node.name} L2 {node.runtime.fleet.store.stats()}" for node in nodes if node.runtime.fleet)


async def test_a_url_purge_removes_every_vary_variant_on_every_proxy(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    def greet(version: str) -> None:
        origin.set("/greeting", headers={"Cache-Control": "public, max-age=60", "Vary": "Accept-Language"},
                   body=f"greeting {version}")

    greet("v1")
    languages = ("en", "fr")
    async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, own_redis.url) as b:
        for language in languages:
            assert (await a.get("/greeting", {"Accept-Language": language})).cache_status.stored
            seen = await b.get("/greeting", {"Accept-Language": language})
            assert seen.cache_status.detail == "l2", f"B did not read A's {language} variant: {seen}; {l2_stats(a, b)}"
        await a.admin.purge(urls=[url("/greeting")])
        await wait_until(lambda: b.bans == 1, what="B receiving the purge")
        greet("v2")
        for node in (b, a):
            for language in languages:
                seen = await node.get("/greeting", {"Accept-Language": language})
                assert seen.body == b"greeting v2", f"{node.name} served the purged {language} variant: {seen}"


async def test_a_purge_reaches_the_fleet_when_redis_is_slow_but_up(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    """A slow Redis (50 ms each way) is too slow for the data path, which rightly degrades to
    L1 + origin, but a purge is a rare admin call that the bus gives 0.5 s: it must get through."""
    program(origin, "v1")
    async with FaultProxy("127.0.0.1", own_redis.port) as slow:
        async with fleet_node("A", origin_url, f"redis://127.0.0.1:{slow.port}/0", redis_timeout=DEFAULT_TIMEOUT) as a, \
                fleet_node("B", origin_url, own_redis.url) as b:
            await fill_both(a, b)
            await slow.set(Fault.DELAY, delay=0.05)
            status, answer = await a.admin.call("POST", "/purge", body=json.dumps({"urls": [url("/page")]}))
            assert (status, answer["outcome"]) == (200, "fleet"), f"purge over a slow Redis: {status} {answer}"
            await wait_until(lambda: b.bans == 1, what="B receiving the purge")
