"""Key collisions: the full key text is compared on every hit (in L1 and in L2), key parts can
never run into each other, and one URL cannot grow more than ``MAX_VARIANTS`` Vary variants."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from edgeproxy.cache.entry import CacheEntry
from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.keying import request_key
from edgeproxy.proxy.edge import MAX_VARIANTS
from edgeproxy.proxy.runtime import ProxyRuntime
from edgeproxy.storage.codec import encode
from tests.conftest import RedisServer
from tests.hardening.conftest import StartProxy
from tests.hardening.wire import cache_status, raw_get
from tests.proxy.harness import proxy_client
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}
HOST = "shop.example"


def _hash_of(target: str) -> bytes:
    return request_key(DEFAULT_POLICY, RequestHead("GET", HOST, target, ())).hash


async def _stored_entry(proxy: ProxyRuntime, target: str) -> CacheEntry:
    """Fill ``target`` through the proxy and return the entry it stored in L1."""
    await raw_get(proxy, target, host=HOST)
    entry = proxy.l1.get_nowait(_hash_of(target))
    assert isinstance(entry, CacheEntry), f"no entry stored for {target}: the test's key computation is off"
    return entry


async def test_an_l1_entry_under_the_right_hash_but_another_key_is_a_miss(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    # What a real xxh3_128 collision looks like to the lookup: the slot for /a holds /b's object.
    origin.set("/a", headers=CACHEABLE, body="a")
    origin.set("/b", headers=CACHEABLE, body="b")
    async with start_proxy(origin_url) as proxy:
        planted = await _stored_entry(proxy, "/b")
        proxy.l1.put_nowait(_hash_of("/a"), planted, 60)
        response = await raw_get(proxy, "/a", host=HOST)
    assert response.body == b"a" and not cache_status(response).hit, response
    assert origin.count("/a") == 1


async def test_a_planted_or_garbled_l2_entry_is_a_miss_never_served(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, own_redis: RedisServer
):
    # Anyone who can write to Redis could plant entries; the key check and the codec turn a
    # foreign or corrupt object into a miss (and a fresh fill), not a wrong answer or a 500.
    origin.set("/a", headers=CACHEABLE, body="a")
    origin.set("/b", headers=CACHEABLE, body="b")
    origin.set("/c", headers=CACHEABLE, body="c")
    redis = Redis.from_url(own_redis.url)
    try:
        async with start_proxy(origin_url, redis=own_redis.url) as proxy:
            planted = await _stored_entry(proxy, "/b")
            await redis.set(f"ep:o:{_hash_of('/a').hex()}", encode(replace(planted, prepared=None)), ex=60)
            await redis.set(f"ep:o:{_hash_of('/c').hex()}", b"\x00garbage\xff" * 10, ex=60)
            a = await raw_get(proxy, "/a", host=HOST)
            c = await raw_get(proxy, "/c", host=HOST)
            corrupt = proxy.fleet.store.stats()["corrupt"] if proxy.fleet else None
    finally:
        await redis.aclose()
    assert (a.status, a.body, c.status, c.body) == (200, b"a", 200, b"c"), (a, c)
    assert not cache_status(a).hit and not cache_status(c).hit
    assert (origin.count("/a"), origin.count("/c")) == (1, 1)
    assert corrupt == 1


KEYED_HEADERS_POLICY = """
policies:
  keyed:
    match: {hosts: ["*"], paths: ["/*"]}
    key: {headers: [x-a, x-b], cookies: [sa, sb]}
"""

# Pairs of requests whose keyed parts would concatenate to the same text without length prefixes.
AMBIGUOUS = [
    (("X-A: 1", "X-B: 23"), ("X-A: 12", "X-B: 3")),
    (("X-A: x",), ("X-B: x",)),
    (("X-A: ",), ()),
    (("X-A: 1:x10:header:x-b1:y",), ("X-A: 1:x", "X-B: y")),
    (("Cookie: sa=1; sb=23",), ("Cookie: sa=12; sb=3",)),
    (("Cookie: sa=x",), ("X-A: x",)),
]


@pytest.mark.parametrize("first, second", AMBIGUOUS)
async def test_keyed_parts_that_concatenate_alike_are_different_keys(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, first: tuple[str, ...], second: tuple[str, ...]
):
    origin.set("/k", headers=CACHEABLE, body="k")
    async with start_proxy(origin_url, policy=KEYED_HEADERS_POLICY) as proxy:
        one = await raw_get(proxy, "/k", *first)
        two = await raw_get(proxy, "/k", *second)
        again = await raw_get(proxy, "/k", *first)
    assert cache_status(one).stored and not cache_status(two).hit, (first, second, two)
    assert cache_status(again).hit
    assert origin.count("/k") == 2


async def test_variants_per_url_are_capped(start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin):
    # Vary: User-Agent / Accept-Language lets one client mint a variant per request; without a cap
    # a single URL could fill L1 (evicting everything hot) and Redis.
    origin.set("/v", headers={**CACHEABLE, "Vary": "Accept-Language"}, body="v" * 100)
    async with start_proxy(origin_url) as proxy, proxy_client(proxy.url) as client:
        replies = [await client.get("/v", headers={"Accept-Language": f"x-{n}"}) for n in range(MAX_VARIANTS * 3)]
        objects = proxy.l1.stats()["objects"]
        first_again = await client.get("/v", headers={"Accept-Language": "x-0"})
    assert all(reply.status == 200 and reply.body == b"v" * 100 for reply in replies)
    assert objects == MAX_VARIANTS + 1, f"{objects} objects stored for one URL (cap {MAX_VARIANTS} variants + 1 index)"
    assert all(reply.cache_status.stored for reply in replies[:MAX_VARIANTS])
    beyond = replies[MAX_VARIANTS:]
    assert all(not r.cache_status.stored and r.cache_status.detail == "too-many-variants" for r in beyond), beyond[0]
    assert first_again.cache_status.hit, first_again


@pytest.mark.parametrize("tiers", ["l1", "l1+redis"])
async def test_a_concurrent_burst_of_variants_is_capped_too(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, request: pytest.FixtureRequest, tiers: str
):
    # Fills running at once each read the variant index before any writes it back; the cap has
    # to hold against a burst of distinct values, not only against one request at a time.
    redis_url = request.getfixturevalue("own_redis").url if tiers == "l1+redis" else None
    origin.set("/v", headers={**CACHEABLE, "Vary": "Accept-Language"}, body="v" * 100, delay=0.1)
    async with start_proxy(origin_url, redis=redis_url) as proxy, proxy_client(proxy.url) as client:
        burst = (client.get("/v", headers={"Accept-Language": f"x-{n}"}) for n in range(MAX_VARIANTS * 4))
        replies = await asyncio.gather(*burst)
        objects = proxy.l1.stats()["objects"]
        in_redis = await _objects_in(redis_url) if redis_url else None
    assert all(reply.status == 200 and reply.body == b"v" * 100 for reply in replies)
    assert sum(reply.cache_status.stored for reply in replies) == MAX_VARIANTS
    assert objects == MAX_VARIANTS + 1, f"{objects} L1 objects for one URL (cap {MAX_VARIANTS} variants + 1 index)"
    # Redis writes are best effort (a burst like this one can trip the 25 ms breaker and drop
    # some), so only the bound is exact there.
    assert in_redis is None or in_redis <= MAX_VARIANTS + 1, f"{in_redis} Redis objects for one URL"


async def _objects_in(redis_url: str) -> int:
    """How many cache objects (entries and Vary indexes) the proxies stored in Redis."""
    redis = Redis.from_url(redis_url)
    try:
        return len([key async for key in redis.scan_iter(match="ep:o:*")])
    finally:
        await redis.aclose()
