"""Two proxies sharing a Redis L2: one fills, the other hits; misses collapse across them; and
Redis dying never fails a request. Each test owns its redis-server (``own_redis``), so it can
kill it and never sees another test's keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest

from edgeproxy.proxy.runtime import ProxyRuntime
from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT
from tests.conftest import RedisServer
from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin

pytestmark = pytest.mark.redis

CACHEABLE = {"Cache-Control": "max-age=60", "ETag": '"f"'}
SITE = {"Host": "shop.example"}
"""Every proxy of a fleet serves the same site; the Host is part of the cache key."""


@dataclass(frozen=True, slots=True)
class Member:
    proxy: ProxyRuntime
    client: ProxyClient

    def redis_stats(self) -> dict[str, object]:
        assert self.proxy.fleet is not None
        return self.proxy.fleet.store.stats()


@asynccontextmanager
async def fleet(start_proxy: StartProxy, origin_url: str, redis_url: str, size: int) -> AsyncIterator[list[Member]]:
    """``size`` proxies in front of one origin, sharing ``redis_url``, each with a client."""
    async with AsyncExitStack() as stack:
        members = []
        for _ in range(size):
            proxy = await stack.enter_async_context(start_proxy(origin_url, redis=redis_url))
            members.append(Member(proxy, await stack.enter_async_context(proxy_client(proxy.url))))
        yield members


async def test_what_one_proxy_stored_is_a_hit_from_l2_on_another(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
):
    origin.set("/shared", headers=CACHEABLE, body="filled once")
    async with fleet(start_proxy, origin_url, own_redis.url, 2) as members:
        a, b = (member.client for member in members)
        filled = await a.get("/shared", headers=SITE)
        assert filled.cache_status.stored
        from_l2 = await b.get("/shared", headers=SITE)
        assert from_l2.body == b"filled once" and from_l2.cache_status.hit, from_l2
        assert from_l2.cache_status.detail == "l2"
        # Promoted: the next hit on b is from its own memory.
        assert (await b.get("/shared", headers=SITE)).cache_status.detail == "l1"
    assert origin.count("/shared") == 1


async def test_concurrent_misses_on_two_proxies_make_one_origin_request(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
):
    origin.set("/hot", headers=CACHEABLE, body="hot", delay=0.5)
    async with fleet(start_proxy, origin_url, own_redis.url, 2) as members:
        replies = await asyncio.gather(*(m.client.get("/hot", headers=SITE) for m in members for _ in range(20)))
        stats = [m.redis_stats() for m in members]
    assert all(r.status == 200 and r.body == b"hot" for r in replies)
    assert origin.count("/hot") == 1, (sorted({r.cache_status.raw for r in replies}), stats)


async def test_redis_dying_never_fails_a_request(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
):
    origin.set("/before", headers=CACHEABLE, body="before")
    origin.set("/after", headers=CACHEABLE, body="after")
    async with fleet(start_proxy, origin_url, own_redis.url, 1) as (member,):
        client = member.client
        await client.get("/before")
        own_redis.stop()
        for _ in range(3):
            kept = await client.get("/before")
            assert kept.status == 200 and kept.cache_status.hit and kept.cache_status.detail == "l1", kept
            fresh = await client.get("/after")
            assert fresh.status == 200 and fresh.body == b"after", fresh
        # L1 still stores while L2 is gone.
        assert (await client.get("/after")).cache_status.hit


async def test_a_burst_of_misses_on_a_fresh_process_keeps_redis_in_service(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
):
    # A process that just started (or sat idle) meets a burst: its Redis pool is cold. Opening
    # connections is not Redis being down, and must not open the circuit breaker (which turns
    # L2 and cross-process collapsing off for everyone on this process).
    origin.set("/burst", headers=CACHEABLE, body="x", delay=0.2)
    async with start_proxy(origin_url, redis=own_redis.url, redis_timeout=DEFAULT_TIMEOUT) as proxy, \
            proxy_client(proxy.url) as client:
        replies = await asyncio.gather(*(client.get("/burst", headers=SITE) for _ in range(20)))
        assert all(r.status == 200 for r in replies)
        assert proxy.fleet is not None
        stats = proxy.fleet.store.stats()
    assert stats["breaker_opened"] == 0, stats
