"""Personalization meets the cache: reloads, purges, stale objects, and bodies it cannot rank."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import (
    GENEROUS_DEADLINE,
    ITEMS,
    ConfigFactory,
    bearer,
    fetch,
    origin_requests,
    user,
    write_policies,
)
from tests.support.origin import ProgrammableOrigin

LIST_HEADERS = {"Content-Type": "application/json", "Cache-Control": "public, max-age=60", "ETag": '"base"'}


async def test_a_reload_that_turns_personalization_on_ranks_what_is_already_cached(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "off", drop_personalize=True)
    async with running_proxy(proxy_config(policies=policies)) as proxy:
        plain = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        write_policies(policies, personalize={"deadline": GENEROUS_DEADLINE})
        reload = await fetch(session, f"http://127.0.0.1:{proxy.admin_port}/reload", "POST", headers=bearer())
        ranked = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    assert "ranked" not in plain.cache_status and "private" not in plain.headers["Cache-Control"]
    assert reload.status == 200
    assert "hit" in ranked.cache_status and 'ranked model=demo-ranker-v1"' in ranked.cache_status
    assert ranked.headers["Cache-Control"].startswith("private")
    assert await origin_requests(session, origin) == 1


async def test_a_stale_list_is_ranked_and_told_to_revalidate(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        fresh = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        purge = await fetch(
            session,
            f"http://127.0.0.1:{proxy.admin_port}/purge",
            "POST",
            json={"tags": ["items:books"], "soft": True},
            headers=bearer(),
        )
        stale = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    assert purge.status == 200
    assert "stale" in stale.cache_status and 'ranked model=demo-ranker-v1"' in stale.cache_status
    assert stale.headers["Cache-Control"] == "private, no-cache"  # no freshness left to hand out
    assert stale.body == fresh.body


async def test_a_hard_purge_refetches_the_list_once_for_every_user(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        before = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        await fetch(
            session, f"http://127.0.0.1:{proxy.admin_port}/purge", "POST", json={"tags": ["items"]}, headers=bearer()
        )
        after = [await fetch(session, proxy.url + ITEMS, headers=user(u)) for u in ("u0001", "u0002", "u0003")]
    assert await origin_requests(session, origin) == 2
    assert "fwd=uri-miss" in after[0].cache_status
    assert all('ranked model=demo-ranker-v1"' in seen.cache_status for seen in after)
    assert after[0].body == before.body


async def test_personalized_responses_declare_what_they_vary_on(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession
) -> None:
    """RFC 9110 §12.5.5: the order depends on the uid cookie and the x-user-id header, so a
    private (browser) cache must not hand one user's copy to the next user of the same browser."""
    async with running_proxy(proxy_config()) as proxy:
        seen = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    vary = {name.strip().lower() for name in seen.headers.get("Vary", "").split(",")}
    assert {"cookie", "x-user-id"} <= vary, f"Vary: {seen.headers.get('Vary')!r}"


async def test_a_pretty_printed_list_is_ranked_into_valid_compact_json(
    proxy_config: ConfigFactory, list_origin: ProgrammableOrigin, list_origin_url: str, session: aiohttp.ClientSession
) -> None:
    doc = {"category": "books", "note": "caf\u00e9", "items": [{"id": i, "price": 5.0 + i} for i in range(1, 9)]}
    list_origin.set("/api/items", headers=LIST_HEADERS, body=json.dumps(doc, indent=2))
    async with running_proxy(proxy_config(origin=list_origin_url)) as proxy:
        seen = await fetch(session, proxy.url + "/api/items", headers=user("u0001"))
    assert 'ranked model=demo-ranker-v1"' in seen.cache_status
    assert int(seen.headers["Content-Length"]) == len(seen.body)
    ranked = seen.json()
    assert {k: v for k, v in ranked.items() if k != "items"} == {"category": "books", "note": "caf\u00e9"}
    assert sorted(ranked["items"], key=lambda item: item["id"]) == doc["items"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", "<ul><li>not json</li></ul>"),
        ("application/json", json.dumps({"items": []})),
        ("application/json", json.dumps({"items": {"not": "a list"}})),
        ("application/json", json.dumps([{"id": 1}, {"id": 2}])),
    ],
    ids=["html", "empty-list", "items-not-a-list", "top-level-list"],
)
async def test_a_body_without_a_rankable_list_keeps_the_shared_representation(
    proxy_config: ConfigFactory,
    list_origin: ProgrammableOrigin,
    list_origin_url: str,
    session: aiohttp.ClientSession,
    content_type: str,
    body: str,
) -> None:
    list_origin.set("/api/items", headers={**LIST_HEADERS, "Content-Type": content_type}, body=body)
    async with running_proxy(proxy_config(origin=list_origin_url)) as proxy:
        served = [await fetch(session, proxy.url + "/api/items", headers=user(u)) for u in ("u0001", "u0002")]
        revalidated = await fetch(
            session, proxy.url + "/api/items", headers={**user("u0001"), "If-None-Match": '"base"'}
        )
    for seen in served:
        assert seen.status == 200 and seen.body == body.encode()
        assert seen.headers["ETag"] == '"base"'
        assert seen.headers["Cache-Control"] == "public, max-age=60"
        assert "ranked" not in seen.cache_status
    assert list_origin.count("/api/items") == 1
    assert revalidated.status == 304  # the shared representation's validator still works


async def test_a_stale_list_served_because_the_origin_fails_is_still_ranked(
    proxy_config: ConfigFactory, list_origin: ProgrammableOrigin, list_origin_url: str, session: aiohttp.ClientSession
) -> None:
    items = [{"id": i, "price": 3.0 * i, "popularity": i / 10} for i in range(1, 11)]
    list_origin.set(
        "/api/items",
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=1, stale-if-error=60"},
        body=json.dumps({"items": items}),
    )
    async with running_proxy(proxy_config(origin=list_origin_url)) as proxy:
        fresh = await fetch(session, proxy.url + "/api/items", headers=user("u0001"))
        list_origin.set("/api/items", status=503, body="down")
        await asyncio.sleep(1.5)  # max-age=1 has run out (Age counts in whole seconds)
        stale = await fetch(session, proxy.url + "/api/items", headers=user("u0001"))
    assert stale.status == 200
    assert "fwd=stale" in stale.cache_status and 'origin-503 ranked model=demo-ranker-v1"' in stale.cache_status
    assert stale.body == fresh.body
    assert stale.headers["Cache-Control"] == "private, no-cache"
