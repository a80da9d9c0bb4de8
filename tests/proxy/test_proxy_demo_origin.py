"""The proxy in front of the real demo origin, counting origin requests with its /_control/stats."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import serve_demo_origin

LANGUAGES = {"en": "Hello!", "fr": "Bonjour !", "de": "Hallo!"}


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


@pytest.fixture
async def demo_proxy(start_proxy: StartProxy, demo_url: str) -> AsyncIterator[ProxyRuntime]:
    async with start_proxy(demo_url) as runtime:
        yield runtime


@pytest.fixture
async def demo(demo_proxy: ProxyRuntime) -> AsyncIterator[ProxyClient]:
    async with proxy_client(demo_proxy.url) as client:
        yield client


async def origin_requests(demo_url: str, path: str) -> int:
    """GETs the demo origin received for ``path``, from its own counters."""
    async with aiohttp.ClientSession() as session, session.get(f"{demo_url}/_control/stats") as response:
        stats = await response.json()
    return int(stats["paths"].get(path, {}).get("GET", 0))


async def test_concurrent_requests_for_different_variants_each_get_their_own(demo: ProxyClient, demo_url: str):
    rng = random.Random(7)
    wanted = [rng.choice(sorted(LANGUAGES)) for _ in range(90)]

    replies = await asyncio.gather(*(demo.get("/greeting", headers={"Accept-Language": lang}) for lang in wanted))

    for lang, seen in zip(wanted, replies, strict=True):
        assert seen.status == 200
        assert json.loads(seen.body)["greeting"] == LANGUAGES[lang], (lang, seen)
        assert seen.headers["Content-Language"] == lang
    # Collapsing never handed one language's answer to another; each variant is now stored.
    for lang, greeting in LANGUAGES.items():
        hit = await demo.get("/greeting", headers={"Accept-Language": lang})
        assert hit.cache_status.hit and json.loads(hit.body)["greeting"] == greeting


async def test_no_cache_resource_is_revalidated_on_every_request(demo: ProxyClient, demo_url: str):
    counts = []
    for _ in range(3):
        seen = await demo.get("/counter")
        assert seen.status == 200 and not seen.cache_status.hit, seen
        counts.append(json.loads(seen.body)["count"])
    # RFC 9111 §5.2.2.4: no-cache means never reused without asking the origin.
    assert counts == [1, 2, 3]
    assert await origin_requests(demo_url, "/counter") == 3


async def test_immutable_asset_is_served_from_cache(demo: ProxyClient, demo_url: str):
    first = await demo.get("/static/app.js")
    assert first.status == 200, first
    for _ in range(3):
        again = await demo.get("/static/app.js")
        assert again.cache_status.hit and again.body == first.body
    assert await origin_requests(demo_url, "/static/app.js") == 1


async def test_private_account_page_with_set_cookie_is_never_shared(demo: ProxyClient, demo_url: str):
    alice = await demo.get("/account", headers={"Cookie": "uid=alice"})
    anonymous = await demo.get("/account")
    assert json.loads(alice.body)["uid"] == "alice"
    assert json.loads(anonymous.body)["uid"] != "alice"
    assert not anonymous.cache_status.hit
    assert await origin_requests(demo_url, "/account") == 2


async def test_item_list_is_stored_with_its_surrogate_keys_hidden(demo: ProxyClient, demo_url: str):
    first = await demo.get("/api/items?category=books&limit=5")
    second = await demo.get("/api/items?category=books&limit=5")
    other = await demo.get("/api/items?category=games&limit=5")
    assert second.cache_status.hit and second.body == first.body
    assert not other.cache_status.hit
    assert "Surrogate-Key" not in first.headers and "Surrogate-Key" not in second.headers
    assert json.loads(first.body)["category"] == "books"
    assert await origin_requests(demo_url, "/api/items") == 2
