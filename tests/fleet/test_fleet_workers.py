"""``edgeproxy serve --workers 2`` as an operator runs it: the workers share the port
(SO_REUSEPORT), a purge sent to the admin API reaches every worker (relayed by the supervisor
without Redis, over the fleet bus with it), /metrics sums all workers, SIGTERM drains and exits 0,
and a worker that dies is replaced while the port answers.

Clients send ``Connection: close`` so each request is a new connection the kernel may hand to
either worker; "both workers did X" is read from the origin's request count (each worker has its
own L1, so each fetches an object once).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from edgeproxy.proxy.supervisor import DRAIN_SECONDS
from tests.conftest import RedisServer
from tests.fleet.harness import Admin
from tests.fleet.served import Served, serve
from tests.proxy.harness import ProxyClient, wait_until
from tests.support.origin import ProgrammableOrigin

MAX_TRIES = 60
"""Requests sent at most until both workers have answered (each new connection picks a worker)."""


def program(origin: ProgrammableOrigin, version: str) -> None:
    origin.set("/page", headers={"Cache-Control": "public, max-age=60", "ETag": f'"{version}"'},
               body=f"page {version}")


@asynccontextmanager
async def clients(served: Served) -> AsyncIterator[tuple[ProxyClient, Admin]]:
    """A proxy client opening a new connection per request, and an admin client."""
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield ProxyClient(session, served.url), Admin(session, served.admin_url)


async def fill_every_worker(client: ProxyClient, origin: ProgrammableOrigin, workers: int = 2) -> int:
    """Request /page until ``workers`` more origin fetches happened; how many requests it took."""
    target = origin.count("/page") + workers
    for sent in range(1, MAX_TRIES + 1):
        assert (await client.get("/page")).status == 200
        if origin.count("/page") == target:
            return sent
    raise AssertionError(f"after {MAX_TRIES} requests only {origin.count('/page')} origin fetches: "
                         "the connections did not reach every worker")


async def stats_bans(admin: Admin) -> int:
    status, stats = await admin.call("GET", "/stats")
    assert status == 200, stats
    return int(stats["bans"])


async def every_worker_holds_more_bans_than(admin: Admin, bans: int) -> None:
    """Messages between workers are asynchronous: wait until a run of fresh admin connections
    (which the kernel spreads over the workers) all report more than ``bans`` bans."""
    streak = 0
    deadline = time.monotonic() + 3
    while streak < 6:
        streak = streak + 1 if await stats_bans(admin) > bans else 0
        assert time.monotonic() < deadline, f"a worker never received the purge (its /stats bans stayed {bans})"
        await asyncio.sleep(0.15)  # each worker's admin API allows a client 5 calls/s after a burst of 20


async def assert_purge_reaches_every_worker(served: Served, client: ProxyClient, admin: Admin,
                                            origin: ProgrammableOrigin) -> None:
    program(origin, "v1")
    await fill_every_worker(client, origin)
    bans = await stats_bans(admin)
    await admin.purge(urls=[f"{served.url}/page"])
    await every_worker_holds_more_bans_than(admin, bans)
    program(origin, "v2")
    fetched = origin.count("/page")
    replies = [await client.get("/page") for _ in range(40)]
    stale = [str(r) for r in replies if r.body != b"page v2"]
    assert not stale, f"a worker served the purged object: {stale[:3]}"
    assert origin.count("/page") == fetched + 2, "each worker fetches the purged object once again"


async def test_a_purge_reaches_every_worker(tmp_path: Path, origin: ProgrammableOrigin, origin_url: str) -> None:
    with serve(tmp_path, origin_url, workers=2) as served:
        async with clients(served) as (client, admin):
            await assert_purge_reaches_every_worker(served, client, admin, origin)


def requests_total(exposition: str) -> dict[str, float]:
    """``edgeproxy_requests_total`` summed per phase."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "edgeproxy_requests_total":
                phase = sample.labels["phase"]
                totals[phase] = totals.get(phase, 0.0) + sample.value
    return totals


async def test_metrics_are_summed_over_the_workers(
    tmp_path: Path, origin: ProgrammableOrigin, origin_url: str
) -> None:
    program(origin, "v1")
    with serve(tmp_path, origin_url, workers=2) as served:
        async with clients(served) as (client, admin):
            sent = await fill_every_worker(client, origin)
            for _ in range(30 - sent):
                assert (await client.get("/page")).status == 200

            # Workers record a request after answering it: poll until all 30 are counted.
            deadline = time.monotonic() + 3
            while sum((totals := requests_total(await admin.text("/metrics"))).values()) < 30:
                assert time.monotonic() < deadline, f"metrics count {totals} after 3s, 30 requests were made"
                await asyncio.sleep(0.05)
            assert totals == {"miss": 2, "hit": 28}, totals


async def test_sigterm_drains_the_request_in_flight_and_exits_0(
    tmp_path: Path, origin: ProgrammableOrigin, origin_url: str
) -> None:
    origin.set("/slow", headers={"Cache-Control": "public, max-age=60"}, body="slow", delay=0.5)
    with serve(tmp_path, origin_url, workers=2) as served:
        async with clients(served) as (client, _admin):
            in_flight = asyncio.create_task(client.get("/slow"))
            await wait_until(lambda: origin.count("/slow") == 1, what="the slow request reaching the origin")
            os.kill(served.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            reply = await in_flight
            assert reply.status == 200 and reply.body == b"slow", str(reply)
            code = await asyncio.to_thread(served.proc.wait, DRAIN_SECONDS + 2)
            took = time.monotonic() - signalled
            assert code == 0, served.log_tail()
            # Draining waits for requests in flight only: the one above needs 0.5 s. Sitting out the
            # whole drain timeout would mean a worker waited for a request that did not exist.
            assert took < DRAIN_SECONDS, f"exit took {took:.1f}s after SIGTERM:\n{served.log_tail()}"
            assert not served.workers(), "workers outlived their supervisor"


async def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(
    tmp_path: Path, origin: ProgrammableOrigin, origin_url: str
) -> None:
    origin.set("/ping", headers={"Cache-Control": "no-store"}, body="pong")
    with serve(tmp_path, origin_url, workers=2) as served:
        async with clients(served) as (client, admin):
            before = served.workers()
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            failures: list[str] = []
            sent = 0
            deadline = time.monotonic() + 10
            while len(served.workers() - before) < 1 or len(served.workers()) < 2:
                assert time.monotonic() < deadline, f"no replacement worker after 10s:\n{served.log_tail()}"
                try:
                    reply = await client.get("/ping")
                    if reply.status != 200:
                        failures.append(str(reply))
                except aiohttp.ClientError as exc:
                    failures.append(repr(exc))
                sent += 1
                await asyncio.sleep(0.02)
            assert victim not in served.workers()
            assert not failures, f"{len(failures)} of {sent} requests failed while a worker restarted: {failures[:3]}"
            # The replacement is a full member: it obeys purges relayed from the other worker.
            await assert_purge_reaches_every_worker(served, client, admin, origin)


async def test_with_redis_a_purge_reaches_every_worker_through_the_bus(
    tmp_path: Path, origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    program(origin, "v1")
    with serve(tmp_path, origin_url, workers=2, redis_url=own_redis.url) as served:
        async with clients(served) as (client, admin):
            # With a shared L2 the second worker fills its L1 from Redis: wait for that hit.
            for _ in range(MAX_TRIES):
                if (await client.get("/page")).cache_status.detail == "l2":
                    break
            else:
                raise AssertionError(f"no L2 hit in {MAX_TRIES} requests: the connections did not reach both workers")
            bans = await stats_bans(admin)
            await admin.purge(urls=[f"{served.url}/page"])
            await every_worker_holds_more_bans_than(admin, bans)
            program(origin, "v2")
            replies = [await client.get("/page") for _ in range(40)]
            stale = [str(r) for r in replies if r.body != b"page v2"]
            assert not stale, f"a worker served the purged object: {stale[:3]}"
