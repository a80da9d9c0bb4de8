"""One cached list, many orders: what a client sees of a personalized delivery."""

from __future__ import annotations

import aiohttp

from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import ITEMS, ConfigFactory, Seen, fetch, origin_requests, user


def _without_items(doc: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k != "items"}


def _same_document_reordered(seen: Seen, base: Seen) -> None:
    """Valid JSON equal to the origin's document except for the order of ``items``."""
    doc, base_doc = seen.json(), base.json()
    assert _without_items(doc) == _without_items(base_doc)
    key = lambda item: item["id"]  # noqa: E731
    assert sorted(doc["items"], key=key) == sorted(base_doc["items"], key=key)


async def test_two_users_get_their_own_order_of_one_cached_object(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    base = await fetch(session, origin + ITEMS)
    async with running_proxy(proxy_config()) as proxy:
        first = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        second = await fetch(session, proxy.url + ITEMS, headers=user("u0002"))
        again = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    # One origin request: ours for `base`, plus exactly one fill by the proxy.
    assert await origin_requests(session, origin) == 2
    for seen in (first, second, again):
        assert seen.status == 200
        _same_document_reordered(seen, base)
        assert seen.headers["Cache-Control"].startswith("private")
        assert seen.headers["ETag"].startswith('W/"')
        assert seen.headers["ETag"] != base.headers["ETag"]
        assert "Last-Modified" not in seen.headers  # the base object's validator, not this copy's
        assert "rank;dur=" in seen.headers["Server-Timing"]
        assert 'ranked model=demo-ranker-v1"' in seen.cache_status
        assert int(seen.headers["Content-Length"]) == len(seen.body)
    assert "fwd=uri-miss" in first.cache_status and "hit" in second.cache_status.split("; ")
    assert first.item_ids != second.item_ids
    assert first.headers["ETag"] != second.headers["ETag"]
    # The miss that filled the cache and a later hit rank the same way for the same user.
    assert (again.body, again.headers["ETag"]) == (first.body, first.headers["ETag"])


async def test_a_client_holding_the_base_etag_never_gets_a_304(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    base = await fetch(session, origin + ITEMS)
    async with running_proxy(proxy_config()) as proxy:
        await fetch(session, proxy.url + ITEMS, headers=user("u0001"))  # fill
        conditionals = [
            {"If-None-Match": base.headers["ETag"]},
            {"If-None-Match": f"W/{base.headers['ETag']}"},
            {"If-Modified-Since": base.headers["Last-Modified"]},
        ]
        for conditional in conditionals:
            seen = await fetch(session, proxy.url + ITEMS, headers={**user("u0001"), **conditional})
            assert seen.status == 200, conditional
            _same_document_reordered(seen, base)
            assert seen.headers["ETag"] != base.headers["ETag"]


async def test_the_personalized_etag_revalidates_to_304_for_its_own_order_only(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        mine = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        etag = mine.headers["ETag"]
        revalidated = await fetch(session, proxy.url + ITEMS, headers={**user("u0001"), "If-None-Match": etag})
        strong = etag.removeprefix("W/")
        listed = await fetch(session, proxy.url + ITEMS, headers={**user("u0001"), "If-None-Match": f'"x", {strong}'})
        theirs = await fetch(session, proxy.url + ITEMS, headers={**user("u0002"), "If-None-Match": etag})
    assert revalidated.status == 304 and revalidated.body == b""
    assert revalidated.headers["ETag"] == etag
    assert revalidated.headers["Cache-Control"].startswith("private")
    assert listed.status == 304  # RFC 9110 §13.1.2: weak comparison, any listed tag
    assert theirs.status == 200 and theirs.headers["ETag"] != etag


async def test_anonymous_users_are_ranked_with_cold_start_features(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    """Documented behaviour (edgeproxy.personalize.ranker): no uid cookie and no x-user-id still
    ranks, from request features only, so identical anonymous requests share one order."""
    base = await fetch(session, origin + ITEMS)
    async with running_proxy(proxy_config()) as proxy:
        anonymous = [await fetch(session, proxy.url + ITEMS) for _ in range(2)]
        bad_id = await fetch(session, proxy.url + ITEMS, headers=user("../etc/passwd"))
        known = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    for seen in (*anonymous, bad_id):
        assert seen.status == 200
        assert 'ranked model=demo-ranker-v1"' in seen.cache_status
        assert seen.headers["Cache-Control"].startswith("private")
        _same_document_reordered(seen, base)
    assert anonymous[0].body == anonymous[1].body
    assert anonymous[0].item_ids != base.item_ids  # the model's cold-start order, not the origin's
    assert bad_id.body == anonymous[0].body  # an unusable id is treated as anonymous
    assert known.body != anonymous[0].body


async def test_the_user_header_works_like_the_cookie_and_the_cookie_wins(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        by_cookie = await fetch(session, proxy.url + ITEMS, headers=user("u0002"))
        by_header = await fetch(session, proxy.url + ITEMS, headers={"x-user-id": "u0002"})
        both = await fetch(session, proxy.url + ITEMS, headers={**user("u0001"), "x-user-id": "u0002"})
        cookie_only = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    assert by_header.headers["ETag"] == by_cookie.headers["ETag"]
    assert by_header.body == by_cookie.body
    assert both.body == cookie_only.body != by_cookie.body


async def test_head_describes_the_personalized_get(proxy_config: ConfigFactory, session: aiohttp.ClientSession) -> None:
    async with running_proxy(proxy_config()) as proxy:
        get = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        head = await fetch(session, proxy.url + ITEMS, "HEAD", headers=user("u0001"))
    assert head.status == 200 and head.body == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Cache-Control"].startswith("private")
    assert head.headers.get("Content-Length") in (None, get.headers["Content-Length"])


async def test_routes_without_a_personalize_block_keep_the_shared_representation(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession
) -> None:
    base = await fetch(session, origin + "/items/3")
    async with running_proxy(proxy_config()) as proxy:
        seen = await fetch(session, proxy.url + "/items/3", headers=user("u0001"))
    assert seen.status == 200 and seen.body == base.body
    assert seen.headers["ETag"] == base.headers["ETag"]
    assert "private" not in seen.headers["Cache-Control"]
    assert "rank;" not in seen.headers.get("Server-Timing", "")
