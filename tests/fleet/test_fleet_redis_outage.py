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
from dataclasses import dataclass, field
from functools import partial

import pytest
from redis.asyncio import Redis

from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT
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


@dataclass(slots=True)
class RedisMeter:
    """Commands and connections the Redis server counted, marked at moments of the run.

    ``total_commands_processed`` also counts the commands inside our Lua scripts (fill lock), so
    a request's cost is calibrated on the healthy start of the run rather than assumed.
    """

    redis_url: str
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)

    async def mark(self, name: str) -> None:
        self.marks[name] = await redis_counts(self.redis_url)

    def since(self, name: str) -> tuple[int, int]:
        return self.marks["end"][0] - self.marks[name][0], self.marks["end"][1] - self.marks[name][1]

    @property
    def healthy_cost(self) -> float:
        """Commands per request while Redis was fine (requests 0 .. BREAK_AT)."""
        return (self.marks["healthy"][0] - self.marks["start"][0]) / BREAK_AT


def assert_no_storm(meter: RedisMeter, commands: int, connections: int, requests: int, label: str) -> None:
    """The outage and the recovery after it cost Redis no more than the same traffic would have
    cost a healthy Redis (plus reconnect handshakes); retries per request, or reconnecting per
    request, would show here."""
    bound = 1.5 * meter.healthy_cost * requests + 30
    print(f"{label}: {meter.healthy_cost:.1f} commands per healthy request; over the {requests} requests from the "
          f"outage on, Redis processed {commands} commands (bound {bound:.0f}) and accepted {connections} connections")
    assert commands <= bound, f"{label}: {commands} commands for {requests} requests"
    assert connections <= requests // 4 + 10, f"{label}: {connections} new connections for {requests} requests"


async def test_redis_killed_mid_run(origin_url: str, own_redis: RedisServer) -> None:
    meter = RedisMeter(own_redis.url)

    async def kill() -> None:
        await meter.mark("healthy")
        own_redis.stop()

    async def restart() -> None:
        await asyncio.to_thread(own_redis.start)

    async with fleet_node("A", origin_url, own_redis.url, redis_timeout=DEFAULT_TIMEOUT) as a:
        run = await drive(a, {0: partial(meter.mark, "start"), BREAK_AT: kill, REPAIR_AT: restart})
        await meter.mark("end")
        assert_served_throughout(run, "killed")
        # A restarted redis-server counts from zero: all it saw is the recovery window.
        commands, connections = meter.marks["end"]
        assert_no_storm(meter, commands, connections, REQUESTS - REPAIR_AT, "killed")
        await assert_recovers(a, origin_url, own_redis.url)


async def test_redis_paused(origin_url: str, own_redis: RedisServer) -> None:
    meter = RedisMeter(own_redis.url)
    control = Redis.from_url(own_redis.url)

    async def pause() -> None:
        await meter.mark("healthy")
        await control.execute_command("CLIENT", "PAUSE", 2000)  # type: ignore[no-untyped-call]  # redis-py stubs

    try:
        async with fleet_node("A", origin_url, own_redis.url, redis_timeout=DEFAULT_TIMEOUT) as a:
            run = await drive(a, {0: partial(meter.mark, "start"), BREAK_AT: pause})
            await meter.mark("end")
            assert_served_throughout(run, "paused")
            assert_no_storm(meter, *meter.since("healthy"), REQUESTS - BREAK_AT, "paused")
            await assert_recovers(a, origin_url, own_redis.url)
    finally:
        await control.aclose()


async def test_redis_blackholed(origin_url: str, own_redis: RedisServer) -> None:
    meter = RedisMeter(own_redis.url)
    async with FaultProxy("127.0.0.1", own_redis.port) as hole:
        redis_url = f"redis://127.0.0.1:{hole.port}/0"
        accepted: list[int] = []

        async def swallow() -> None:
            await meter.mark("healthy")
            accepted.append(hole.accepted)
            await hole.set(Fault.BLACKHOLE)

        async def release() -> None:
            await hole.set(Fault.PASS)

        async with fleet_node("A", origin_url, redis_url, redis_timeout=DEFAULT_TIMEOUT) as a:
            run = await drive(a, {0: partial(meter.mark, "start"), BREAK_AT: swallow, REPAIR_AT: release})
            await meter.mark("end")
            assert_served_throughout(run, "blackholed")
            # What the blackhole held reached Redis on release, so the window counts it all;
            # connections are counted at the fault proxy (the proxy under test's side).
            commands, _ = meter.since("healthy")
            assert_no_storm(meter, commands, hole.accepted - accepted[0], REQUESTS - BREAK_AT, "blackholed")
            await assert_recovers(a, origin_url, redis_url)
