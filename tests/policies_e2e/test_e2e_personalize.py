"""`personalize`: a personalized route ranks each user's copy of one shared cached list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.policies_e2e.conftest import ServePolicy
from tests.support.origin import serve_demo_origin

PERSONALIZED = """
    policies:
      items:
        priority: 10
        match: {paths: [/api/items]}
        key: {query: include, query_params: [category, limit], sort_query: true}
        personalize:
          model: demo-ranker
          items_path: items
          deadline: 50ms
          max_candidates: 500
          user_cookie: uid
          user_header: x-user-id
      rest:
        match: {paths: ["/*"]}
"""
ITEMS = "/api/items?category=books&limit=20"


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


def item_ids(body: bytes) -> list[int]:
    return [item["id"] for item in json.loads(body)["items"]]


async def test_a_personalized_route_answers_private_ranked_copies_of_one_cached_list(
    serve_policy: ServePolicy, demo_url: str
):
    async with serve_policy(PERSONALIZED, origin=demo_url) as edge:
        alice = await edge.get(ITEMS, headers={"Cookie": "uid=u0001"})
        bob = await edge.get(ITEMS, headers={"x-user-id": "u0002"})
    for seen in (alice, bob):
        assert seen.status == 200, seen
        assert seen.headers["Cache-Control"].startswith("private"), seen.headers
        assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen
    assert bob.cache_status.hit, "the second user is ranked from the stored list, not a new origin fetch"
    assert sorted(item_ids(alice.body)) == sorted(item_ids(bob.body))




async def test_personalize_off_serves_the_origins_shared_list(serve_policy: ServePolicy, demo_url: str):
    async with serve_policy("""
        policies:
          items:
            match: {paths: [/api/items]}
            personalize: off
    """, origin=demo_url) as edge:
        first = await edge.get(ITEMS, headers={"Cookie": "uid=u0001"})
        second = await edge.get(ITEMS, headers={"Cookie": "uid=u0002"})
    assert "private" not in first.headers["Cache-Control"], first.headers
    assert "ranked" not in (second.cache_status.detail or "")
    assert second.cache_status.hit and second.body == first.body
