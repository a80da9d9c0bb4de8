"""The personalized item list (policies/demo.yaml, model demo-ranker): one shared stored base,
a private per-user order at delivery, never written back into the shared cache."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, Seen, proxy_client
from tests.support.origin import serve_demo_origin

DEMO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "demo.yaml"
LIST = "/api/items?category=books&limit=20"


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


@pytest.fixture
async def shop(start_proxy: StartProxy, demo_url: str, tmp_path: Path) -> AsyncIterator[ProxyClient]:
    # The demo's 2 ms ranking deadline falls back to the unranked order on a busy test machine;
    # these tests are about what ranking does, so they give it room.
    policy = DEMO_POLICY.read_text()
    assert "deadline: 2ms" in policy, "policies/demo.yaml changed; update this fixture"
    (tmp_path / "demo.yaml").write_text(policy.replace("deadline: 2ms", "deadline: 500ms"))
    async with start_proxy(demo_url, policies=tmp_path, demo_profiles=True) as proxy, proxy_client(proxy.url) as client:
        yield client


def item_ids(seen: Seen) -> list[int]:
    return [item["id"] for item in json.loads(seen.body)["items"]]


async def origin_list(demo_url: str) -> list[int]:
    async with aiohttp.ClientSession() as session, session.get(demo_url + LIST) as response:
        return [item["id"] for item in (await response.json())["items"]]


async def test_every_user_gets_the_same_items_from_one_origin_request(shop: ProxyClient, demo_url: str):
    users = [f"u{i:04d}" for i in range(1, 9)]
    replies = {user: await shop.get(LIST, headers={"Cookie": f"uid={user}"}) for user in users}
    anonymous = await shop.get(LIST)

    expected = sorted(await origin_list(demo_url))
    for who, seen in [*replies.items(), ("anonymous", anonymous)]:
        assert seen.status == 200, (who, seen)
        assert sorted(item_ids(seen)) == expected, who
        # A per-user body must not be stored by any cache downstream of us.
        assert "private" in seen.headers["Cache-Control"], (who, seen.headers["Cache-Control"])
        assert "ranked model=demo-ranker" in (seen.cache_status.detail or ""), (who, seen)
    assert [seen.cache_status.hit for seen in replies.values()][1:] == [True] * (len(users) - 1)
    # Users with different tastes do not all see one order.
    assert len({tuple(item_ids(seen)) for seen in replies.values()}) > 1

    async with aiohttp.ClientSession() as session, session.get(demo_url + "/_control/stats") as response:
        assert (await response.json())["paths"]["/api/items"]["GET"] == 2  # ours + origin_list's own


async def test_a_user_is_recognised_by_cookie_or_header_and_gets_a_stable_order(shop: ProxyClient):
    by_cookie = await shop.get(LIST, headers={"Cookie": "uid=u0001"})
    by_header = await shop.get(LIST, headers={"X-User-Id": "u0001"})
    again = await shop.get(LIST, headers={"Cookie": "uid=u0001"})
    assert item_ids(by_cookie) == item_ids(by_header) == item_ids(again)
    assert by_cookie.headers["ETag"] == by_header.headers["ETag"] == again.headers["ETag"]
    # The per-user representation has its own weak validator (RFC 9110 §8.8.3).
    assert by_cookie.headers["ETag"].startswith('W/"')


async def test_a_users_own_validator_is_answered_with_304(shop: ProxyClient):
    first = await shop.get(LIST, headers={"Cookie": "uid=u0001"})
    revisit = await shop.get(LIST, headers={"Cookie": "uid=u0001", "If-None-Match": first.headers["ETag"]})
    assert revisit.status == 304 and revisit.body == b"", revisit
    assert revisit.headers["ETag"] == first.headers["ETag"]


async def test_personalizing_never_changes_the_shared_stored_list(shop: ProxyClient):
    before = await shop.get(LIST)
    for user in ("u0001", "u0002", "u0003"):
        await shop.get(LIST, headers={"Cookie": f"uid={user}"})
    after = await shop.get(LIST)
    assert item_ids(after) == item_ids(before)
    assert after.headers["ETag"] == before.headers["ETag"]
