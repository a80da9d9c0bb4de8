"""`ttl` (default, min, max, force, negative, hit_for_miss) and `stale` windows, through the proxy.

Cache-Status ``ttl`` is the remaining freshness (RFC 9211 §2.4), so right after a fill it shows
the lifetime the policy gave the object.
"""

from __future__ import annotations

import asyncio

from tests.policies_e2e.conftest import ServePolicy
from tests.proxy.harness import InFlight, ttl_near
from tests.support.origin import ProgrammableOrigin

ALREADY_STALE = {"Cache-Control": "max-age=1", "Age": "5", "ETag": '"v1"'}
"""Fresh for 1 s but already 5 s old on arrival (RFC 9111 §4.2.3): stale from the first use,
so stale windows are exercised without sleeping."""


async def test_default_applies_only_when_the_origin_gives_no_freshness(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/silent", body="no freshness")
    origin.set("/explicit", headers={"Cache-Control": "max-age=30"}, body="30 s")
    async with serve_policy("""
        policies:
          site:
            ttl: {default: 2m}
    """) as edge:
        silent = await edge.get("/silent")
        again = await edge.get("/silent")
        explicit = await edge.get("/explicit")
    assert silent.cache_status.stored and silent.cache_status.ttl in ttl_near(120), silent
    assert again.cache_status.hit and origin.count("/silent") == 1
    assert explicit.cache_status.ttl in ttl_near(30), explicit


async def test_without_a_default_a_response_without_freshness_is_not_stored(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/silent", body="no freshness")
    async with serve_policy("""
        policies:
          site:
            ttl: {default: ~}
    """) as edge:
        first = await edge.get("/silent")
        await edge.get("/silent")
    assert not first.cache_status.stored and first.cache_status.detail == "no-freshness", first
    assert origin.count("/silent") == 2


async def test_min_raises_and_max_lowers_the_origins_freshness(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/short", headers={"Cache-Control": "max-age=5"}, body="short")
    origin.set("/middle", headers={"Cache-Control": "max-age=300"}, body="middle")
    origin.set("/long", headers={"Cache-Control": "max-age=86400"}, body="long")
    async with serve_policy("""
        policies:
          site:
            ttl: {min: 1m, max: 10m}
    """) as edge:
        short, middle, long = [await edge.get(path) for path in ("/short", "/middle", "/long")]
    assert short.cache_status.ttl in ttl_near(60), short
    assert middle.cache_status.ttl in ttl_near(300), middle
    assert long.cache_status.ttl in ttl_near(600), long


async def test_force_overrides_the_origin_but_never_stores_private_or_no_store(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/zero", headers={"Cache-Control": "max-age=0"}, body="zero")
    origin.set("/revalidate", headers={"Cache-Control": "no-cache", "ETag": '"a"'}, body="no-cache")
    origin.set("/private", headers={"Cache-Control": "private, max-age=600"}, body="mine")
    origin.set("/no-store", headers={"Cache-Control": "no-store"}, body="never")
    async with serve_policy("""
        policies:
          site:
            ttl: {force: 45s}
    """) as edge:
        for path in ("/zero", "/revalidate", "/private", "/no-store"):
            await edge.get(path)
        zero, revalidate, private, no_store = [
            await edge.get(p) for p in ("/zero", "/revalidate", "/private", "/no-store")
        ]
    assert zero.cache_status.hit and zero.cache_status.ttl in ttl_near(45), zero
    assert revalidate.cache_status.hit, revalidate
    assert not private.cache_status.hit and not no_store.cache_status.hit
    assert origin.count("/private") == 2 and origin.count("/no-store") == 2


async def test_negative_keeps_errors_by_status_and_class_and_an_exact_status_wins(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/missing", status=404, body="not here")
    origin.set("/down", status=503, body="down")
    origin.set("/broken", status=500, body="broken")
    origin.set("/gone", status=410, body="gone")
    async with serve_policy("""
        policies:
          site:
            ttl:
              negative: {404: 10s, 5xx: 5s, 503: 20s}
    """) as edge:
        firsts = {path: await edge.get(path) for path in ("/missing", "/down", "/broken", "/gone")}
        seconds = {path: await edge.get(path) for path in ("/missing", "/down", "/broken", "/gone")}
    assert firsts["/missing"].cache_status.ttl in ttl_near(10), firsts["/missing"]
    assert firsts["/down"].cache_status.ttl in ttl_near(20), firsts["/down"]
    assert firsts["/broken"].cache_status.ttl in ttl_near(5), firsts["/broken"]
    for path in ("/missing", "/down", "/broken"):
        assert seconds[path].cache_status.hit and seconds[path].status == firsts[path].status
        assert origin.count(path) == 1
    assert not seconds["/gone"].cache_status.hit and origin.count("/gone") == 2


async def test_without_negative_ttls_errors_a_client_can_provoke_are_not_stored(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    provokable = {f"/status/{status}": status for status in (400, 403, 413, 429, 431, 500, 503)}
    for path, status in provokable.items():
        origin.set(path, status=status, headers={"Cache-Control": "max-age=60"}, body=str(status))
    async with serve_policy("""
        policies:
          site:
            ttl: {default: 1m}
    """) as edge:
        firsts = {path: await edge.get(path) for path in provokable}
        for path in firsts:
            await edge.get(path)
    for path, first in firsts.items():
        assert first.cache_status.detail == "status" and not first.cache_status.stored, (path, first)
        assert origin.count(path) == 2, path


async def test_a_404_is_kept_by_its_freshness_like_any_response(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    origin.set("/explicit", status=404, headers={"Cache-Control": "max-age=30"}, body="not here")
    origin.set("/silent", status=404, body="not here either")
    async with serve_policy("""
        policies:
          site:
            ttl: {default: 1m}
    """) as edge:
        explicit = await edge.get("/explicit")
        silent = await edge.get("/silent")
        again = [await edge.get(path) for path in ("/explicit", "/silent")]
    assert explicit.cache_status.ttl in ttl_near(30), explicit
    assert silent.cache_status.ttl in ttl_near(60), silent
    assert all(seen.cache_status.hit and seen.status == 404 for seen in again), again


async def test_hit_for_miss_remembers_an_uncacheable_key_for_its_duration(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/mine", headers={"Cache-Control": "no-store"}, body="never stored")
    async with serve_policy("""
        policies:
          site:
            ttl: {hit_for_miss: 1s}
    """) as edge:
        first = await edge.get("/mine")
        remembered = await edge.get("/mine")
        await asyncio.sleep(1.1)
        forgotten = await edge.get("/mine")
    assert first.cache_status.fwd == "uri-miss", first
    assert remembered.cache_status.fwd == "bypass", remembered
    assert forgotten.cache_status.fwd == "uri-miss", forgotten


async def test_stale_while_revalidate_default_serves_stale_and_refreshes_behind(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/windowed", headers=ALREADY_STALE, body="v1")
    origin.set("/plain", headers=ALREADY_STALE, body="v1")
    async with serve_policy("""
        policies:
          windowed:
            priority: 10
            match: {paths: [/windowed]}
            stale: {while_revalidate: 30s}
          plain:
            match: {paths: [/plain]}
    """) as edge:
        await edge.get("/windowed")
        await edge.get("/plain")
        windowed = await edge.get("/windowed")
        plain = await edge.get("/plain")
    assert windowed.cache_status.hit and windowed.cache_status.detail == "stale-updating", windowed
    assert plain.cache_status.fwd == "stale" and plain.cache_status.detail == "revalidated", plain


async def test_stale_if_error_default_serves_stale_when_the_origin_fails(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/kept", headers=ALREADY_STALE, body="kept")
    origin.set("/lost", headers=ALREADY_STALE, body="lost")
    async with serve_policy("""
        policies:
          kept:
            priority: 10
            match: {paths: [/kept]}
            stale: {if_error: 5m}
          lost:
            match: {paths: [/lost]}
    """) as edge:
        await edge.get("/kept")
        await edge.get("/lost")
        origin.set("/kept", status=503, body="down")
        origin.set("/lost", status=503, body="down")
        kept = await edge.get("/kept")
        lost = await edge.get("/lost")
    assert kept.status == 200 and kept.body == b"kept", kept
    assert kept.cache_status.fwd == "stale" and kept.cache_status.detail == "origin-503"
    assert lost.status == 503 and lost.body == b"down", lost


async def test_origin_stale_directives_win_over_the_policy_defaults(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/own", headers={**ALREADY_STALE, "Cache-Control": "max-age=1, stale-while-revalidate=0"}, body="v1")
    async with serve_policy("""
        policies:
          site:
            stale: {while_revalidate: 30s}
    """) as edge:
        await edge.get("/own")
        again = await edge.get("/own")
    assert again.cache_status.fwd == "stale", again


async def test_force_does_not_make_errors_cacheable(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    """beresp_errors: 400/413/431/5xx are not stored unless ttl.negative or store.cache_errors says so.
    A forced TTL is about the origin's freshness, not a licence to keep an outage for its length."""
    origin.set("/flaky", status=503, body="down for a moment")
    origin.set("/bad", status=400, body="a client's bad request")
    async with serve_policy("""
        policies:
          site:
            ttl: {force: 1h}
    """) as edge:
        replies = {path: [await edge.get(path) for _ in range(2)] for path in ("/flaky", "/bad")}
    for path, (first, second) in replies.items():
        assert not first.cache_status.stored and first.cache_status.detail == "status", (path, first)
        assert not second.cache_status.hit and origin.count(path) == 2, (path, second)


async def test_force_with_negative_keeps_errors_for_their_negative_ttl(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/flaky", status=503, body="down for a moment")
    async with serve_policy("""
        policies:
          site:
            ttl: {force: 1h, negative: {5xx: 5s}}
    """) as edge:
        first = await edge.get("/flaky")
        second = await edge.get("/flaky")
    assert first.cache_status.ttl in ttl_near(5), first
    assert second.cache_status.hit


async def test_while_hit_for_miss_is_remembered_requests_go_to_the_origin_together(
    serve_policy: ServePolicy, origin: ProgrammableOrigin, inflight: InFlight
):
    """Varnish's hit-for-miss: no queueing behind one another for a key known to be uncacheable."""
    origin.set("/mine", headers={"Cache-Control": "no-store"}, body="never stored", delay=0.3)
    async with serve_policy("""
        policies:
          site:
            ttl: {hit_for_miss: 1m}
    """) as edge:
        await edge.get("/mine")
        replies = await asyncio.gather(*(edge.get("/mine") for _ in range(5)))
    assert all(seen.cache_status.fwd == "bypass" for seen in replies), replies
    assert inflight.peak == 5, f"the origin saw at most {inflight.peak} of the 5 requests at once"
