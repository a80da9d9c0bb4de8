"""Purges issued on one proxy's admin API hold on every proxy sharing the Redis.

Each test fills an object through A, reads it through B (so both hold it in L1 and it sits in L2),
purges through A, waits until B has received the ban (the bus is asynchronous; how long that takes
is measured by bench/purge_propagation.py), changes the origin's answer, and checks that no proxy
serves the old one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import RedisServer
from tests.fleet.harness import Node, fleet_node, url
from tests.proxy.harness import Seen, wait_until
from tests.support.origin import ProgrammableOrigin

PATHS = ("/news/1", "/news/2", "/shop/1")


def program(origin: ProgrammableOrigin, version: str, *, paths: Sequence[str] = PATHS) -> None:
    """Each path answers ``<path> <version>``, tagged with its section (first path segment)."""
    for path in paths:
        section = path.split("/")[1]
        origin.set(
            path,
            headers={
                "Cache-Control": "public, max-age=60, stale-if-error=300",
                "ETag": f'"{version}"',
                "Surrogate-Key": f"all {section}",
            },
            body=f"{path} {version}",
        )


@asynccontextmanager
async def filled_fleet(origin: ProgrammableOrigin, origin_url: str, redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    """A and B sharing ``redis``, every path filled through A and read through B."""
    program(origin, "v1")
    async with fleet_node("A", origin_url, redis.url) as a, fleet_node("B", origin_url, redis.url) as b:
        for path in PATHS:
            assert (await a.get(path)).cache_status.stored
            assert (await b.get(path)).cache_status.detail == "l2"
        yield a, b


async def purge_everywhere(a: Node, b: Node, **selectors: Any) -> None:
    before = b.bans
    await a.admin.purge(**selectors)
    await wait_until(lambda: b.bans > before, what=f"B receiving the purge {selectors}")


def assert_refetched(seen: Seen, path: str, node: Node) -> None:
    assert seen.status == 200 and seen.cache_status.fwd == "uri-miss", f"{node.name} {path}: {seen}"
    assert seen.body == f"{path} v2".encode(), f"{node.name} served the purged {path}: {seen}"


def assert_still_cached(seen: Seen, path: str, node: Node) -> None:
    assert seen.cache_status.hit and seen.body == f"{path} v1".encode(), f"{node.name} {path}: {seen}"


async def check(a: Node, b: Node, purged: Sequence[str]) -> None:
    for node in (b, a):
        for path in PATHS:
            seen = await node.get(path)
            if path in purged:
                assert_refetched(seen, path, node)
            else:
                assert_still_cached(seen, path, node)


async def test_purge_by_url_reaches_every_proxy(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    async with filled_fleet(origin, origin_url, own_redis) as (a, b):
        await purge_everywhere(a, b, urls=[url("/news/1")])
        program(origin, "v2")
        await check(a, b, purged=["/news/1"])


async def test_purge_by_prefix_reaches_every_proxy(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    async with filled_fleet(origin, origin_url, own_redis) as (a, b):
        await purge_everywhere(a, b, prefixes=[url("/news/")])
        program(origin, "v2")
        await check(a, b, purged=["/news/1", "/news/2"])


async def test_purge_by_tag_reaches_every_proxy(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    async with filled_fleet(origin, origin_url, own_redis) as (a, b):
        await purge_everywhere(a, b, tags=["shop"])
        program(origin, "v2")
        await check(a, b, purged=["/shop/1"])


async def test_purge_all_reaches_every_proxy(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    async with filled_fleet(origin, origin_url, own_redis) as (a, b):
        await purge_everywhere(a, b, all=True)
        program(origin, "v2")
        await check(a, b, purged=PATHS)


async def test_soft_purge_serves_stale_on_origin_error_and_revalidates_when_it_is_back(
    origin: ProgrammableOrigin, origin_url: str, own_redis: RedisServer
) -> None:
    async with filled_fleet(origin, origin_url, own_redis) as (a, b):
        await purge_everywhere(a, b, urls=[url("/news/1")], soft=True)

        origin.set("/news/1", status=503, body="origin down")
        # RFC 5861 §4: a soft-purged object is stale, and stale-if-error lets it stand in.
        stale = await b.get("/news/1")
        assert stale.status == 200 and stale.body == b"/news/1 v1", str(stale)
        # RFC 9211 §2.2: the request was forwarded, then the stale copy stood in for the 503.
        assert (stale.cache_status.fwd_status, stale.cache_status.detail) == (503, "origin-503"), str(stale)

        program(origin, "v1", paths=["/news/1"])
        before = origin.count("/news/1")
        # RFC 9111 §4.3.1: the stale copy is revalidated with its validator; the origin says 304.
        revalidated = await b.get("/news/1")
        assert revalidated.status == 200 and revalidated.body == b"/news/1 v1", str(revalidated)
        assert revalidated.cache_status.fwd == "stale" and revalidated.cache_status.fwd_status == 304, str(revalidated)
        assert origin.last("/news/1").headers.get("If-None-Match") == '"v1"'

        fresh_again = await b.get("/news/1")
        assert fresh_again.cache_status.hit and fresh_again.cache_status.detail == "l1", str(fresh_again)
        assert origin.count("/news/1") == before + 1
        assert (await b.get("/news/2")).cache_status.hit, "a soft purge of one URL leaves the others fresh"
