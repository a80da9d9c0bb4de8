"""The Redis users against a real 3-master Redis Cluster (redis+cluster:// URLs)."""

from __future__ import annotations

import asyncio

import pytest

from edgeproxy.storage.bus import FleetBus, Message
from edgeproxy.storage.locks import FillLock
from edgeproxy.storage.redis import RedisStore
from edgeproxy.storage.redisconn import connect_subscriber

from .factories import make_entry

pytestmark = pytest.mark.redis
TIMEOUT = 0.5


async def test_store_spreads_keys_over_the_masters_and_clears_them_all(
    redis_cluster: str, redis_namespace: str
) -> None:
    store = RedisStore(redis_cluster, namespace=redis_namespace, timeout=TIMEOUT)
    try:
        keys = [i.to_bytes(4, "big") for i in range(60)]
        for key in keys[:30]:
            await store.put(key, make_entry(), ttl=30)
        await store.put_many([(key, make_entry(), 30) for key in keys[30:]])  # one pipeline, all nodes
        assert all([await store.get(key) == make_entry() for key in keys])
        masters = {(await store.client.get_nodes_from_slot("GET", store.redis_key(k)))[0].name for k in keys}
        assert len(masters) == 3
        assert 0 < await store.client.pttl(store.redis_key(keys[0])) <= 30_000
        await store.clear()
        assert [await store.get(key) for key in keys] == [None] * 60
        assert store.stats()["errors"] == store.stats()["timeouts"] == 0
    finally:
        await store.close()


async def test_fill_lock_keys_share_a_slot(redis_cluster: str, redis_namespace: str) -> None:
    store = RedisStore(redis_cluster, namespace=redis_namespace, timeout=TIMEOUT)
    lock = FillLock(store.channel, redis_namespace, timeout=TIMEOUT)
    try:
        token = await lock.acquire(b"key", ttl_ms=5000)
        assert token is not None
        assert await lock.acquire(b"key", ttl_ms=5000) is None
        assert await lock.release(b"key", token)
        assert (await lock.acquire(b"key", ttl_ms=5000) or 0) > token
    finally:
        await store.close()


async def test_bus_publishes_through_the_cluster_and_subscribes_on_a_node(
    redis_cluster: str, redis_namespace: str
) -> None:
    store = RedisStore(redis_cluster, namespace=redis_namespace, timeout=TIMEOUT)
    subscriber = connect_subscriber(redis_cluster, timeout=TIMEOUT)
    listener = FleetBus(store.client, redis_namespace, subscriber=subscriber)
    publisher = FleetBus(store.client, redis_namespace)
    received: list[Message] = []
    try:
        await listener.subscribe(received.append)
        generation = await publisher.publish("purge", {"tag": "items"})
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.01)
        assert [(m.generation, m.payload) for m in received] == [(generation, {"tag": "items"})]
        assert [m.generation for m in await publisher.recent("purge")] == [generation]
    finally:
        await listener.close()
        await subscriber.aclose()
        await store.close()
