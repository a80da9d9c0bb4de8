"""Eviction policies: byte bounds, S3-FIFO scan resistance and ghost re-admission vs LRU."""

from __future__ import annotations

import random

import pytest

from edgeproxy.storage.eviction import EvictingCache, LRUCache, S3FIFOCache

POLICIES = [S3FIFOCache, LRUCache]


def hits_after_scan(cache: EvictingCache[str, int], hot: int, scan: int) -> int:
    """Warm a hot set with repeated hits, run a one-time scan, then count hot-set hits."""
    for _ in range(3):
        for i in range(hot):
            if cache.get(f"hot{i}") is None:
                cache.set(f"hot{i}", i, 100)
    for i in range(scan):
        cache.set(f"scan{i}", i, 100)
    return sum(cache.get(f"hot{i}") is not None for i in range(hot))


def test_a_one_time_scan_does_not_flush_the_hot_set_under_s3fifo() -> None:
    survived = hits_after_scan(S3FIFOCache(100 * 100), hot=50, scan=1000)
    assert survived == 50


def test_the_same_scan_flushes_the_hot_set_under_lru() -> None:
    survived = hits_after_scan(LRUCache(100 * 100), hot=50, scan=1000)
    assert survived == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_byte_bound_holds_under_random_sizes(policy: type) -> None:
    rng = random.Random(7)
    evicted: list[str] = []
    cache = policy(50_000, on_evict=lambda k, v: evicted.append(k))
    for step in range(20_000):
        key = f"k{int(rng.paretovariate(1.2)) % 3000}"
        if cache.get(key) is None:
            cache.set(key, step, rng.randint(1, 5000))
        assert cache.bytes_used <= cache.capacity
    assert cache.evictions == len(evicted) > 0
    assert len(cache) > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_objects_larger_than_capacity_are_refused_and_drop_the_older_copy(policy: type) -> None:
    cache = policy(1000)
    cache.set("a", 1, 10)
    cache.set("a", 2, 1001)
    assert "a" not in cache
    assert cache.bytes_used == 0
    cache.set("b", 3, 1000)
    assert cache.get("b") == 3


@pytest.mark.parametrize("policy", POLICIES)
def test_replace_pop_and_clear_keep_byte_accounting(policy: type) -> None:
    cache = policy(1000)
    cache.set("a", 1, 100)
    cache.set("a", 2, 300)
    assert (cache.get("a"), cache.bytes_used, len(cache)) == (2, 300, 1)
    assert cache.pop("a") == 2
    assert cache.pop("a") is None
    assert cache.bytes_used == 0
    cache.set("b", 1, 10)
    cache.clear()
    assert (len(cache), cache.bytes_used, cache.evictions) == (0, 0, 0)


def returning_key_survives(first_fillers: int) -> bool:
    """Insert "k" once, push it out with fillers, bring it back, then push 20 more objects."""
    cache: S3FIFOCache[str, int] = S3FIFOCache(1000)  # ten 100-byte objects; ghost covers nine
    cache.set("k", 0, 100)
    for i in range(first_fillers):
        cache.set(f"filler{i}", i, 100)
    assert "k" not in cache
    cache.set("k", 1, 100)
    for i in range(20):
        cache.set(f"more{i}", i, 100)
    return cache.get("k") == 1


def test_s3fifo_readmits_a_key_remembered_in_the_ghost_queue_into_main() -> None:
    assert returning_key_survives(first_fillers=12)


def test_s3fifo_treats_a_key_the_ghost_forgot_as_new() -> None:
    assert not returning_key_survives(first_fillers=30)


def test_s3fifo_rejects_a_nonsense_configuration() -> None:
    with pytest.raises(ValueError, match="capacity"):
        S3FIFOCache(0)
    with pytest.raises(ValueError, match="small_ratio"):
        S3FIFOCache(100, small_ratio=1.5)


def test_s3fifo_drops_an_object_looked_up_at_or_after_its_expiry() -> None:
    cache: S3FIFOCache[str, int] = S3FIFOCache(1000)
    cache.set("k", 1, 100, expires_at=50.0)
    cache.set("forever", 2, 100)
    assert cache.get("k", 49.9) == 1
    assert cache.get("k", 50.0) is None
    assert ("k" in cache, cache.bytes_used, cache.expired, cache.evictions) == (False, 100, 1, 0)
    assert cache.get("forever", 1e12) == 2
