"""FillLock against real Redis: exclusive, fenced, safe release, and harmless when Redis is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from edgeproxy.storage.locks import FillLock
from edgeproxy.storage.redis import RedisStore
from edgeproxy.storage.redisconn import RedisClient, connect
from edgeproxy.storage.resp import RedisPyChannel, data_channel

from .factories import make_entry

if TYPE_CHECKING:
    from tests.conftest import RedisServer

pytestmark = pytest.mark.redis


async def unlink_namespace(client: RedisClient, namespace: str) -> None:
    """Remove what a test left under its namespace (locks, fence counters, objects)."""
    leftovers = [k async for k in client.scan_iter(match=f"{namespace}:*")]
    if leftovers:
        await client.unlink(*leftovers)


@pytest.fixture
async def client(redis_url: str, redis_namespace: str) -> AsyncIterator[Redis]:
    client = connect(redis_url, timeout=0.5)
    yield client
    await unlink_namespace(client, redis_namespace)
    await client.aclose()


@pytest.fixture(params=["resp", "redis-py"])
async def lock(request: pytest.FixtureRequest, redis_url: str, client: Redis, redis_namespace: str) -> AsyncIterator[FillLock]:
    """The lock on either data channel: the lean one plain Redis gets, redis-py's for the rest."""
    channel = data_channel(redis_url, client) if request.param == "resp" else RedisPyChannel(client)
    yield FillLock(channel, redis_namespace, timeout=0.5)
    await channel.close()


async def test_only_one_of_many_concurrent_callers_gets_the_lock(lock: FillLock) -> None:
    tokens = await asyncio.gather(*(lock.acquire(b"key", ttl_ms=5000) for _ in range(20)))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1


async def test_fencing_tokens_increase_across_holders(lock: FillLock) -> None:
    first = await lock.acquire(b"key", ttl_ms=5000)
    assert first is not None and await lock.release(b"key", first)
    second = await lock.acquire(b"key", ttl_ms=5000)
    assert second is not None and second > first


async def test_release_with_a_stale_token_is_refused_and_the_lock_kept(lock: FillLock) -> None:
    token = await lock.acquire(b"key", ttl_ms=5000)
    assert token is not None
    assert not await lock.release(b"key", token - 1)
    assert await lock.acquire(b"key", ttl_ms=5000) is None
    assert await lock.release(b"key", token)


@pytest.fixture
async def store_lock(redis_url: str, redis_namespace: str) -> AsyncIterator[tuple[RedisStore, FillLock]]:
    """An L2 store and a fill lock on its client, as a fleet node has them."""
    store = RedisStore(redis_url, namespace=redis_namespace, timeout=0.5)
    yield store, FillLock(store.channel, redis_namespace, timeout=0.5)
    await unlink_namespace(store.client, redis_namespace)
    await store.close()


async def test_a_store_write_carrying_the_lease_releases_it_after_the_objects(
    store_lock: tuple[RedisStore, FillLock],
) -> None:
    store, lock = store_lock
    token = await lock.acquire(b"key", ttl_ms=5000)
    assert token is not None
    lease = lock.lease(b"key", token)
    await store.put_many([(b"key", make_entry(), 30)], lease=lease)
    assert lease.released and await store.get(b"key") == make_entry()
    assert await lock.acquire(b"key", ttl_ms=5000) is not None  # free again


async def test_a_lease_that_lapsed_releases_nothing_but_its_objects_are_written(
    store_lock: tuple[RedisStore, FillLock],
) -> None:
    store, lock = store_lock
    old = await lock.acquire(b"key", ttl_ms=50)
    await asyncio.sleep(0.1)
    new = await lock.acquire(b"key", ttl_ms=5000)
    assert old is not None and new is not None
    await store.put_many([(b"key", make_entry(), 30)], lease=lock.lease(b"key", old))
    assert await store.get(b"key") == make_entry()
    assert await lock.acquire(b"key", ttl_ms=5000) is None  # the new holder keeps its lock


async def test_an_expired_lock_frees_itself_and_its_old_holder_cannot_release_the_new_one(lock: FillLock) -> None:
    old = await lock.acquire(b"key", ttl_ms=50)
    await asyncio.sleep(0.1)
    new = await lock.acquire(b"key", ttl_ms=5000)
    assert old is not None and new is not None and new > old
    assert not await lock.release(b"key", old)
    assert await lock.release(b"key", new)


async def test_wait_released_returns_when_the_holder_releases(lock: FillLock) -> None:
    token = await lock.acquire(b"key", ttl_ms=5000)
    assert token is not None

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        await lock.release(b"key", token)

    releaser = asyncio.create_task(release_soon())
    assert await lock.wait_released(b"key", timeout=2.0)
    await releaser


async def test_wait_released_gives_up_at_its_timeout(lock: FillLock) -> None:
    assert await lock.acquire(b"key", ttl_ms=5000) is not None
    assert not await lock.wait_released(b"key", timeout=0.05)


async def test_locks_on_different_keys_are_independent(lock: FillLock) -> None:
    assert await lock.acquire(b"a", ttl_ms=5000) is not None
    assert await lock.acquire(b"b", ttl_ms=5000) is not None


async def test_dead_redis_means_no_lock_quickly_and_no_exception(own_redis: RedisServer, redis_namespace: str) -> None:
    client = connect(own_redis.url, timeout=0.05)
    channel = data_channel(own_redis.url, client)
    await channel.call("PING")  # connected, then the server dies under it
    lock = FillLock(channel, redis_namespace, timeout=0.05)
    try:
        own_redis.stop()
        started = time.monotonic()
        assert await lock.acquire(b"key", ttl_ms=1000) is None
        assert not await lock.release(b"key", 1)
        assert not await lock.wait_released(b"key", timeout=1.0)
        assert time.monotonic() - started < 1.0
    finally:
        await channel.close()
        await client.aclose()


async def test_a_non_positive_ttl_is_a_programming_error(lock: FillLock) -> None:
    with pytest.raises(ValueError, match="ttl_ms"):
        await lock.acquire(b"key", ttl_ms=0)
