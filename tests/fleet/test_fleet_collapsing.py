"""Request collapsing across proxies sharing a Redis: concurrent misses for one object on two
proxies cost the origin one fetch (in-process collapsing on each, the fleet fill lock between),
whether the two are proxies in one process or ``serve --workers 2 --redis`` worker processes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp

from tests.conftest import RedisServer
from tests.fleet.harness import Admin, fleet_node
from tests.fleet.served import serve
from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

CONCURRENT = 50
ORIGIN_DELAY = 0.3


async def test_fifty_concurrent_misses_on_two_proxies_make_one_origin_request(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    origin.set("/slow", headers={"Cache-Control": "public, max-age=60"}, body="slow", delay=ORIGIN_DELAY)
    async with fleet_node("A", origin_url, own_redis.url) as a, fleet_node("B", origin_url, own_redis.url) as b:
        replies = await asyncio.gather(*((a if i % 2 else b).get("/slow") for i in range(CONCURRENT)))

    assert all(r.status == 200 and r.body == b"slow" for r in replies), [str(r) for r in replies if r.status != 200]
    outcomes = Counter(
        "stored" if r.cache_status.stored else f"collapsed-{r.cache_status.detail or 'same-process'}"
        for r in replies if r.cache_status.stored or r.cache_status.collapsed
    )
    assert origin.count("/slow") == 1, f"origin fetched {origin.count('/slow')} times; outcomes {outcomes}"
    # One proxy fetched; its peers waited on it in-process, the other proxy's leader waited on the
    # fleet lock and read L2, and that proxy's own waiters took its leader's copy.
    assert outcomes == {"stored": 1, "collapsed-same-process": CONCURRENT - 2, "collapsed-l2": 1}, outcomes


async def test_fifty_concurrent_misses_on_two_worker_processes_make_one_origin_request(
    tmp_path: Path, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    origin.set("/slow", headers={"Cache-Control": "public, max-age=60"}, body="slow", delay=ORIGIN_DELAY)
    with serve(tmp_path, origin_url, workers=2, redis_url=own_redis.url) as served:
        # A new connection per request lets the kernel spread them over both workers.
        connector = aiohttp.TCPConnector(force_close=True, limit=CONCURRENT)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
            client = ProxyClient(session, served.url)
            replies = await asyncio.gather(*(client.get("/slow") for _ in range(CONCURRENT)))
            # Each worker's Redis counters (fresh connections reach either worker), to explain a failure.
            admin = Admin(session, served.admin_url)
            redis_views = {json.dumps((await admin.call("GET", "/stats"))[1].get("redis")) for _ in range(4)}

    assert all(r.status == 200 and r.body == b"slow" for r in replies), [str(r) for r in replies if r.status != 200]
    outcomes = Counter(
        "stored" if r.cache_status.stored else f"collapsed-{r.cache_status.detail or 'same-process'}"
        for r in replies if r.cache_status.stored or r.cache_status.collapsed
    )
    assert origin.count("/slow") == 1, (
        f"origin fetched {origin.count('/slow')} times; outcomes {outcomes}; workers' Redis stats {redis_views}")
    assert outcomes["collapsed-l2"] == 1, f"the second worker's leader should wait on the fleet lock: {outcomes}"
