"""`bypass`: requests passed to the origin (never looked up, never stored), and `skip_rules`.

A passed request renders ``fwd=bypass`` with the rule's name as detail; the proof that nothing
was stored is a plain request afterwards that still misses.
"""

from __future__ import annotations

import pytest

from tests.policies_e2e.conftest import PolicyEdge, ServePolicy
from tests.proxy.harness import HeaderInput, Seen
from tests.support.origin import ProgrammableOrigin


@pytest.fixture(autouse=True)
def programmed(origin: ProgrammableOrigin) -> None:
    for path in ("/page", "/account", "/account/orders", "/accounts"):
        origin.set(path, headers={"Cache-Control": "max-age=60"}, body=f"page {path}")


def bypass_policy(bypass: str) -> str:
    return f"""
        policies:
          site:
            bypass: {bypass}
    """


async def passed_twice(edge: PolicyEdge, target: str, headers: HeaderInput, rule: str) -> Seen:
    """Send the passing request twice: both reach the origin, named by ``rule``."""
    for _ in range(2):
        seen = await edge.get(target, headers=headers)
        assert seen.cache_status.fwd == "bypass" and seen.cache_status.detail == rule, seen
        assert seen.status == 200
    return seen


async def passed_and_not_stored(edge: PolicyEdge, target: str, headers: HeaderInput, rule: str) -> Seen:
    """Pass the request twice, then send a plain one: it still misses, so nothing was stored."""
    seen = await passed_twice(edge, target, headers, rule)
    plain = await edge.get(target)
    assert plain.cache_status.fwd == "uri-miss", f"the passed response was stored: {plain}"
    return seen


async def test_bypass_cookie_passes_requests_carrying_a_listed_cookie(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    async with serve_policy(bypass_policy("{cookies: [preview]}")) as edge:
        await passed_and_not_stored(edge, "/page", {"Cookie": "theme=dark; preview=1"}, "req_bypass_cookie")
        other = await edge.get("/page", headers={"Cookie": "theme=dark"})
    assert other.cache_status.hit, other
    assert origin.count("/page") == 3


async def test_bypass_cookie_star_passes_any_cookie(serve_policy: ServePolicy):
    async with serve_policy(bypass_policy("{cookies: ['*']}")) as edge:
        await passed_and_not_stored(edge, "/page", {"Cookie": "anything=1"}, "req_bypass_cookie")


async def test_bypass_header_passes_requests_carrying_a_listed_header(serve_policy: ServePolicy):
    async with serve_policy(bypass_policy("{headers: [X-Preview]}")) as edge:
        await passed_and_not_stored(edge, "/page", {"x-preview": "1"}, "req_bypass_header")


async def test_bypass_method_passes_a_listed_lookup_method(serve_policy: ServePolicy):
    async with serve_policy(bypass_policy("{methods: [HEAD]}")) as edge:
        await edge.get("/page")
        head = await edge.client.head("/page")
        get = await edge.get("/page")
    assert head.cache_status.fwd == "bypass" and head.cache_status.detail == "req_bypass_method", head
    assert get.cache_status.hit, get


async def test_bypass_paths_pass_globs_exactly_as_listed(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    async with serve_policy(bypass_policy("{paths: [/account, /account/*]}")) as edge:
        await passed_twice(edge, "/account", (), "req_bypass_path")
        await passed_twice(edge, "/account/orders", (), "req_bypass_path")
        await edge.get("/accounts")
        assert (await edge.get("/accounts")).cache_status.hit
    assert origin.count("/account") == 2 and origin.count("/account/orders") == 2


async def test_authorization_passes_by_default(serve_policy: ServePolicy):
    async with serve_policy(bypass_policy("{}")) as edge:
        await passed_and_not_stored(edge, "/page", {"Authorization": "Bearer abc"}, "req_authorization")


async def test_skip_req_authorization_looks_up_and_stores_only_what_rfc9111_3_5_allows(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/shared", headers={"Cache-Control": "public, max-age=60"}, body="same for everyone")
    origin.set("/personal", headers={"Cache-Control": "max-age=60"}, body="for this user")
    async with serve_policy(bypass_policy("{skip_rules: [req_authorization]}")) as edge:
        alice, bob = {"Authorization": "Bearer alice"}, {"Authorization": "Bearer bob"}
        shared_fill = await edge.get("/shared", headers=alice)
        shared_hit = await edge.get("/shared", headers=bob)
        personal_fill = await edge.get("/personal", headers=alice)
        personal_again = await edge.get("/personal", headers=bob)
    assert shared_fill.cache_status.fwd == "uri-miss" and shared_fill.cache_status.stored, shared_fill
    assert shared_hit.cache_status.hit and origin.count("/shared") == 1
    assert not personal_fill.cache_status.stored and personal_fill.cache_status.detail == "authorization"
    assert not personal_again.cache_status.hit and origin.count("/personal") == 2
    assert origin.last("/personal").headers["Authorization"] == "Bearer bob"


async def test_bypass_rules_run_in_documented_order(serve_policy: ServePolicy):
    async with serve_policy(bypass_policy("{cookies: [preview], headers: [x-preview], paths: [/page]}")) as edge:
        seen = await edge.get("/page", headers={"Authorization": "Bearer a", "x-preview": "1", "Cookie": "preview=1"})
        assert seen.cache_status.detail == "req_authorization"
        seen = await edge.get("/page", headers={"x-preview": "1", "Cookie": "preview=1"})
        assert seen.cache_status.detail == "req_bypass_path"
