"""The personalize block's settings as a client sees them: where the user id comes from, how many
items are ranked, where the list lives, and what the copy says it varies on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import (
    GENEROUS_DEADLINE,
    ITEMS,
    ConfigFactory,
    Seen,
    fetch,
    origin_requests,
    user,
    write_policies,
)
from tests.support.origin import ProgrammableOrigin

CATALOG_ITEMS = [
    {
        "id": i,
        "title": f"item {i}",
        "category": "books",
        "price": 4.0 + 3 * i,
        "popularity": i / 20,
        "published_at": 1_780_000_000 + 86_400 * i,
    }
    for i in range(1, 21)
]


def _vary(seen: Seen) -> list[str]:
    return [name.strip().lower() for name in seen.headers.get("Vary", "").split(",") if name.strip()]


async def test_the_policy_names_the_cookie_and_header_that_carry_the_user(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    policies = write_policies(
        tmp_path / "custom",
        personalize={"deadline": GENEROUS_DEADLINE, "user_cookie": "sid", "user_header": "x-account"},
    )
    async with running_proxy(proxy_config(policies=policies)) as proxy:
        by_cookie = await fetch(session, proxy.url + ITEMS, headers={"Cookie": "theme=dark; sid=u0002"})
        by_header = await fetch(session, proxy.url + ITEMS, headers={"X-Account": "u0002"})
        default_names = await fetch(session, proxy.url + ITEMS, headers={**user("u0002"), "x-user-id": "u0002"})
        anonymous = await fetch(session, proxy.url + ITEMS)
    assert by_cookie.body == by_header.body != anonymous.body
    assert default_names.body == anonymous.body  # uid / x-user-id mean nothing under this policy
    assert set(_vary(by_cookie)) >= {"cookie", "x-account"}
    assert "x-user-id" not in _vary(by_cookie)


async def test_only_the_first_max_candidates_items_are_reordered(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "five", personalize={"deadline": GENEROUS_DEADLINE, "max_candidates": 5})
    base = await fetch(session, origin + ITEMS)
    async with running_proxy(proxy_config(policies=policies)) as proxy:
        served = [await fetch(session, proxy.url + ITEMS, headers=user(u)) for u in ("u0001", "u0002", "u0003")]
    for seen in served:
        assert 'ranked model=demo-ranker-v1"' in seen.cache_status
        assert sorted(seen.item_ids[:5]) == sorted(base.item_ids[:5])
        assert seen.item_ids[5:] == base.item_ids[5:]
    assert len({tuple(seen.item_ids[:5]) for seen in served} | {tuple(base.item_ids[:5])}) > 1


async def test_a_nested_items_path_is_ranked_in_place(
    proxy_config: ConfigFactory,
    list_origin: ProgrammableOrigin,
    list_origin_url: str,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    doc = {"meta": {"page": 1}, "data": {"title": "picks", "items": CATALOG_ITEMS}, "items": ["not", "this"]}
    list_origin.set(
        "/api/items", headers={"Content-Type": "application/json", "Cache-Control": "max-age=60"}, body=json.dumps(doc)
    )
    policies = write_policies(
        tmp_path / "nested", personalize={"deadline": GENEROUS_DEADLINE, "items_path": "data.items"}
    )
    async with running_proxy(proxy_config(origin=list_origin_url, policies=policies)) as proxy:
        seen = await fetch(session, proxy.url + "/api/items", headers=user("u0001"))
    ranked = seen.json()
    assert 'ranked model=demo-ranker-v1"' in seen.cache_status
    assert ranked["meta"] == doc["meta"] and ranked["items"] == doc["items"]
    assert ranked["data"]["title"] == "picks"
    assert sorted(ranked["data"]["items"], key=lambda item: item["id"]) == CATALOG_ITEMS
    assert ranked["data"]["items"] != CATALOG_ITEMS


async def test_the_copy_varies_on_the_user_as_well_as_on_what_the_origin_named(
    proxy_config: ConfigFactory, list_origin: ProgrammableOrigin, list_origin_url: str, session: aiohttp.ClientSession
) -> None:
    list_origin.set(
        "/api/items",
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=60", "Vary": "Accept-Language, Cookie"},
        body=json.dumps({"items": CATALOG_ITEMS}),
    )
    async with running_proxy(proxy_config(origin=list_origin_url)) as proxy:
        seen = await fetch(session, proxy.url + "/api/items", headers={**user("u0001"), "Accept-Language": "de"})
        revalidated = await fetch(
            session,
            proxy.url + "/api/items",
            headers={**user("u0001"), "Accept-Language": "de", "If-None-Match": seen.headers["ETag"]},
        )
    assert 'ranked model=demo-ranker-v1"' in seen.cache_status
    vary = _vary(seen)
    assert set(vary) == {"accept-language", "cookie", "x-user-id"}
    assert len(vary) == len(set(vary)), f"repeated Vary members: {seen.headers['Vary']!r}"
    assert revalidated.status == 304
    assert set(_vary(revalidated)) == set(vary)  # RFC 9110 §15.4.5: a 304 repeats Vary


async def test_users_arriving_together_on_a_cold_list_share_one_fill_and_keep_their_own_order(
    proxy_config: ConfigFactory, list_origin: ProgrammableOrigin, list_origin_url: str, session: aiohttp.ClientSession
) -> None:
    list_origin.set(
        "/api/items",
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=60"},
        body=json.dumps({"items": CATALOG_ITEMS}),
        delay=0.3,
    )
    users = [f"u{i:04d}" for i in range(1, 7)]
    async with running_proxy(proxy_config(origin=list_origin_url)) as proxy:
        together = await asyncio.gather(*(fetch(session, proxy.url + "/api/items", headers=user(u)) for u in users))
        alone = [await fetch(session, proxy.url + "/api/items", headers=user(u)) for u in users]
    assert list_origin.count("/api/items") == 1
    assert sum("collapsed" in seen.cache_status for seen in together) == len(users) - 1
    for first, later in zip(together, alone, strict=True):
        assert 'ranked model=demo-ranker-v1"' in first.cache_status
        assert first.body == later.body  # a collapsed waiter is ranked for itself, not given the leader's copy
    assert len({seen.body for seen in together}) > 1


async def test_demo_origin_is_asked_once_per_list_not_per_user(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        for i in range(1, 51):
            await fetch(session, proxy.url + ITEMS, headers=user(f"u{i:04d}"))
            await fetch(session, proxy.url + ITEMS.replace("books", "games"), headers=user(f"u{i:04d}"))
    assert await origin_requests(session, origin) == 2
