"""The shipped `policies/` in front of the demo origin: each documented intent of demo.yaml holds."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.proxy.runtime import ProxyConfig, running_proxy
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import serve_demo_origin

SHIPPED = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


@pytest.fixture
async def demo(demo_url: str, tmp_path: Path) -> AsyncIterator[ProxyClient]:
    config = ProxyConfig(origin=demo_url, port=0, policies=SHIPPED, events_path=tmp_path / "events.jsonl")
    async with running_proxy(config) as runtime, proxy_client(runtime.url) as client:
        yield client


async def origin_gets(demo_url: str, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{demo_url}/_control/stats") as response:
        stats = await response.json()
    return int(stats["paths"].get(path, {}).get("GET", 0))


async def test_item_lists_are_personalized_from_one_entry_whatever_the_tracking_parameters(
    demo: ProxyClient, demo_url: str
):
    first = await demo.get("/api/items?limit=5&category=books&utm_source=mail", headers={"Cookie": "uid=u0001"})
    second = await demo.get("/api/items?category=books&fbclid=x&limit=5&page=9", headers={"x-user-id": "u0002"})
    for seen in (first, second):
        assert seen.status == 200 and seen.headers["Cache-Control"].startswith("private"), seen
        # demo.yaml's 2ms deadline may pass on a busy machine: then the base order goes out
        # ("deadline model=…"), still as the personalized route's private copy.
        assert re.search(r"\b(ranked|deadline) model=demo-ranker", seen.cache_status.detail or ""), seen
        assert len(json.loads(seen.body)["items"]) == 5
    assert second.cache_status.hit
    assert await origin_gets(demo_url, "/api/items") == 1


async def test_signed_in_pages_and_preview_sessions_go_straight_to_the_origin(demo: ProxyClient):
    account = await demo.get("/account", headers={"Cookie": "uid=u0001"})
    preview = await demo.get("/items/3", headers={"Cookie": "preview=1"})
    after_preview = await demo.get("/items/3")
    assert account.cache_status.detail == "req_bypass_path", account
    assert preview.cache_status.detail == "req_bypass_cookie", preview
    assert after_preview.cache_status.fwd == "uri-miss", "the preview response must not have been stored"


async def test_unknown_items_are_remembered_briefly(demo: ProxyClient, demo_url: str):
    first = await demo.get("/items/999999")
    second = await demo.get("/items/999999")
    assert first.status == second.status == 404
    assert second.cache_status.hit, second
    assert await origin_gets(demo_url, "/items/999999") == 1


async def test_static_assets_are_kept_and_a_cache_busting_query_fetches_anew(demo: ProxyClient, demo_url: str):
    await demo.get("/static/app.css")
    hit = await demo.get("/static/app.css")
    busted = await demo.get("/static/app.css?v=2")
    assert hit.cache_status.hit and hit.cache_status.ttl is not None and hit.cache_status.ttl >= 3600, hit
    assert busted.cache_status.fwd == "uri-miss", busted
    assert await origin_gets(demo_url, "/static/app.css") == 2
