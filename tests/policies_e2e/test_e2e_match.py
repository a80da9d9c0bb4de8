"""`match` (hosts, paths, methods) and `priority`, observed through the proxy.

Each policy forces a distinct TTL, so the Cache-Status ttl of a response names the policy that
served it; the built-in default keeps the origin's max-age=5.
"""

from __future__ import annotations

import pytest

from tests.policies_e2e.conftest import ServePolicy
from tests.proxy.harness import ttl_near
from tests.support.origin import ProgrammableOrigin, serve_app

ORIGIN_TTL = 5


@pytest.fixture(autouse=True)
def programmed(origin: ProgrammableOrigin) -> None:
    for path in ("/", "/a", "/api/v2/items", "/api/x/y/z", "/shop/ab", "/shop/abc", "/admin/x", "/form"):
        origin.set(path, headers={"Cache-Control": f"max-age={ORIGIN_TTL}"}, body=f"origin-a {path}")


async def test_exact_host_matches_case_and_port_insensitively_and_nothing_else(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          shop:
            priority: 10
            match: {hosts: [shop.example]}
            ttl: {force: 100}
    """) as edge:
        assert (await edge.get("/a", host="shop.example")).cache_status.ttl in ttl_near(100)
        assert (await edge.get("/", host="Shop.Example:8080")).cache_status.ttl in ttl_near(100)
        other = await edge.get("/a", host="blog.example")
        assert other.cache_status.ttl in ttl_near(ORIGIN_TTL), other


async def test_wildcard_host_matches_subdomains_but_not_the_domain_itself(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          subs:
            priority: 10
            match: {hosts: ["*.shop.example"]}
            ttl: {force: 100}
    """) as edge:
        assert (await edge.get("/a", host="eu.shop.example")).cache_status.ttl in ttl_near(100)
        assert (await edge.get("/a", host="a.b.shop.example")).cache_status.ttl in ttl_near(100)
        assert (await edge.get("/a", host="shop.example")).cache_status.ttl in ttl_near(ORIGIN_TTL)
        assert (await edge.get("/a", host="evilshop.example")).cache_status.ttl in ttl_near(ORIGIN_TTL)


async def test_path_glob_star_spans_slashes_and_question_mark_is_one_character(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          api:
            priority: 10
            match: {paths: ["/api/*"]}
            ttl: {force: 100}
          shop:
            priority: 20
            match: {paths: ["/shop/a?"]}
            ttl: {force: 200}
    """) as edge:
        assert (await edge.get("/api/x/y/z")).cache_status.ttl in ttl_near(100)
        assert (await edge.get("/shop/ab")).cache_status.ttl in ttl_near(200)
        assert (await edge.get("/shop/abc")).cache_status.ttl in ttl_near(ORIGIN_TTL)
        assert (await edge.get("/a")).cache_status.ttl in ttl_near(ORIGIN_TTL)


async def test_path_regex(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          versioned:
            priority: 10
            match: {paths: ["re:^/api/v[0-9]+/"]}
            ttl: {force: 100}
    """) as edge:
        assert (await edge.get("/api/v2/items")).cache_status.ttl in ttl_near(100)
        assert (await edge.get("/api/x/y/z")).cache_status.ttl in ttl_near(ORIGIN_TTL)


async def test_patterns_see_decoded_unreserved_characters_and_no_dot_segments(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          admin:
            priority: 10
            match: {paths: ["/admin/*"]}
            bypass: {paths: ["/admin/*"]}
    """) as edge:
        for spelling in ("/%61dmin/x", "/shop/../admin/x", "/admin/./x"):
            seen = await edge.get(spelling)
            assert seen.cache_status.detail == "req_bypass_path", (spelling, seen)


async def test_methods_route_only_the_listed_methods_to_the_policy(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    forms = ProgrammableOrigin()
    forms.set("/form", body="origin-b")
    async with (
        serve_app(forms.app()) as forms_url,
        serve_policy(f"""
        policies:
          posts:
            priority: 10
            match: {{paths: ["/form"], methods: [POST]}}
            origin: {{url: "{forms_url}"}}
    """) as edge,
    ):
        posted = await edge.client.request("POST", "/form", data=b"x=1")
        fetched = await edge.get("/form")
    assert posted.body == b"origin-b"
    assert fetched.body == b"origin-a /form"
    assert forms.count("/form") == 1 and origin.count("/form") == 1


async def test_listing_get_takes_head_too_so_head_is_answered_from_the_stored_get(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy("""
        policies:
          reads:
            priority: 10
            match: {methods: [GET]}
            ttl: {force: 100}
    """) as edge:
        await edge.get("/a")
        head = await edge.client.head("/a")
    assert head.cache_status.hit and head.cache_status.ttl in ttl_near(100), head
    assert origin.count("/a") == 1


async def test_highest_priority_wins_whatever_the_file_order(serve_policy: ServePolicy):
    async with serve_policy("""
        policies:
          broad:
            priority: 5
            match: {paths: ["/*"]}
            ttl: {force: 100}
          narrow:
            priority: 50
            match: {paths: ["/api/*"]}
            ttl: {force: 200}
    """) as edge:
        edge.write(
            """
            policies:
              broadest:
                priority: 1
                match: {paths: ["/api/*"]}
                ttl: {force: 300}
        """,
            name="0-first.yaml",
        )
        assert (await edge.reload()).status == 200
        assert (await edge.get("/api/x/y/z")).cache_status.ttl in ttl_near(200)
        assert (await edge.get("/a")).cache_status.ttl in ttl_near(100)
