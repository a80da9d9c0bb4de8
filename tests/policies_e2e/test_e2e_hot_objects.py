"""A hot object's hits are answered from a header block rendered once per second of its age
(edgeproxy.proxy.edge ``_rendered_hit``); nothing an operator or the origin changes may be hidden
behind it: Age and ttl keep moving, and purges, refreshes and reloads apply on the next request."""

from __future__ import annotations

import asyncio

from tests.policies_e2e.conftest import PolicyEdge, ServePolicy
from tests.support.origin import ProgrammableOrigin

CACHE_ALL = """
    policies:
      site:
        match: {paths: ["/*"]}
"""


async def hot(edge: PolicyEdge, target: str, times: int = 5) -> None:
    """Fill ``target`` and hit it a few times, so its rendered block is in use."""
    for _ in range(times):
        await edge.get(target)


async def test_age_and_ttl_keep_counting_on_a_hot_object(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/hot", headers={"Cache-Control": "max-age=60"}, body="hot")
    async with serve_policy(CACHE_ALL) as edge:
        await hot(edge, "/hot")
        before = await edge.get("/hot")
        await asyncio.sleep(2.1)
        after = await edge.get("/hot")
    assert before.cache_status.hit and after.cache_status.hit
    assert after.age - before.age in (2, 3), (before.age, after.age)
    assert before.cache_status.ttl - after.cache_status.ttl in (2, 3)
    assert origin.count("/hot") == 1


async def test_a_purge_takes_a_hot_object_out_on_the_next_request(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/hot", headers={"Cache-Control": "max-age=60", "X-Build": "1"}, body="v1")
    async with serve_policy(CACHE_ALL) as edge:
        await hot(edge, "/hot")
        origin.set("/hot", headers={"Cache-Control": "max-age=60", "X-Build": "2"}, body="v2")
        assert (await edge.purge(f"{edge.runtime.url}/hot")).status == 200
        after = await edge.get("/hot")
        # Refilled within the same second of age as the purged copy: its own fields, not v1's.
        hit = await edge.get("/hot")
    assert not after.cache_status.hit and after.body == b"v2"
    assert hit.cache_status.hit and hit.body == b"v2" and hit.headers["X-Build"] == "2"


async def test_a_revalidated_object_is_served_with_the_fields_of_the_304(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/hot", headers={"Cache-Control": "max-age=1", "ETag": '"v1"', "X-Build": "1"}, body="same")
    async with serve_policy(CACHE_ALL) as edge:
        await hot(edge, "/hot")
        origin.set("/hot", headers={"Cache-Control": "max-age=60", "ETag": '"v1"', "X-Build": "2"}, body="same")
        await asyncio.sleep(2.1)
        revalidated = await edge.get("/hot")
        later = await edge.get("/hot")
    assert revalidated.cache_status.detail == "revalidated", revalidated
    assert later.cache_status.hit and later.headers["X-Build"] == "2" and later.body == b"same"


async def test_a_reload_applies_to_a_hot_object_on_the_next_request(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/hot", headers={"Cache-Control": "max-age=60"}, body="hot")
    async with serve_policy(CACHE_ALL) as edge:
        await hot(edge, "/hot")
        edge.write("""
            policies:
              site:
                match: {paths: ["/*"]}
                bypass: {paths: ["/hot"]}
        """)
        assert (await edge.reload()).status == 200
        after = await edge.get("/hot")
    assert after.cache_status.fwd == "bypass" and after.cache_status.detail == "req_bypass_path", after
    assert origin.count("/hot") == 2
