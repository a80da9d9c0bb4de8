"""Cache-Control on both sides: what the client asks for (RFC 9111 §5.2.1), what the origin
allows (§5.2.2, §3, §3.5), and which lifetime wins (§4.2.1, RFC 9213)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, proxy_client, ttl_near
from tests.support.origin import ProgrammableOrigin

STORED = {"Cache-Control": "max-age=60", "ETag": '"v1"'}


# ---------------------------------------------------------------- request directives


@pytest.mark.parametrize("directive", ["no-cache", "max-age=0"])
async def test_request_directive_forces_revalidation_of_a_fresh_copy(
    client: ProxyClient, origin: ProgrammableOrigin, directive: str
):
    origin.set("/d", headers=STORED, body="stored")
    await client.get("/d")
    seen = await client.get("/d", headers={"Cache-Control": directive})
    assert seen.status == 200 and seen.body == b"stored"
    assert seen.cache_status.fwd_status == 304 and seen.cache_status.detail == "revalidated", seen
    # RFC 9211 §2.2: the stored copy was fresh; the request's own directive sent it forward.
    assert seen.cache_status.fwd == "request", seen
    assert origin.count("/d") == 2
    assert origin.last("/d").headers.get("If-None-Match") == '"v1"'


async def test_only_if_cached_with_nothing_stored_is_a_504_without_contacting_the_origin(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/d", headers=STORED, body="stored")
    seen = await client.get("/d", headers={"Cache-Control": "only-if-cached"})
    assert seen.status == 504
    assert seen.cache_status.detail == "only-if-cached"
    assert origin.count("/d") == 0

    await client.get("/d")
    hit = await client.get("/d", headers={"Cache-Control": "only-if-cached"})
    assert hit.status == 200 and hit.cache_status.hit
    assert origin.count("/d") == 1


async def test_request_min_fresh_beyond_what_is_left_goes_to_the_origin(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/d", headers=STORED, body="stored")
    await client.get("/d")
    # §5.2.1.3: the client wants a response that stays fresh 120 s more; ours has < 60 s left.
    seen = await client.get("/d", headers={"Cache-Control": "min-fresh=120"})
    assert not seen.cache_status.hit and seen.cache_status.fwd == "request", seen
    assert origin.count("/d") == 2


async def test_request_max_stale_accepts_a_stale_copy_without_the_origin(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/d", headers={"Cache-Control": "max-age=1", "ETag": '"v1"'}, body="stored")
    await client.get("/d")
    await asyncio.sleep(1.1)
    # §5.2.1.2: the client accepts a response stale by up to 60 s.
    seen = await client.get("/d", headers={"Cache-Control": "max-stale=60"})
    assert seen.cache_status.hit and seen.body == b"stored", seen
    assert origin.count("/d") == 1


async def test_request_no_store_is_answered_but_not_stored(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/d", headers=STORED, body="stored")
    seen = await client.get("/d", headers={"Cache-Control": "no-store"})
    assert seen.status == 200 and seen.body == b"stored"
    assert not seen.cache_status.stored and seen.cache_status.detail == "request-no-store", seen
    after = await client.get("/d")
    assert not after.cache_status.hit and after.cache_status.stored, after
    assert origin.count("/d") == 2


# ---------------------------------------------------------------- response directives


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({"Cache-Control": "private, max-age=60"}, "private"),
        ({"Cache-Control": "no-store, max-age=60"}, "no-store"),
        ({"Cache-Control": "max-age=60", "Set-Cookie": "sid=abc; Path=/"}, "set-cookie"),
    ],
)
async def test_response_the_origin_marks_personal_is_not_stored(
    client: ProxyClient, origin: ProgrammableOrigin, headers: dict[str, str], reason: str
):
    origin.set("/p", headers=headers, body="mine")
    first = await client.get("/p")
    second = await client.get("/p")
    assert first.body == second.body == b"mine"
    assert not first.cache_status.stored and first.cache_status.detail == reason, first
    assert not second.cache_status.hit
    assert origin.count("/p") == 2
    if "Set-Cookie" in headers:
        assert first.headers["Set-Cookie"] == headers["Set-Cookie"]


SHARED_AUTHORIZATION_POLICY = """
policies:
  shared-auth:
    match:
      hosts: ["*"]
      paths: ["/*"]
    bypass:
      skip_rules: [req_authorization]
"""
"""Turns off the built-in pass of Authorization requests, so RFC 9111 §3.5 decides storing."""


@pytest.fixture
async def shared_auth_client(start_proxy: StartProxy, origin_url: str, tmp_path: Path) -> AsyncIterator[ProxyClient]:
    (tmp_path / "shared-auth.yaml").write_text(SHARED_AUTHORIZATION_POLICY)
    async with start_proxy(origin_url, policies=tmp_path) as proxy, proxy_client(proxy.url) as client:
        yield client


@pytest.mark.parametrize("cache_control", ["max-age=60", "public, max-age=60"])
async def test_authorization_requests_pass_to_the_origin_under_the_built_in_policy(
    client: ProxyClient, origin: ProgrammableOrigin, cache_control: str
):
    # Built-in rule req_authorization (Varnish's vcl_req_authorization): never looked up or stored.
    origin.set("/auth", headers={"Cache-Control": cache_control}, body="for alice")
    first = await client.get("/auth", headers={"Authorization": "Bearer alice"})
    assert first.body == b"for alice"
    status = first.cache_status
    assert status.fwd == "bypass" and status.detail == "req_authorization" and not status.stored, first
    assert origin.last("/auth").headers.get("Authorization") == "Bearer alice"
    # Nobody else gets alice's answer from the cache.
    anonymous = await client.get("/auth")
    assert not anonymous.cache_status.hit, anonymous
    assert origin.count("/auth") == 2


async def test_response_to_an_authorization_request_is_not_stored_without_permission(
    shared_auth_client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/auth", headers={"Cache-Control": "max-age=60"}, body="for alice")
    first = await shared_auth_client.get("/auth", headers={"Authorization": "Bearer alice"})
    assert not first.cache_status.stored and first.cache_status.detail == "authorization", first
    anonymous = await shared_auth_client.get("/auth")
    assert not anonymous.cache_status.hit, anonymous
    assert origin.count("/auth") == 2


@pytest.mark.parametrize("cache_control", ["public, max-age=60", "s-maxage=60"])
async def test_response_to_an_authorization_request_is_stored_when_the_origin_allows(
    shared_auth_client: ProxyClient, origin: ProgrammableOrigin, cache_control: str
):
    # RFC 9111 §3.5: public or s-maxage explicitly allow a shared cache to store it.
    origin.set("/shared", headers={"Cache-Control": cache_control}, body="same for all")
    first = await shared_auth_client.get("/shared", headers={"Authorization": "Bearer alice"})
    assert first.cache_status.stored, first
    again = await shared_auth_client.get("/shared", headers={"Authorization": "Bearer bob"})
    assert again.body == b"same for all" and again.cache_status.hit, again
    assert origin.count("/shared") == 1


async def test_s_maxage_wins_over_max_age(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/s", headers={"Cache-Control": "max-age=5, s-maxage=120"}, body="x")
    seen = await client.get("/s")
    assert seen.cache_status.ttl in ttl_near(120), seen


async def test_cdn_cache_control_wins_over_cache_control(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set(
        "/cdn", headers={"Cache-Control": "max-age=5, s-maxage=10", "CDN-Cache-Control": "max-age=300"}, body="x"
    )
    seen = await client.get("/cdn")
    assert seen.cache_status.ttl in ttl_near(300), seen
    # The browser still gets the origin's own Cache-Control.
    assert seen.headers["Cache-Control"] == "max-age=5, s-maxage=10"


async def test_cdn_cache_control_no_store_overrides_a_cacheable_cache_control(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # RFC 9213 §2.1: when CDN-Cache-Control is present, Cache-Control is ignored by this cache.
    origin.set("/cdn-ns", headers={"Cache-Control": "max-age=300", "CDN-Cache-Control": "no-store"}, body="x")
    await client.get("/cdn-ns")
    second = await client.get("/cdn-ns")
    assert not second.cache_status.hit, second
    assert origin.count("/cdn-ns") == 2


@pytest.mark.parametrize("directive", ['no-cache="Set-Cookie"', 'private="Set-Cookie"'])
async def test_qualified_directive_keeps_the_field_for_its_user_only(
    client: ProxyClient, origin: ProgrammableOrigin, directive: str
):
    origin.set("/q", headers={"Cache-Control": f"max-age=60, {directive}", "Set-Cookie": "sid=first-user"}, body="x")
    first = await client.get("/q")
    assert first.cache_status.stored, first
    # §5.2.2.4 / §5.2.2.7: the named field is not reused, but the response that carried it is
    # still delivered whole to the client whose request fetched it.
    assert first.headers.get("Set-Cookie") == "sid=first-user", first
    second = await client.get("/q")
    assert second.cache_status.hit and "Set-Cookie" not in second.headers, second


async def test_a_forced_revalidation_that_fails_does_not_take_the_fresh_copy_out_of_service(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/d", headers=STORED, body="stored")
    await client.get("/d")
    origin.set("/d", status=503, headers={"Cache-Control": "no-store"}, body="down")

    forced = await client.get("/d", headers={"Cache-Control": "no-cache"})
    # §4.3.3: on a 5xx while validating, the cache forwards the error or uses the stored copy.
    assert (forced.status, forced.body) in ((503, b"down"), (200, b"stored")), forced
    # One client's no-cache met an origin error; everyone else still has a fresh stored copy.
    for _ in range(3):
        seen = await client.get("/d")
        assert seen.status == 200 and seen.body == b"stored" and seen.cache_status.hit, seen
    assert origin.count("/d") == 2


async def test_surrogate_control_targeted_at_us_wins_over_the_untargeted_one(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # Edge Architecture 1.0 §2.3: a directive with ";edgeproxy" is for this surrogate and takes
    # precedence over the same directive without a target (which other surrogates use).
    origin.set(
        "/sc",
        headers={"Cache-Control": "max-age=5", "Surrogate-Control": "max-age=300;edgeproxy, max-age=10"},
        body="x",
    )
    seen = await client.get("/sc")
    assert seen.cache_status.stored and seen.cache_status.ttl in ttl_near(300), seen
    assert "Surrogate-Control" not in seen.headers


async def test_surrogate_control_wins_over_cache_control(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/sc", headers={"Cache-Control": "max-age=5", "Surrogate-Control": "max-age=300"}, body="x")
    origin.set("/sc-ns", headers={"Cache-Control": "max-age=300", "Surrogate-Control": "no-store"}, body="x")
    stored = await client.get("/sc")
    assert stored.cache_status.ttl in ttl_near(300), stored
    assert stored.headers["Cache-Control"] == "max-age=5" and "Surrogate-Control" not in stored.headers
    await client.get("/sc-ns")
    assert not (await client.get("/sc-ns")).cache_status.hit
    assert origin.last("/sc").headers.get("Surrogate-Capability") == 'edgeproxy="Surrogate/1.0"'
