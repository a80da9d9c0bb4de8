"""Redis failing under a running proxy never fails a request: killed, paused, or silently
swallowing traffic (a blackhole), the proxy degrades to L1 + origin, keeps each request's latency
bounded, does not hammer Redis, and serves from L2 again once Redis is back.

Each test drives 200 sequential requests ~10 ms apart (each a new URL, so every one looks up L2,
takes the fill lock and writes L2), breaks Redis at request 20 and repairs it at request 120.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from tests.fleet.harness import Node, Timed, fleet_node, redis_counts, timed_get
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin

REQUESTS = 200
SPACING = 0.01
BREAK_AT, REPAIR_AT = 20, 120
LATENCY_BOUND = 1.0
"""Generous on purpose (this is not a speed test): a request that waited out a dead Redis for
the client's patience, or a retry loop, would blow it; the degraded path costs a few timeouts."""
RECOVERY_TIMEOUT = 5.0

Step = Callable[[], Awaitable[None]]


@pytest.fixture(autouse=True)
def cacheable(origin: ProgrammableOrigin) -> None:
    origin.set("/r", headers={"Cache-Control": "public, max-age=60"}, body="r")
    origin.set("/recovery", headers={"Cache-Control": "public, max-age=60"}, body="recovery")


@dataclass(frozen=True, slots=True)
class Drive:
    results: list[Timed]

    @property
    def failures(self) -> list[str]:
        return [
            f"request {i}: {r.error or r.seen}" for i, r in enumerate(self.results)
            if r.seen is None or r.seen.status != 200
        ]

    @property
    def max_latency(self) -> float:
        return max(r.seconds for r in self.results)


async def drive(node: Node, steps: Mapping[int, Step]) -> Drive:
    results = []
    for i in range(REQUESTS):
        if i in steps:
            await steps[i]()
        results.append(await timed_get(node, f"/r?i={i}"))
        await asyncio.sleep(SPACING)
    return Drive(results)


def assert_served_throughout(run: Drive, label: str) -> None:
    print(f"{label}: {len(run.results)} requests, max latency {run.max_latency * 1000:.1f} ms")
    assert not run.failures, f"{label}: requests failed while Redis was out: {run.failures[:5]}"
    assert run.max_latency < LATENCY_BOUND, f"{label}: a request took {run.max_latency:.3f}s"


async def assert_recovers(broken: Node, origin_url: str, redis_url: str) -> None:
    """Both directions work again: ``broken`` reads what a healthy proxy wrote, and vice versa."""
    async with fleet_node("healthy", origin_url, redis_url) as healthy:
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        attempt = 0
        while True:
            attempt += 1
            path = f"/recovery?read={attempt}"
            await healthy.get(path)
            seen = await broken.get(path)
            if seen.cache_status.detail == "l2":
                break
            assert time.monotonic() < deadline, f"{broken.name} still not reading L2 {RECOVERY_TIMEOUT}s after repair"
            await asyncio.sleep(0.05)
        assert (await broken.get("/recovery?write")).cache_status.stored
        seen = await healthy.get("/recovery?write")
        assert seen.cache_status.detail == "l2", f"what {broken.name} filled after recovery is not in L2: {seen}"


def assert_no_storm(commands: int, connections: int, requests: int, label: str) -> None:
    """A healthy miss costs about four commands (GET, lock, release, SET) on one pooled connection.
    Reconnecting or retrying per request would show as a connection (or several commands) each."""
    print(f"{label}: Redis processed {commands} commands and accepted {connections} connections "
          f"over a window of {requests} requests")
    assert commands <= 5 * requests + 50, f"{label}: {commands} commands for {requests} requests"
    assert connections <= requests // 4 + 10, f"{label}: {connections} new connections for {requests} requests"


async def test_redis_killed_mid_run(
    origin_url: str, own_redis: RedisServer
) -> None:
    async def kill() -> None:
        own_redis.stop()

    async def restart() -> None:
        await asyncio.to_thread(own_redis.start)

    async with fleet_node("A", origin_url, own_redis.url) as a:
        run = await drive(a, {BREAK_AT: kill, REPAIR_AT: restart})
        # A restarted redis-server counts from zero: all it saw is the recovery window.
        commands, connections = await redis_counts(own_redis.url)
        assert_served_throughout(run, "killed")
        assert_no_storm(commands, connections, REQUESTS - REPAIR_AT, "killed")
        await assert_recovers(a, origin_url, own_redis.url)


async def test_redis_paused(origin_url: str, own_redis: RedisServer) -> None:
    control = Redis.from_url(own_redis.url)
    window: list[tuple[int, int]] = []

    async def pause() -> None:
        window.append(await redis_counts(own_redis.url))
        await control.execute_command("CLIENT", "PAUSE", 2000)  # type: ignore[no-untyped-call]  # redis-py stubs

    try:
        async with fleet_node("A", origin_url, own_redis.url) as a:
            run = await drive(a, {BREAK_AT: pause})
            commands, connections = await redis_counts(own_redis.url)
            assert_served_throughout(run, "paused")
            assert_no_storm(commands - window[0][0], connections - window[0][1], REQUESTS - BREAK_AT, "paused")
            await assert_recovers(a, origin_url, own_redis.url)
    finally:
        await control.aclose()


async def test_redis_blackholed(origin_url: str, own_redis: RedisServer) -> None:
    async with FaultProxy("127.0.0.1", own_redis.port) as hole:
        redis_url = f"redis://127.0.0.1:{hole.port}/0"
        window: list[tuple[int, int]] = []

        async def swallow() -> None:
            window.append(await redis_counts(own_redis.url))
            await hole.set(Fault.BLACKHOLE)

        async def release() -> None:
            await hole.set(Fault.PASS)

        async with fleet_node("A", origin_url, redis_url) as a:
            accepted = hole.accepted
            run = await drive(a, {BREAK_AT: swallow, REPAIR_AT: release})
            commands, connections = await redis_counts(own_redis.url)
            assert_served_throughout(run, "blackholed")
            # What was held in the blackhole reached Redis on release: the window counts it all.
            assert_no_storm(commands - window[0][0], hole.accepted - accepted, REQUESTS - BREAK_AT, "blackholed")
            await assert_recovers(a, origin_url, redis_url)
