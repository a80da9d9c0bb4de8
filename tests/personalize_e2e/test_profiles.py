"""User profiles from the fleet's Redis (``user:<id>``), as the ML pipeline writes them, change
the order a proxy serves; a missing or corrupt profile ranks like a cold user, never fails."""

from __future__ import annotations

import math

import aiohttp
from redis.asyncio import Redis

from edgeproxy.personalize.features import UserProfile
from edgeproxy.personalize.profiles import RedisProfileStore
from edgeproxy.proxy.runtime import running_proxy
from tests.conftest import RedisServer
from tests.personalize_e2e.conftest import ITEMS, ConfigFactory, Seen, fetch, user

BARGAIN_HUNTER = UserProfile(affinities=(("books", 1.0),), price_log=math.log1p(4.0), recency=0.0, activity=40)
COLLECTOR = UserProfile(affinities=(("books", 1.0),), price_log=math.log1p(400.0), recency=1.0, activity=40)


def _top_price(seen: Seen, k: int = 5) -> float:
    return sum(float(item["price"]) for item in seen.json()["items"][:k]) / k


async def test_profiles_written_to_redis_shape_the_order_and_bad_ones_rank_cold(
    proxy_config: ConfigFactory, own_redis: RedisServer, session: aiohttp.ClientSession
) -> None:
    redis = Redis.from_url(own_redis.url)
    try:
        store = RedisProfileStore(redis)
        await store.put("shopper-1", BARGAIN_HUNTER)
        await store.put("shopper-2", COLLECTOR)
        await redis.set(store.key("shopper-3"), b"{not json")
        await redis.set(store.key("shopper-4"), b'{"affinities": {"books": "lots"}}')
    finally:
        await redis.aclose()
    async with running_proxy(proxy_config(redis=own_redis.url)) as proxy:
        seen = {
            uid: await fetch(session, proxy.url + ITEMS, headers=user(uid))
            for uid in ("shopper-1", "shopper-2", "shopper-3", "shopper-4", "nobody-9")
        }
        anonymous = await fetch(session, proxy.url + ITEMS)
    for response in (*seen.values(), anonymous):
        assert response.status == 200
        assert 'ranked model=demo-ranker-v1"' in response.cache_status
    assert seen["shopper-1"].body != seen["shopper-2"].body
    # The direction the profile points: the bargain hunter's first page is the cheaper one.
    assert _top_price(seen["shopper-1"]) < _top_price(seen["shopper-2"])
    assert anonymous.body not in (seen["shopper-1"].body, seen["shopper-2"].body)
    # Unknown and unreadable profiles are cold users: known id, no profile.
    assert seen["shopper-3"].body == seen["shopper-4"].body == seen["nobody-9"].body
