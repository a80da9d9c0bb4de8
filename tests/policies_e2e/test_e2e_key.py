"""`key`: what separates two requests into two cache entries, and what the origin is asked for.

Two requests share an entry when the second is a hit and the origin saw one request; whatever
the key drops or reorders must be dropped or reordered upstream too (default.yaml, `key`).
"""

from __future__ import annotations

import pytest

from tests.policies_e2e.conftest import PolicyEdge, ServePolicy
from tests.proxy.harness import HeaderInput
from tests.support.origin import ProgrammableOrigin

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Mobile/15E148"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


@pytest.fixture(autouse=True)
def programmed(origin: ProgrammableOrigin) -> None:
    origin.set("/list", headers={"Cache-Control": "max-age=60"}, body="list")


async def second_is_hit(
    edge: PolicyEdge, first: str, second: str, *, headers: tuple[HeaderInput, HeaderInput] = ((), ())
) -> bool:
    """Fill with ``first``, then tell whether ``second`` is answered from that entry."""
    filled = await edge.get(first, headers=headers[0])
    assert filled.status == 200, filled
    return (await edge.get(second, headers=headers[1])).cache_status.hit


def ua(agent: str) -> dict[str, str]:
    return {"User-Agent": agent}


def key_policy(key: str) -> str:
    return f"""
        policies:
          site:
            key: {key}
    """


async def test_query_all_keys_the_query_exactly_as_sent(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    async with serve_policy(key_policy("{query: all}")) as edge:
        assert not await second_is_hit(edge, "/list?a=1&b=2", "/list?b=2&a=1")
        assert await second_is_hit(edge, "/list?a=1&b=2", "/list?a=1&b=2")
    assert [seen.path_qs for seen in origin.seen] == ["/list?a=1&b=2", "/list?b=2&a=1"]


async def test_query_include_keeps_only_listed_parameters_in_key_and_upstream(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(key_policy("{query: include, query_params: [category, 'page_*']}")) as edge:
        assert await second_is_hit(edge, "/list?category=books&page_no=2&x=1", "/list?x=2&category=books&page_no=2")
        assert not await second_is_hit(edge, "/list?category=books", "/list?category=music")
    assert origin.seen[0].path_qs == "/list?category=books&page_no=2"


async def test_query_exclude_drops_listed_parameters_from_key_and_upstream(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(key_policy("{query: exclude, query_params: [session]}")) as edge:
        assert await second_is_hit(edge, "/list?q=1&session=a", "/list?session=b&q=1")
        assert not await second_is_hit(edge, "/list?q=1", "/list?q=2")
    assert origin.seen[0].path_qs == "/list?q=1"


async def test_query_ignore_keys_and_forwards_no_query(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    async with serve_policy(key_policy("{query: ignore}")) as edge:
        assert await second_is_hit(edge, "/list?a=1", "/list?b=2")
    assert origin.seen[0].path_qs == "/list"


async def test_sort_query_shares_one_entry_between_orders_and_forwards_sorted(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(key_policy("{sort_query: true}")) as edge:
        assert await second_is_hit(edge, "/list?b=2&a=1", "/list?a=1&b=2")
    assert origin.seen[0].path_qs == "/list?a=1&b=2"


async def test_strip_params_are_removed_from_key_and_upstream_even_when_percent_encoded(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(key_policy("{strip_params: ['utm_*', fbclid]}")) as edge:
        assert await second_is_hit(edge, "/list?q=1&utm_source=mail&fbclid=abc", "/list?q=1&utm%5Fcampaign=x")
        assert await second_is_hit(edge, "/list?utm_medium=cpc", "/list")
    assert [seen.path_qs for seen in origin.seen] == ["/list?q=1", "/list"]


async def test_headers_in_key_separate_values_and_ignore_surrounding_whitespace(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(key_policy("{headers: [Accept-Language]}")) as edge:
        fr, en, fr_spaced = {"Accept-Language": "fr"}, {"Accept-Language": "en"}, {"Accept-Language": "  fr "}
        assert not await second_is_hit(edge, "/list", "/list", headers=(fr, en))
        assert await second_is_hit(edge, "/list", "/list", headers=(fr, fr_spaced))
    assert origin.last("/list").headers["Accept-Language"] == "en"


async def test_a_keyed_header_that_could_poison_the_cache_is_forwarded_once_it_is_keyed(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    """Unkeyed, X-Forwarded-Host is dropped before the origin (it could poison the entry);
    keyed, each value gets its own entry, so the origin may see it."""
    async with serve_policy(key_policy("{headers: [x-forwarded-host]}")) as edge:
        a, b = {"X-Forwarded-Host": "a.example"}, {"X-Forwarded-Host": "b.example"}
        assert not await second_is_hit(edge, "/list", "/list", headers=(a, b))
    assert origin.last("/list").headers.get("X-Forwarded-Host") == "b.example"


async def test_unkeyed_poisoning_header_never_reaches_the_origin(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    async with serve_policy(key_policy("{headers: []}")) as edge:
        await edge.get("/list", headers={"X-Forwarded-Host": "evil.example"})
    assert "X-Forwarded-Host" not in origin.last("/list").headers


async def test_cookies_in_key_separate_by_value_and_other_cookies_do_not_matter(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{cookies: [currency]}")) as edge:
        eur, usd = {"Cookie": "currency=EUR; session=1"}, {"Cookie": "currency=USD; session=1"}
        eur_other_session = {"Cookie": "session=2; currency=EUR"}
        assert not await second_is_hit(edge, "/list", "/list", headers=(eur, usd))
        assert await second_is_hit(edge, "/list", "/list", headers=(eur, eur_other_session))
        assert not await second_is_hit(edge, "/list", "/list", headers=(eur, {}))


async def test_device_class_separates_mobile_tablet_and_desktop_but_not_two_desktops(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{device_class: true}")) as edge:
        assert await second_is_hit(edge, "/list", "/list", headers=(ua(FIREFOX), ua(CHROME)))
        assert not await second_is_hit(edge, "/list", "/list", headers=(ua(FIREFOX), ua(IPHONE)))
        assert not await second_is_hit(edge, "/list", "/list", headers=(ua(IPHONE), ua(IPAD)))
        assert await second_is_hit(edge, "/list", "/list", headers=(ua(IPHONE), ua(IPHONE.replace("17_0", "16_1"))))


async def test_without_device_class_the_user_agent_does_not_split_the_cache(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{device_class: false}")) as edge:
        assert await second_is_hit(edge, "/list", "/list", headers=({"User-Agent": FIREFOX}, {"User-Agent": IPHONE}))


async def test_lowercase_host_shares_entries_between_host_spellings(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{lowercase_host: true}")) as edge:
        await edge.get("/list", host="Shop.Example")
        assert (await edge.get("/list", host="shop.example")).cache_status.hit


async def test_lowercase_host_off_keys_each_spelling_apart(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{lowercase_host: false}")) as edge:
        await edge.get("/list", host="Shop.Example")
        assert not (await edge.get("/list", host="shop.example")).cache_status.hit
        assert (await edge.get("/list", host="Shop.Example")).cache_status.hit


async def test_different_hosts_never_share_an_entry(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{query: ignore}")) as edge:
        await edge.get("/list", host="a.example")
        assert not (await edge.get("/list", host="b.example")).cache_status.hit


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("{query: all}", "/list?b=2&a=1"),
        ("{sort_query: true}", "/list?b=2&a=1"),
        ("{strip_params: ['utm_*']}", "/list?q=1&utm_source=mail"),
        ("{query: include, query_params: [page]}", "/list?page=2&view=grid"),
        ("{query: ignore}", "/list?anything=1"),
    ],
)
async def test_an_unsafe_request_to_the_same_url_invalidates_the_entry_it_was_keyed_under(
    serve_policy: ServePolicy, key: str, target: str
):
    """RFC 9111 §4.4: a successful POST to a URL invalidates what that URL returns. The stored
    entry sits under the key's normalized URL, so the invalidation must be normalized the same way,
    or a client keeps getting the old list after its own update."""
    async with serve_policy(key_policy(key)) as edge:
        await edge.get(target)
        assert (await edge.get(target)).cache_status.hit
        posted = await edge.client.request("POST", target, data=b"add=1")
        after = await edge.get(target)
    assert posted.status == 200
    assert not after.cache_status.hit, f"the POST to {target} left the stored entry in place: {after}"


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("{query: all}", "/list?b=2&a=1"),
        ("{sort_query: true}", "/list?b=2&a=1"),
        ("{strip_params: ['utm_*']}", "/list?q=1&utm_source=mail"),
    ],
)
async def test_purging_a_url_as_clients_request_it_purges_the_entry_it_was_keyed_under(
    serve_policy: ServePolicy, key: str, target: str
):
    """An operator purges the URL they see in links and logs; the policy decides which entry that is."""
    async with serve_policy(key_policy(key)) as edge:
        await edge.get(target, host="shop.example")
        purged = await edge.purge(f"http://shop.example{target}")
        after = await edge.get(target, host="shop.example")
    assert purged.status == 200, purged
    assert not after.cache_status.hit, f"purging {target} left the stored entry in place: {after}"


async def test_an_unsafe_request_invalidates_under_the_host_spelling_it_was_keyed_with(serve_policy: ServePolicy):
    async with serve_policy(key_policy("{lowercase_host: false}")) as edge:
        await edge.get("/list", host="Shop.Example")
        assert (await edge.get("/list", host="Shop.Example")).cache_status.hit
        await edge.client.request("POST", "/list", headers={"Host": "Shop.Example"}, data=b"add=1")
        after = await edge.get("/list", host="Shop.Example")
    assert not after.cache_status.hit, after


async def test_a_location_an_unsafe_request_names_is_invalidated_under_its_normalized_key(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    """RFC 9111 §4.4: the Location of a successful POST is invalidated too (same authority)."""
    origin.set("/cart", status=303, headers={"Location": "/list?b=2&a=1"}, body="see the list")
    async with serve_policy(key_policy("{sort_query: true}")) as edge:
        await edge.get("/list?b=2&a=1")
        assert (await edge.get("/list?a=1&b=2")).cache_status.hit
        posted = await edge.client.request("POST", "/cart", data=b"add=1")
        after = await edge.get("/list?b=2&a=1")
    assert posted.status == 303
    assert not after.cache_status.hit, after
