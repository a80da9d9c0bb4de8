"""Miss, hit, stale, revalidated, expired: a stored response through its life (RFC 9111 §4).

The origin's Date has one-second precision, so a response just received already has an apparent
age anywhere in [0, 1) s (§4.2.3): a test that needs a hit before the copy goes stale uses a 2 s
lifetime; one that only needs it stale uses 1 s and sleeps a little over it.
"""

from __future__ import annotations

import asyncio
import time

from edgeproxy.cache.httpdate import format_http_date
from tests.proxy.harness import ProxyClient, ttl_near
from tests.support.origin import ProgrammableOrigin

STALE_AFTER_2S = 2.1


async def test_first_request_is_a_stored_miss_and_the_second_a_hit(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/a", headers={"Cache-Control": "max-age=30", "ETag": '"v1"'}, body="alpha")

    first = await client.get("/a")
    assert first.status == 200 and first.body == b"alpha"
    status = first.cache_status
    assert status.cache == "edgeproxy"
    assert not status.hit
    assert status.fwd == "uri-miss" and status.fwd_status == 200 and status.stored
    assert status.ttl in ttl_near(30)
    assert first.age in (0, 1)
    assert "1.1 edgeproxy" in first.headers.getall("Via")

    second = await client.get("/a")
    assert second.status == 200 and second.body == b"alpha"
    assert second.cache_status.hit, second
    assert second.cache_status.fwd is None
    assert second.cache_status.detail == "l1"
    assert second.cache_status.ttl in ttl_near(30)
    assert second.headers["ETag"] == '"v1"'
    assert origin.count("/a") == 1


async def test_stale_response_with_etag_is_revalidated_by_a_304_and_served_from_cache(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/r", headers={"Cache-Control": "max-age=2", "ETag": '"v1"'}, body="stored body")
    await client.get("/r")
    # Same validator: the origin answers the revalidation with a 304 carrying these fields.
    origin.set("/r", headers={"Cache-Control": "max-age=60", "ETag": '"v1"', "X-Build": "2"}, body="never sent")
    await asyncio.sleep(STALE_AFTER_2S)

    revalidated = await client.get("/r")
    assert revalidated.status == 200
    assert revalidated.body == b"stored body"
    status = revalidated.cache_status
    assert status.fwd == "stale" and status.fwd_status == 304 and status.stored, revalidated
    assert status.detail == "revalidated"
    assert origin.count("/r") == 2
    # §4.3.1: the conditional request carries the stored validator.
    assert origin.last("/r").headers.get("If-None-Match") == '"v1"'

    # §4.3.4: the 304's fields replace the stored ones; its max-age is the new lifetime.
    assert revalidated.headers["X-Build"] == "2"
    assert revalidated.headers["Cache-Control"] == "max-age=60"
    assert status.ttl in ttl_near(60)
    after = await client.get("/r")
    assert after.cache_status.hit and after.body == b"stored body", after
    assert after.headers["X-Build"] == "2"
    assert origin.count("/r") == 2


async def test_expired_response_is_replaced_by_the_origins_new_full_response(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/changed", headers={"Cache-Control": "max-age=2", "ETag": '"v1"'}, body="old")
    origin.set("/plain", headers={"Cache-Control": "max-age=2"}, body="old")
    await client.get("/changed")
    await client.get("/plain")
    origin.set("/changed", headers={"Cache-Control": "max-age=30", "ETag": '"v2"'}, body="new")
    origin.set("/plain", headers={"Cache-Control": "max-age=30"}, body="new")
    await asyncio.sleep(STALE_AFTER_2S)

    changed = await client.get("/changed")
    assert changed.status == 200 and changed.body == b"new", changed
    status = changed.cache_status
    # The stale copy was validated (If-None-Match: "v1") and the origin answered in full.
    assert status.fwd == "stale" and status.fwd_status == 200 and status.stored, changed
    assert status.detail == "expired"
    assert origin.last("/changed").headers.get("If-None-Match") == '"v1"'

    plain = await client.get("/plain")
    assert plain.status == 200 and plain.body == b"new", plain
    # Without a validator or stale window the expired copy is useless; it may already be gone.
    assert plain.cache_status.fwd in ("stale", "uri-miss") and plain.cache_status.stored, plain

    for path in ("/changed", "/plain"):
        again = await client.get(path)
        assert again.cache_status.hit and again.body == b"new", again
        assert again.cache_status.ttl in ttl_near(30)
        assert origin.count(path) == 2
    # §4.3.1: no validator stored, so the refetch was unconditional.
    assert "If-None-Match" not in origin.last("/plain").headers


async def test_age_grows_while_the_response_is_stored(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/aging", headers={"Cache-Control": "max-age=60"}, body="x")
    first = await client.get("/aging")
    await asyncio.sleep(1.1)
    later = await client.get("/aging")
    assert later.cache_status.hit
    # §4.2.3: resident time counts; the ttl left shrinks by as much.
    assert later.age >= first.age + 1
    assert later.cache_status.ttl <= 59


async def test_age_includes_the_age_the_origin_reported(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/aged", headers={"Cache-Control": "max-age=60", "Age": "10"}, body="x")
    first = await client.get("/aged")
    hit = await client.get("/aged")
    for seen in (first, hit):
        # §4.2.3: corrected_age_value = age_value + response_delay; one Age, ours, replaces the origin's.
        assert len(seen.headers.getall("Age")) == 1, seen.headers
        assert 10 <= seen.age <= 11, seen.headers
        assert seen.cache_status.ttl in ttl_near(50), seen
    assert hit.cache_status.hit


async def test_a_response_too_old_to_keep_is_served_but_not_reported_stored(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # Older than its lifetime on arrival, with no validator and no stale window: nothing could use it.
    origin.set("/too-old", headers={"Cache-Control": "max-age=100", "Age": "300"}, body="x")
    first = await client.get("/too-old")
    assert first.body == b"x" and first.age == 300, first
    # RFC 9211 §2.6: "stored" says whether the cache stored the response.
    assert not first.cache_status.stored and first.cache_status.detail == "expired-on-arrival", first
    assert not (await client.get("/too-old")).cache_status.hit
    assert origin.count("/too-old") == 2

    # With a validator it is kept (for a 304 later), and says so.
    origin.set("/too-old-etag", headers={"Cache-Control": "max-age=100", "Age": "300", "ETag": '"e"'}, body="x")
    assert (await client.get("/too-old-etag")).cache_status.stored


async def test_via_is_on_every_response(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/via", headers={"Cache-Control": "max-age=60", "Via": "1.1 origin-lb"}, body="x")
    for seen in (await client.get("/via"), await client.get("/via"), await client.get("/nothing-programmed")):
        vias = ", ".join(seen.headers.getall("Via"))
        assert "1.1 edgeproxy" in vias, seen
    # RFC 9110 §7.6.3: a proxy appends itself; the origin-side entry stays, in order.
    assert ", ".join((await client.get("/via")).headers.getall("Via")) == "1.1 origin-lb, 1.1 edgeproxy"


async def test_expires_in_the_past_is_never_reused(client: ProxyClient, origin: ProgrammableOrigin):
    # RFC 9111 §5.3: an invalid Expires such as "0" means "already expired".
    origin.set("/exp", headers={"Expires": "0"}, body="x")
    origin.set("/exp-past", headers={"Expires": "Thu, 01 Jan 2015 00:00:00 GMT"}, body="x")
    for path in ("/exp", "/exp-past"):
        await client.get(path)
        second = await client.get(path)
        assert not second.cache_status.hit, second
        assert origin.count(path) == 2


async def test_expires_in_the_future_is_a_lifetime(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/exp-future", headers={"Expires": format_http_date(time.time() + 120)}, body="x")
    await client.get("/exp-future")
    hit = await client.get("/exp-future")
    assert hit.cache_status.hit and 115 <= hit.cache_status.ttl <= 120, hit


async def test_response_no_cache_is_stored_but_revalidated_before_every_use(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/nc", headers={"Cache-Control": "no-cache", "ETag": '"n1"'}, body="validated")
    await client.get("/nc")
    for expected_origin_requests in (2, 3):
        seen = await client.get("/nc")
        assert seen.body == b"validated" and seen.cache_status.fwd_status == 304, seen
        assert origin.count("/nc") == expected_origin_requests


async def test_a_304_for_a_newer_representation_is_not_passed_to_a_client_that_sent_no_precondition(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set(
        "/lm", headers={"Cache-Control": "max-age=1", "Last-Modified": "Tue, 01 Jan 2030 00:00:00 GMT"}, body="a"
    )
    await client.get("/lm")
    # A misbehaving origin: 304 to our If-Modified-Since, but describing a later modification.
    origin.set(
        "/lm", status=304, headers={"Cache-Control": "max-age=60", "Last-Modified": "Wed, 02 Jan 2030 00:00:00 GMT"}
    )
    await asyncio.sleep(1.1)

    seen = await client.get("/lm")
    # RFC 9110 §15.4.5: a 304 answers a conditional request; this client sent none and holds no
    # copy, so it needs a full response (the cache retries unconditionally or fails cleanly).
    assert seen.status != 304, seen
