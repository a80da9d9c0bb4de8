"""RedisStore against real Redis: namespacing, TTL, corrupt values, and every way Redis fails."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from edgeproxy.storage.base import StoreUnavailable
from edgeproxy.storage.breaker import BreakerState, CircuitBreaker
from edgeproxy.storage.redis import RedisStore

from .factories import make_entry, make_vary_index

if TYPE_CHECKING:
    from tests.conftest import RedisServer


FUNCTIONAL_TIMEOUT = 0.5
"""Tests of behaviour, not of failure, on the shared Redis: generous so a busy box never flakes."""
FAILURE_TIMEOUT = 0.05
SLACK = 0.5
"""Scheduling slack allowed on top of a timeout before we call a call unbounded."""

pytestmark = pytest.mark.redis


@pytest.fixture
async def store(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, namespace=redis_namespace, timeout=FUNCTIONAL_TIMEOUT)
    yield store
    await store.clear()
    await store.close()


async def test_round_trip_of_entries_and_vary_indexes(store: RedisStore) -> None:
    entry, index = make_entry(body=b"\x00\xff" * 1000), make_vary_index()
    await store.put(b"\x01" * 16, entry, ttl=30)
    await store.put(b"\x02" * 16, index, ttl=30)
    assert await store.get(b"\x01" * 16) == entry
    assert await store.get(b"\x02" * 16) == index
    assert await store.get(b"\x03" * 16) is None
    stats = store.stats()
    assert (stats["hits"], stats["misses"], stats["writes"]) == (2, 1, 2)


async def test_keys_are_namespaced_and_namespaces_do_not_see_each_other(
    store: RedisStore, redis_url: str, redis_namespace: str
) -> None:
    other = RedisStore(redis_url, namespace=redis_namespace + "-other", timeout=FUNCTIONAL_TIMEOUT)
    try:
        await store.put(b"\xab\xcd", make_entry(), ttl=30)
        assert await other.get(b"\xab\xcd") is None
        assert await store.client.exists(f"{redis_namespace}:o:abcd") == 1
    finally:
        await other.close()


async def test_redis_ttl_is_the_put_ttl_rounded_up_to_milliseconds(store: RedisStore) -> None:
    await store.put(b"k", make_entry(), ttl=12.3451)
    pttl = await store.client.pttl(store.redis_key(b"k"))
    assert 12_000 < pttl <= 12_346


async def test_put_many_writes_an_index_and_its_variant_together(store: RedisStore) -> None:
    await store.put(b"gone", make_entry(), ttl=30)
    await store.put_many([
        (b"index", make_vary_index(), 60), (b"variant", make_entry(), 20), (b"gone", make_entry(), 0),
    ])
    assert await store.get(b"index") == make_vary_index()
    assert await store.get(b"variant") == make_entry()
    assert await store.get(b"gone") is None
    assert 19_000 < await store.client.pttl(store.redis_key(b"variant")) <= 20_000
    assert store.stats()["writes"] == 1 + 3


async def test_a_non_positive_ttl_deletes_the_older_copy(store: RedisStore) -> None:
    await store.put(b"k", make_entry(), ttl=30)
    await store.put(b"k", make_entry(), ttl=0)
    assert await store.client.exists(store.redis_key(b"k")) == 0


async def test_an_unreadable_value_is_a_counted_miss(store: RedisStore) -> None:
    await store.client.set(store.redis_key(b"k"), b"EP\x01garbage", px=30_000)
    assert await store.get(b"k") is None
    assert store.stats()["corrupt"] == 1
    assert store.breaker.state is BreakerState.CLOSED


async def test_clear_removes_this_namespace_only(store: RedisStore, redis_url: str, redis_namespace: str) -> None:
    other = RedisStore(redis_url, namespace=redis_namespace + "-keep", timeout=FUNCTIONAL_TIMEOUT)
    try:
        for i in range(2500):  # more than one SCAN/UNLINK batch
            await store.client.set(store.redis_key(i.to_bytes(4, "big")), b"x", px=30_000)
        await other.put(b"k", make_entry(), ttl=30)
        await store.clear()
        assert [k async for k in store.client.scan_iter(match=f"{redis_namespace}:o:*")] == []
        assert await other.get(b"k") is not None
    finally:
        await other.clear()
        await other.close()


async def test_delete(store: RedisStore) -> None:
    await store.put(b"k", make_entry(), ttl=30)
    await store.delete(b"k")
    assert await store.get(b"k") is None


async def test_ping_reports_round_trip_time(store: RedisStore) -> None:
    rtt = await store.ping()
    assert rtt is not None and rtt >= 0


async def test_dead_redis_is_a_fast_miss_and_opens_the_breaker(own_redis: RedisServer, redis_namespace: str) -> None:
    store = RedisStore(own_redis.url, namespace=redis_namespace, timeout=FAILURE_TIMEOUT,
                       breaker=CircuitBreaker(failure_threshold=3, cooldown=60))
    try:
        await store.put(b"k", make_entry(), ttl=30)
        own_redis.stop()
        started = time.monotonic()
        results = [await store.get(b"k") for _ in range(10)]
        elapsed = time.monotonic() - started
        await store.put(b"k", make_entry(), ttl=30)
        await store.put_many([(b"k", make_entry(), 30), (b"j", make_entry(), 30)])
        assert results == [None] * 10
        assert elapsed < 3 * FAILURE_TIMEOUT + SLACK  # only the first three ever reached the network
        stats = store.stats()
        assert stats["timeouts"] + stats["errors"] == 3
        assert (stats["rejected"], stats["dropped_writes"], stats["breaker"]) == (9, 3, "open")
        assert await store.ping() is None
    finally:
        await store.close()


@asynccontextmanager
async def stalled(server: RedisServer, how: str, seconds: float) -> AsyncIterator[None]:
    """Make ``server`` stop answering for ``seconds``: frozen by SIGSTOP, or CLIENT PAUSE.
    (DEBUG SLEEP is disabled in Redis 7 unless the server is started with enable-debug-command.)"""
    assert server.proc is not None
    admin = Redis.from_url(server.url)
    try:
        if how == "sigstop":
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                yield
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
        else:
            await admin.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
            yield
            await asyncio.sleep(seconds)
    finally:
        await admin.aclose()


@pytest.mark.parametrize("how", ["sigstop", "client-pause"])
async def test_a_stalled_redis_costs_each_call_at_most_the_timeout(
    own_redis: RedisServer, redis_namespace: str, how: str
) -> None:
    store = RedisStore(own_redis.url, namespace=redis_namespace, timeout=FAILURE_TIMEOUT,
                       breaker=CircuitBreaker(failure_threshold=100))
    try:
        await store.put(b"k", make_entry(), ttl=30)
        async with stalled(own_redis, how, seconds=0.5):
            for _ in range(4):
                started = time.monotonic()
                assert await store.get(b"k") is None
                assert time.monotonic() - started < FAILURE_TIMEOUT + SLACK
        assert store.stats()["timeouts"] == 4
        assert await store.get(b"k") == make_entry()
    finally:
        await store.close()


async def test_no_retry_storm_each_call_sends_its_command_once(own_redis: RedisServer, redis_namespace: str) -> None:
    store = RedisStore(own_redis.url, namespace=redis_namespace, timeout=FAILURE_TIMEOUT,
                       breaker=CircuitBreaker(failure_threshold=100))
    admin = Redis.from_url(own_redis.url)
    try:
        await store.get(b"warm-up")  # open the pooled connection before the stall
        await admin.config_resetstat()
        connections_before = (await admin.info("stats"))["total_connections_received"]
        async with stalled(own_redis, "client-pause", seconds=0.5):
            for _ in range(5):
                assert await store.get(b"k") is None
        await asyncio.sleep(0.2)  # let Redis drain what was queued while paused
        commands = await admin.info("commandstats")
        connections = (await admin.info("stats"))["total_connections_received"] - connections_before
        # A retrying client reconnects and resends (redis-py's default did 2 reconnects for 5
        # calls and kept each caller waiting until the pause ended); ours sends once per call.
        assert commands.get("cmdstat_get", {}).get("calls", 0) <= 5
        assert connections <= 5
    finally:
        await admin.aclose()
        await store.close()


async def test_recovers_by_itself_after_a_restart(own_redis: RedisServer, redis_namespace: str) -> None:
    store = RedisStore(own_redis.url, namespace=redis_namespace, timeout=FAILURE_TIMEOUT,
                       breaker=CircuitBreaker(failure_threshold=2, cooldown=0.2))
    try:
        own_redis.stop()
        for _ in range(3):
            await store.get(b"k")
        assert store.breaker.state is BreakerState.OPEN
        own_redis.start()
        await asyncio.sleep(0.25)
        await store.put(b"k", make_entry(), ttl=30)  # the half-open probe
        assert store.breaker.state is BreakerState.CLOSED
        assert await store.get(b"k") == make_entry()
    finally:
        await store.close()


async def test_clear_on_a_dead_redis_says_so(own_redis: RedisServer, redis_namespace: str) -> None:
    store = RedisStore(own_redis.url, namespace=redis_namespace, timeout=FAILURE_TIMEOUT)
    try:
        own_redis.stop()
        with pytest.raises(StoreUnavailable, match=redis_namespace):
            await store.clear()
    finally:
        await store.close()


def test_unsupported_urls_are_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match="redis\\+cluster"):
        RedisStore("memcached://127.0.0.1:11211")
    with pytest.raises(ValueError, match="no scheme"):
        RedisStore("127.0.0.1:6379")
