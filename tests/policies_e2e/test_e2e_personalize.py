"""`personalize`: a personalized route ranks each user's copy of one shared cached list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from edgeproxy.demo.catalog import items_in
from tests.policies_e2e.conftest import ServePolicy
from tests.support.origin import ProgrammableOrigin, serve_demo_origin

PERSONALIZED = """
    policies:
      items:
        priority: 10
        match: {paths: [/api/items]}
        key: {query: include, query_params: [category, limit], sort_query: true}
        personalize:
          model: demo-ranker
          items_path: items
          deadline: 1s
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
    async with serve_policy(
        """
        policies:
          items:
            match: {paths: [/api/items]}
            personalize: off
    """,
        origin=demo_url,
    ) as edge:
        first = await edge.get(ITEMS, headers={"Cookie": "uid=u0001"})
        second = await edge.get(ITEMS, headers={"Cookie": "uid=u0002"})
    assert "private" not in first.headers["Cache-Control"], first.headers
    assert "ranked" not in (second.cache_status.detail or "")
    assert second.cache_status.hit and second.body == first.body


async def origin_order(demo_url: str, target: str) -> list[int]:
    """The list as the demo origin itself orders it."""
    async with aiohttp.ClientSession() as session, session.get(demo_url + target) as response:
        return item_ids(await response.read())


async def test_max_candidates_ranks_only_the_first_items_and_keeps_the_rest_in_origin_order(
    serve_policy: ServePolicy, demo_url: str
):
    async with serve_policy(
        """
        policies:
          items:
            match: {paths: [/api/items]}
            personalize: {model: demo-ranker, max_candidates: 5, deadline: 1s}
    """,
        origin=demo_url,
    ) as edge:
        seen = await edge.get(ITEMS, headers={"x-user-id": "u0001"})
    base = await origin_order(demo_url, ITEMS)
    ranked = item_ids(seen.body)
    assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen
    assert sorted(ranked[:5]) == sorted(base[:5])
    assert ranked[5:] == base[5:]


async def test_user_cookie_and_user_header_name_where_the_user_id_is_read(serve_policy: ServePolicy, demo_url: str):
    """With the demo world's profiles, u0001 has a known taste and is ranked unlike an anonymous
    user; the policy's cookie and header names decide whether the proxy finds that id at all."""
    async with serve_policy(
        """
        policies:
          items:
            match: {paths: [/api/items]}
            personalize: {model: demo-ranker, user_cookie: member, user_header: x-member, deadline: 1s}
    """,
        origin=demo_url,
        demo_profiles=True,
    ) as edge:

        async def order(headers: dict[str, str]) -> list[int]:
            seen = await edge.get(ITEMS, headers=headers)
            assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen
            return item_ids(seen.body)

        anonymous = await order({})
        by_cookie = await order({"Cookie": "member=u0001"})
        by_header = await order({"x-member": "u0001"})
        default_cookie = await order({"Cookie": "uid=u0001"})
        default_header = await order({"x-user-id": "u0001"})
        cookie_wins = await order({"Cookie": "member=u0001", "x-member": "nobody"})
    assert by_cookie == by_header != anonymous
    assert default_cookie == default_header == anonymous
    assert cookie_wins == by_cookie, "the header is read only when the cookie is absent"


async def test_items_path_finds_a_list_nested_in_the_document(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    books = items_in("books")[:12]
    document = json.dumps({"data": {"results": [item.as_json() for item in books], "page": 1}, "ok": True})
    origin.set("/search", headers={"Cache-Control": "max-age=60", "Content-Type": "application/json"}, body=document)
    async with serve_policy("""
        policies:
          nested:
            match: {paths: [/search]}
            personalize: {model: demo-ranker, items_path: data.results, deadline: 1s}
    """) as edge:
        seen = await edge.get("/search")
    assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen
    ranked = json.loads(seen.body)
    assert ranked["ok"] is True and ranked["data"]["page"] == 1
    assert sorted(it["id"] for it in ranked["data"]["results"]) == sorted(item.id for item in books)


async def test_a_wrong_items_path_serves_the_list_unranked(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    document = json.dumps({"data": {"results": [item.as_json() for item in items_in("books")[:12]]}})
    origin.set("/search", headers={"Cache-Control": "max-age=60", "Content-Type": "application/json"}, body=document)
    async with serve_policy("""
        policies:
          flat:
            personalize: {model: demo-ranker, items_path: items}
    """) as edge:
        seen = await edge.get("/search")
    assert seen.status == 200 and seen.body == document.encode(), seen
    assert "ranked" not in (seen.cache_status.detail or "")


async def test_personalize_turned_on_by_a_reload_takes_effect(serve_policy: ServePolicy, demo_url: str):
    """A proxy started without any personalized route must rank once a reload adds one: a reload
    that reports "reloaded" and keeps serving the route unranked and shared is a silent no-op."""
    async with serve_policy(
        """
        policies:
          items:
            match: {paths: [/api/items]}
            personalize: off
    """,
        origin=demo_url,
    ) as edge:
        edge.write(PERSONALIZED)
        answer = await edge.reload()
        seen = await edge.get(ITEMS, headers={"x-user-id": "u0001"})
    assert answer.status == 200 and answer.body["outcome"] == "reloaded", answer
    assert seen.headers["Cache-Control"].startswith("private"), seen.headers
    assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen


async def test_switching_personalization_on_and_off_under_load_fails_no_request(
    serve_policy: ServePolicy, demo_url: str
):
    """20 clients for ~2 s on the list while reloads turn its personalization on and off 10 times."""
    off = PERSONALIZED.replace("personalize:", "personalize: off\n        x-unused:")
    outcomes: list[str] = []
    async with serve_policy(off, origin=demo_url) as edge:
        stop = asyncio.Event()

        async def client(number: int) -> None:
            while not stop.is_set():
                try:
                    seen = await edge.get(ITEMS, headers={"x-user-id": f"u{number:04d}"})
                except aiohttp.ClientError as exc:
                    outcomes.append(repr(exc))
                    continue
                if seen.status != 200 or not item_ids(seen.body):
                    outcomes.append(f"{seen.status} {seen.body[:80]!r}")
                else:
                    outcomes.append("private" if seen.headers["Cache-Control"].startswith("private") else "shared")

        clients = [asyncio.create_task(client(number)) for number in range(20)]
        answers = []
        for flip in range(10):
            await asyncio.sleep(0.2)
            edge.write(PERSONALIZED if flip % 2 == 0 else off)
            answers.append(await edge.reload())
        stop.set()
        await asyncio.gather(*clients)
    assert [a.status for a in answers] == [200] * 10, answers
    failed = [o for o in outcomes if o not in ("private", "shared")]
    assert not failed, f"{len(failed)} of {len(outcomes)} failed: {failed[:5]}"
    assert {"private", "shared"} <= set(outcomes)


async def test_a_personalized_copy_names_what_it_varies_on(serve_policy: ServePolicy, demo_url: str):
    """RFC 9110 §12.5.5: the ranked body is selected by the user cookie or header, so a browser's
    private cache must not hand one signed-in user's order to the next user of that browser."""
    async with serve_policy(PERSONALIZED, origin=demo_url) as edge:
        seen = await edge.get(ITEMS, headers={"Cookie": "uid=u0001"})
    assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), seen
    vary = {name.strip().lower() for value in seen.headers.getall("Vary", []) for name in value.split(",")}
    assert {"cookie", "x-user-id"} <= vary or "*" in vary, f"Vary: {seen.headers.getall('Vary', [])}"
