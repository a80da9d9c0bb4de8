"""The demo origin: each route sends the caching headers a CDN in front of it relies on."""

from __future__ import annotations

import json

import aiohttp
import pytest

from edgeproxy.cache.httpdate import parse_http_date
from edgeproxy.demo.catalog import items_in
from edgeproxy.demo.origin import CATALOG_MODIFIED, negotiate_language


async def get(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
    async with client.get(url, headers=headers) as response:
        return response, await response.read()


# --- /api/items ------------------------------------------------------------------------------


async def test_items_lists_one_category_most_popular_first(client, demo_url):
    response, body = await get(client, f"{demo_url}/api/items?category=books&limit=5")
    assert response.status == 200
    assert response.content_type == "application/json"
    document = json.loads(body)
    assert document["category"] == "books"
    expected = [item.id for item in items_in("books", n_items=200)[:5]]
    assert [item["id"] for item in document["items"]] == expected
    assert set(document["items"][0]) == {"id", "title", "category", "price", "popularity", "published_at"}


async def test_items_carry_shared_freshness_stale_extensions_and_surrogate_keys(client, demo_url):
    response, _ = await get(client, f"{demo_url}/api/items?category=toys")
    assert response.headers["Cache-Control"] == "public, max-age=30, stale-while-revalidate=30, stale-if-error=300"
    assert response.headers["Surrogate-Key"] == "items items:toys"
    assert response.headers["ETag"].startswith('"')  # strong
    assert parse_http_date(response.headers["Last-Modified"]) == CATALOG_MODIFIED
    assert response.headers["Last-Modified"].endswith(" GMT")  # IMF-fixdate
    everything, _ = await get(client, f"{demo_url}/api/items")
    assert everything.headers["Surrogate-Key"] == "items"


async def test_items_etag_is_stable_per_body_and_differs_between_bodies(client, demo_url):
    first, _ = await get(client, f"{demo_url}/api/items?category=music&limit=3")
    again, _ = await get(client, f"{demo_url}/api/items?category=music&limit=3")
    other, _ = await get(client, f"{demo_url}/api/items?category=music&limit=4")
    assert first.headers["ETag"] == again.headers["ETag"] != other.headers["ETag"]


async def test_items_answer_if_none_match_with_304_carrying_validators(client, demo_url):
    url = f"{demo_url}/api/items?category=games"
    first, _ = await get(client, url)
    etag = first.headers["ETag"]
    for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response, body = await get(client, url, **{"If-None-Match": condition})
        assert response.status == 304, condition
        assert body == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"].startswith("public, max-age=30")
    miss, _ = await get(client, url, **{"If-None-Match": '"other"'})
    assert miss.status == 200


async def test_items_answer_if_modified_since_unless_if_none_match_is_present(client, demo_url):
    url = f"{demo_url}/api/items"
    first, _ = await get(client, url)
    since = first.headers["Last-Modified"]
    not_modified, _ = await get(client, url, **{"If-Modified-Since": since})
    assert not_modified.status == 304
    # RFC 9110 §13.1.3: a failing If-None-Match wins over a matching If-Modified-Since.
    both, _ = await get(client, url, **{"If-Modified-Since": since, "If-None-Match": '"other"'})
    assert both.status == 200


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=0", 400, "limit='0'"),
        ("limit=abc", 400, "expected a number"),
        ("limit=2.5", 400, "expected an integer"),
        ("category=socks", 404, "unknown category 'socks'"),
    ],
)
async def test_items_reject_bad_queries_with_a_message(client, demo_url, query, status, message):
    response, body = await get(client, f"{demo_url}/api/items?{query}")
    assert response.status == status
    assert message in body.decode()


# --- item pages and static assets ------------------------------------------------------------


async def test_item_page_is_tagged_and_validated(client, demo_url):
    response, body = await get(client, f"{demo_url}/items/7")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "max-age=60"
    assert response.headers["Surrogate-Key"] == "item:7"
    assert "Last-Modified" in response.headers
    assert b"item 7" in body
    revalidated, _ = await get(client, f"{demo_url}/items/7", **{"If-None-Match": response.headers["ETag"]})
    assert revalidated.status == 304


@pytest.mark.parametrize("path", ["/items/0", "/items/201", "/items/abc", "/static/missing.css"])
async def test_unknown_items_and_assets_are_briefly_cacheable_404s(client, demo_url, path):
    response, _ = await get(client, demo_url + path)
    assert response.status == 404
    assert response.headers["Cache-Control"] == "max-age=10"


async def test_static_assets_are_immutable_and_revalidate_to_304(client, demo_url):
    response, _ = await get(client, f"{demo_url}/static/app.css")
    assert response.status == 200
    assert response.content_type == "text/css"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    revalidated, _ = await get(client, f"{demo_url}/static/app.css", **{"If-None-Match": response.headers["ETag"]})
    assert revalidated.status == 304


# --- blob, slow, error -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3, 1000, 65537])
async def test_blob_is_exactly_the_requested_size_of_json(client, demo_url, size):
    response, body = await get(client, f"{demo_url}/api/blob?size={size}&seed=1")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert len(body) == size
    assert isinstance(json.loads(body), str)


async def test_blob_is_deterministic_per_seed(client, demo_url):
    _, first = await get(client, f"{demo_url}/api/blob?size=4096&seed=1")
    _, again = await get(client, f"{demo_url}/api/blob?size=4096&seed=1")
    _, other = await get(client, f"{demo_url}/api/blob?size=4096&seed=2")
    assert first == again != other


@pytest.mark.parametrize("size", [1, 8 * 1024 * 1024 + 1])
async def test_blob_size_is_bounded(client, demo_url, size):
    response, body = await get(client, f"{demo_url}/api/blob?size={size}")
    assert response.status == 400
    assert b"size=" in body


async def test_slow_answers_after_its_delay_and_bounds_it(client, demo_url):
    response, body = await get(client, f"{demo_url}/slow?delay=0.05")
    assert response.status == 200
    assert json.loads(body) == {"delay": 0.05}
    too_slow, _ = await get(client, f"{demo_url}/slow?delay=31")
    assert too_slow.status == 400


async def test_error_returns_the_requested_status_uncacheable(client, demo_url):
    response, _ = await get(client, f"{demo_url}/error?status=502")
    assert response.status == 502
    assert response.headers["Cache-Control"] == "no-store"
    default, _ = await get(client, f"{demo_url}/error")
    assert default.status == 503


# --- negotiation, private responses, no-cache ------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        (None, "en"),
        ("fr", "fr"),
        ("de-CH, de;q=0.9, en;q=0.8", "de"),
        ("en;q=0.5, fr;q=0.9", "fr"),
        ("fr;q=0, de;q=0.1", "de"),
        ("ja, zh", "en"),
        ("fr;q=abc, de", "de"),
    ],
)
def test_negotiate_language_picks_the_preferred_supported_language(accept_language, expected):
    assert negotiate_language(accept_language) == expected


async def test_greeting_varies_on_accept_language(client, demo_url):
    english, english_body = await get(client, f"{demo_url}/greeting")
    french, french_body = await get(client, f"{demo_url}/greeting", **{"Accept-Language": "fr-FR"})
    assert english.headers["Vary"] == french.headers["Vary"] == "Accept-Language"
    assert json.loads(english_body)["greeting"] == "Hello!"
    assert json.loads(french_body)["greeting"] == "Bonjour !"
    assert french.headers["Content-Language"] == "fr"
    assert english.headers["ETag"] != french.headers["ETag"]


async def test_account_is_private_and_sets_a_cookie(client, demo_url):
    response, body = await get(client, f"{demo_url}/account")
    assert response.headers["Cache-Control"] == "private"
    assert "uid=u1" in response.headers["Set-Cookie"]
    assert json.loads(body)["uid"] == "u1"
    known, known_body = await get(client, f"{demo_url}/account", Cookie="uid=alice")
    assert json.loads(known_body)["uid"] == "alice"


async def test_counter_changes_on_every_request_and_must_be_revalidated(client, demo_url):
    first, first_body = await get(client, f"{demo_url}/counter")
    second, second_body = await get(client, f"{demo_url}/counter", **{"If-None-Match": first.headers["ETag"]})
    assert first.headers["Cache-Control"] == "no-cache"
    assert "Last-Modified" in first.headers
    assert second.status == 200  # the value moved on, so the old validator no longer matches
    assert json.loads(first_body) == {"count": 1}
    assert json.loads(second_body) == {"count": 2}
    assert first.headers["ETag"] != second.headers["ETag"]


async def test_head_sends_the_get_headers_without_a_body(client, demo_url):
    async with client.head(f"{demo_url}/static/app.js") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert await response.read() == b""


# --- control endpoints -----------------------------------------------------------------------


async def test_stats_count_requests_per_path_and_method_but_not_control_routes(client, demo_url):
    await get(client, f"{demo_url}/api/items?limit=1")
    await get(client, f"{demo_url}/api/items?limit=2")
    async with client.head(f"{demo_url}/api/items"):
        pass
    await get(client, f"{demo_url}/static/app.css")
    _, body = await get(client, f"{demo_url}/_control/stats")
    assert json.loads(body) == {
        "total": 4,
        "failing": False,
        "paths": {"/api/items": {"GET": 2, "HEAD": 1}, "/static/app.css": {"GET": 1}},
    }


async def test_fail_switch_makes_every_route_503_until_switched_off(client, demo_url):
    async with client.post(f"{demo_url}/_control/fail", json={"on": True}) as response:
        assert await response.json() == {"failing": True}
    failing, body = await get(client, f"{demo_url}/static/app.css")
    assert failing.status == 503
    assert b"_control/fail" in body  # says how to recover
    async with client.post(f"{demo_url}/_control/fail", json={"on": False}):
        pass
    recovered, _ = await get(client, f"{demo_url}/static/app.css")
    assert recovered.status == 200
    _, stats = await get(client, f"{demo_url}/_control/stats")
    assert json.loads(stats)["paths"]["/static/app.css"] == {"GET": 2}


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"on": 1}', b'{"off": true}', b"not json"])
async def test_fail_switch_rejects_a_malformed_body(client, demo_url, payload):
    async with client.post(f"{demo_url}/_control/fail", data=payload) as response:
        assert response.status == 400
        assert '{"on": true}' in await response.text()


async def test_reset_clears_counters_and_the_fail_switch(client, demo_url):
    async with client.post(f"{demo_url}/_control/fail", json={"on": True}):
        pass
    await get(client, f"{demo_url}/counter")
    async with client.post(f"{demo_url}/_control/reset") as response:
        assert response.status == 200
    _, stats = await get(client, f"{demo_url}/_control/stats")
    assert json.loads(stats) == {"total": 0, "failing": False, "paths": {}}
    _, counter = await get(client, f"{demo_url}/counter")
    assert json.loads(counter) == {"count": 1}
