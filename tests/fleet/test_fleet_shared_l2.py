"""Two proxies sharing one Redis: what one fetched, the other serves from L2, then from its L1;
a proxy started after a purge never serves the purged object from L2; and the L2 bound decides
whether a far Redis is read or skipped."""

from __future__ import annotations

from edgeproxy.storage.redis import CallOutcome
from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT, connect
from tests.conftest import RedisServer
from tests.fleet.harness import fleet_node, url
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "public, max-age=60", "ETag": '"v1"'}


async def test_fill_through_one_proxy_is_an_l2_hit_then_an_l1_hit_on_another(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    origin.set("/page", headers=CACHEABLE, body="page v1")
    async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, own_redis.url) as b:
        filled = await a.get("/page")
        assert filled.status == 200 and filled.cache_status.stored, str(filled)

        from_l2 = await b.get("/page")
        assert from_l2.cache_status.hit and from_l2.cache_status.detail == "l2", str(from_l2)
        assert from_l2.body == b"page v1"

        from_l1 = await b.get("/page")
        assert from_l1.cache_status.hit and from_l1.cache_status.detail == "l1", str(from_l1)
    assert origin.count("/page") == 1


async def test_a_proxy_started_after_a_purge_does_not_serve_the_purged_object_from_l2(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    origin.set("/page", headers=CACHEABLE, body="page v1")
    async with fleet_node("A", origin_url, own_redis.url) as a:
        assert (await a.get("/page")).cache_status.stored
        await a.admin.purge(urls=[url("/page")])
        origin.set("/page", headers={**CACHEABLE, "ETag": '"v2"'}, body="page v2")

        async with fleet_node("C", origin_url, own_redis.url) as c:
            seen = await c.get("/page")
            assert not seen.cache_status.hit and seen.cache_status.fwd == "uri-miss", str(seen)
            assert seen.body == b"page v2"
    assert origin.count("/page") == 2


async def test_the_l2_bound_decides_whether_a_far_redis_is_read_or_skipped(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    """Redis 80 ms away (each way): the shipped 25 ms bound gives up on it and fetches from the
    origin; an operator who raised ``redis_timeout`` for a remote Redis reads it."""
    origin.set("/page", headers=CACHEABLE, body="page v1")
    async with FaultProxy("127.0.0.1", own_redis.port) as far:
        far_url = f"redis://127.0.0.1:{far.port}/0"
        async with fleet_node("A", origin_url, own_redis.url) as a, \
                fleet_node("near-bound", origin_url, far_url, redis_timeout=DEFAULT_TIMEOUT) as near_bound, \
                fleet_node("far-bound", origin_url, far_url, redis_timeout=1.0) as far_bound:
            assert (await a.get("/page")).cache_status.stored
            await far.set(Fault.DELAY, delay=0.08)
            skipped = await near_bound.get("/page")
            assert skipped.cache_status.fwd == "uri-miss" and skipped.body == b"page v1", str(skipped)
            read = await far_bound.get("/page")
            assert read.cache_status.hit and read.cache_status.detail == "l2", str(read)
    assert origin.count("/page") == 2


async def test_a_varyd_fill_writes_its_index_and_variant_to_l2_in_one_round_trip(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    """The lookup, the read of the variant index to extend, then one pipelined write of index and
    variant: a peer can never wait a round trip between finding the index and its variant."""
    origin.set("/greeting", headers={**CACHEABLE, "Vary": "Accept-Language"}, body="bonjour")
    async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, own_redis.url) as b:
        assert a.runtime.fleet is not None
        store = a.runtime.fleet.store
        calls: list[str] = []
        metrics_hook = store.on_call

        def record(operation: str, outcome: CallOutcome, seconds: float) -> None:
            calls.append(operation)
            if metrics_hook is not None:
                metrics_hook(operation, outcome, seconds)

        store.on_call = record
        assert (await a.get("/greeting", {"Accept-Language": "fr"})).cache_status.stored
        assert calls == ["get", "get", "put_many"], calls
        seen = await b.get("/greeting", {"Accept-Language": "fr"})
        assert seen.cache_status.detail == "l2" and seen.body == b"bonjour", str(seen)


async def test_a_fill_releases_its_fleet_lock_in_the_write_that_stores_it(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    """Lookup, lock, fetch, then one round trip for the object and the release: three Redis
    round trips per miss, not four; a peer polling the lock finds the object the moment it is free."""
    origin.set("/page", headers=CACHEABLE, body="page v1")
    admin = connect(own_redis.url, timeout=1.0)
    try:
        async with fleet_node("A", origin_url, own_redis.url) as a:
            await admin.config_resetstat()
            assert (await a.get("/page")).cache_status.stored
            stats = await admin.info("commandstats")
            # The acquire (a script), then the release pipelined after the object's SET.
            assert stats["cmdstat_evalsha"]["calls"] == 1 and stats["cmdstat_eval"]["calls"] == 1, stats
            assert [k for k in await admin.keys("*:lock:*") if not k.endswith(b":fence")] == []  # released
    finally:
        await admin.aclose()
