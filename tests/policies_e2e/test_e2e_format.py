"""The file format's shared conventions, observed through the proxy: `x-` anchors merged into
policies, `~` meaning the default, and sizes as binary multiples."""

from __future__ import annotations

from tests.policies_e2e.conftest import ServePolicy
from tests.proxy.harness import ttl_near
from tests.support.origin import ProgrammableOrigin

ALREADY_STALE = {"Cache-Control": "max-age=1", "Age": "5", "ETag": '"v1"'}


async def test_x_settings_merge_into_policies_and_keys_written_in_the_policy_win(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/api/a", headers=ALREADY_STALE, body="a")
    origin.set("/api/b", body="b")
    async with serve_policy("""
        x-api-defaults: &api-defaults
          stale: {while_revalidate: 30s, if_error: 5m}
          ttl: {default: 1m}
        policies:
          api:
            <<: *api-defaults
            priority: 50
            match: {paths: ["/api/*"]}
            ttl: {default: 2m}
    """) as edge:
        await edge.get("/api/a")
        stale = await edge.get("/api/a")
        silent = await edge.get("/api/b")
    assert stale.cache_status.hit and stale.cache_status.detail == "stale-updating", stale
    assert silent.cache_status.ttl in ttl_near(120), silent


async def test_null_means_the_documented_default(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/private", headers={"Cache-Control": "no-store"}, body="never stored")
    origin.set("/big", headers={"Cache-Control": "max-age=60"}, body=b"x" * (64 * 1024))
    origin.set("/cookie", headers={"Cache-Control": "max-age=60", "Set-Cookie": "a=1"}, body="c")
    async with serve_policy("""
        policies:
          site:
            priority: ~
            origin: ~
            ttl: {default: ~, min: ~, max: ~, force: ~, hit_for_miss: ~}
            stale: {while_revalidate: ~, if_error: ~}
            store: {max_object_size: ~, set_cookie: ~, cache_errors: ~}
            key: {query: ~, sort_query: ~, lowercase_host: ~}
            personalize: ~
    """) as edge:
        await edge.get("/private")
        remembered = await edge.get("/private")
        await edge.get("/big")
        big = await edge.get("/big")
        await edge.get("/cookie")
        cookie = await edge.get("/cookie")
        await edge.get("/big", host="Shop.Example")
        lowercased = await edge.get("/big", host="shop.example")
    assert remembered.cache_status.fwd == "bypass", "hit_for_miss defaults to 10s"
    assert big.cache_status.hit, "64 KiB is far below the 8MB default"
    assert not cookie.cache_status.hit, "set_cookie defaults to pass"
    assert lowercased.cache_status.hit, "lowercase_host defaults to true"


async def test_sizes_are_binary_multiples_and_the_cap_is_inclusive(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/exact", headers={"Cache-Control": "max-age=60"}, body=b"e" * 1024)
    origin.set("/over", headers={"Cache-Control": "max-age=60"}, body=b"o" * 1025)
    async with serve_policy("""
        policies:
          site:
            store: {max_object_size: 1KB}
    """) as edge:
        exact = [await edge.get("/exact") for _ in range(2)]
        over = [await edge.get("/over") for _ in range(2)]
    assert exact[0].cache_status.stored and exact[1].cache_status.hit, exact
    assert over[0].cache_status.detail == "too-large" and not over[1].cache_status.hit, over
