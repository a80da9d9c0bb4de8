"""TieredStore: L1 before L2, promotion with the remaining useful lifetime, tier reporting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.entry import StoredObject
from edgeproxy.storage.memory import MemoryStore
from edgeproxy.storage.redis import RedisStore
from edgeproxy.storage.tiered import Tier, TieredStore, remaining_ttl

from .factories import make_entry, make_vary_index

pytestmark = pytest.mark.redis


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def l2(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, namespace=redis_namespace, timeout=0.5)
    yield store
    await store.clear()
    await store.close()


NO_VALIDATOR = (("content-type", "application/json"),)


def test_a_promoted_object_lives_until_its_freshness_and_longest_stale_window_run_out() -> None:
    entry = make_entry(response_time=1000, fresh_for=60, stale_while_revalidate=30, stale_if_error=300,
                       headers=NO_VALIDATOR)
    assert remaining_ttl(entry, now=1010) == 60 + 300 - 10
    assert remaining_ttl(make_vary_index(stored_at=1000, fresh_for=60), now=1050) == 10
    # RFC 9111 §4.2.4: the disconnected window is grace too.
    entry = make_entry(response_time=1000, fresh_for=60, stale_if_error=5, stale_if_disconnected=10,
                       headers=NO_VALIDATOR)
    assert remaining_ttl(entry, now=1010) == 60 + 10 - 10


def test_a_promoted_object_counts_the_age_it_arrived_with() -> None:
    # §4.2.3: 20 s old when it reached us, so its 60 s of freshness end 40 s after it arrived.
    entry = make_entry(response_time=1000, fresh_for=60, initial_age=20, headers=NO_VALIDATOR)
    assert remaining_ttl(entry, now=1010) == 60 - 20 - 10


def test_a_promoted_object_with_a_validator_is_kept_to_be_revalidated() -> None:
    # Stale, but its ETag can still earn a 304: L1 keeps it as L2 did, so revalidating it does
    # not go to L2 on every request.
    entry = make_entry(response_time=1000, fresh_for=60, headers=(("etag", '"v1"'),))
    assert remaining_ttl(entry, now=1100) == 60 + spec.VALIDATOR_KEEP - 100


async def test_an_l2_hit_is_promoted_to_l1_for_its_remaining_lifetime(l2: RedisStore) -> None:
    clock = Clock(1010.0)
    l1 = MemoryStore(1 << 20, clock=clock)
    tiered = TieredStore(l1, l2, clock=clock)
    entry = make_entry(response_time=1000, fresh_for=60, stale_while_revalidate=30, headers=NO_VALIDATOR)
    await l2.put(b"k", entry, ttl=80)

    assert await tiered.get_with_tier(b"k") == (entry, Tier.L2)
    assert await tiered.get_with_tier(b"k") == (entry, Tier.L1)
    clock.now = 1000 + 60 + 30 - 0.001
    assert l1.get_nowait(b"k") == entry
    clock.now = 1000 + 60 + 30
    assert l1.get_nowait(b"k") is None


async def test_an_object_already_past_its_windows_is_not_promoted(l2: RedisStore) -> None:
    clock = Clock(2000.0)
    tiered = TieredStore(MemoryStore(1 << 20, clock=clock), l2, clock=clock)
    entry = make_entry(response_time=1000, fresh_for=60, headers=NO_VALIDATOR)
    await l2.put(b"k", entry, ttl=30)
    assert await tiered.get_with_tier(b"k") == (entry, Tier.L2)
    assert tiered.l1.get_nowait(b"k") is None


async def test_promotion_hook_derives_per_process_data(l2: RedisStore) -> None:
    def promote(obj: StoredObject) -> StoredObject:
        return obj.__class__(**{f: getattr(obj, f) for f in obj.__dataclass_fields__} | {"prepared": "matrix"})

    clock = Clock(1010.0)
    tiered = TieredStore(MemoryStore(1 << 20, clock=clock), l2, promote=promote, clock=clock)
    await l2.put(b"k", make_entry(), ttl=50)
    obj, tier = await tiered.get_with_tier(b"k")
    assert tier is Tier.L2 and obj.prepared == "matrix"
    assert tiered.l1.get_nowait(b"k").prepared == "matrix"


async def test_put_delete_and_clear_reach_both_tiers(l2: RedisStore) -> None:
    clock = Clock(1010.0)
    tiered = TieredStore(MemoryStore(1 << 20, clock=clock), l2, clock=clock)
    await tiered.put(b"a", make_entry(), ttl=50)
    await tiered.put_many([(b"b", make_entry(), 50), (b"c", make_vary_index(), 50)])
    assert tiered.l1.get_nowait(b"c") == make_vary_index() == await l2.get(b"c")
    assert tiered.l1.get_nowait(b"a") is not None and await l2.get(b"a") is not None
    await tiered.delete(b"a")
    assert await tiered.get_with_tier(b"a") == (None, Tier.NONE)
    await tiered.clear()
    assert tiered.l1.get_nowait(b"b") is None and await l2.get(b"b") is None
    assert await tiered.get(b"b") is None


class FirstReplyHeld(RedisStore):
    """A Redis L2 whose first GET reply is held back until ``release`` is set: a read that was
    answered before a write, and reaches its caller after it."""

    def __init__(self, url: str, namespace: str) -> None:
        super().__init__(url, namespace=namespace, timeout=0.5)
        self.release = asyncio.Event()
        self.answered = asyncio.Event()

    async def get(self, key: bytes) -> StoredObject | None:
        obj = await super().get(key)
        if not self.answered.is_set():
            self.answered.set()
            await self.release.wait()
        return obj


async def test_a_read_not_joined_to_one_in_flight_sees_a_write_made_since(
    redis_url: str, redis_namespace: str
) -> None:
    # A peer's fill lock released means its write landed; a read sent before that cannot show it.
    l2 = FirstReplyHeld(redis_url, redis_namespace)
    clock = Clock(1010.0)
    tiered = TieredStore(MemoryStore(1 << 20, clock=clock), l2, clock=clock)
    entry = make_entry(response_time=1000, fresh_for=60)
    try:
        early = asyncio.create_task(tiered.get_with_tier(b"k"))
        await l2.answered.wait()
        await l2.put(b"k", entry, ttl=80)
        joined = asyncio.create_task(tiered.get_with_tier(b"k"))
        await asyncio.sleep(0)

        assert await tiered.get_with_tier(b"k", joined=False) == (entry, Tier.L2)
        l2.release.set()
        assert await early == (None, Tier.NONE)
        assert await joined == (None, Tier.NONE)  # it shared the early read
    finally:
        l2.release.set()
        await l2.clear()
        await l2.close()
