"""Variants (RFC 9111 §4.1) and HEAD answered from a stored GET (RFC 9110 §9.3.2)."""

from __future__ import annotations

import asyncio

from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

VARY_LANGUAGE = {"Cache-Control": "max-age=60", "Vary": "Accept-Language"}


async def test_each_language_gets_its_own_variant(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/greeting", headers=VARY_LANGUAGE, body="hello")
    english = await client.get("/greeting", headers={"Accept-Language": "en"})
    origin.set("/greeting", headers=VARY_LANGUAGE, body="bonjour")
    french = await client.get("/greeting", headers={"Accept-Language": "fr"})

    assert english.body == b"hello" and english.cache_status.fwd == "uri-miss"
    assert french.body == b"bonjour" and french.cache_status.fwd == "vary-miss", french
    assert french.cache_status.stored

    assert (await client.get("/greeting", headers={"Accept-Language": "en"})).body == b"hello"
    again = await client.get("/greeting", headers={"Accept-Language": "fr"})
    assert again.body == b"bonjour" and again.cache_status.hit
    assert again.headers["Vary"] == "Accept-Language"
    assert origin.count("/greeting") == 2


async def test_requests_without_the_varied_header_share_one_variant(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/greeting", headers=VARY_LANGUAGE, body="default")
    await client.get("/greeting")
    origin.set("/greeting", headers=VARY_LANGUAGE, body="english")
    english = await client.get("/greeting", headers={"Accept-Language": "en"})
    plain = await client.get("/greeting")
    assert english.body == b"english"
    assert plain.body == b"default" and plain.cache_status.hit
    assert origin.count("/greeting") == 2


async def test_header_values_that_differ_only_in_case_and_spacing_share_a_variant(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/greeting", headers=VARY_LANGUAGE, body="hi")
    await client.get("/greeting", headers={"Accept-Language": "en-US,fr"})
    for spelling in ("en-us, fr", "EN-US ,  FR", "en-US, fr, en-us"):
        seen = await client.get("/greeting", headers={"Accept-Language": spelling})
        assert seen.cache_status.hit, (spelling, seen)
    assert origin.count("/greeting") == 1


async def test_languages_listed_in_another_order_are_another_variant(client: ProxyClient, origin: ProgrammableOrigin):
    """RFC 9110 §12.5.4: with equal qvalues an origin may prefer the language listed first."""
    origin.set("/greeting", headers=VARY_LANGUAGE, body="bonjour")
    await client.get("/greeting", headers={"Accept-Language": "fr, en"})
    origin.set("/greeting", headers=VARY_LANGUAGE, body="hello")
    seen = await client.get("/greeting", headers={"Accept-Language": "en, fr"})
    assert seen.body == b"hello" and seen.cache_status.fwd == "vary-miss", seen


async def test_a_variant_the_origin_no_longer_lets_us_keep_leaves_the_others_stored(
    client: ProxyClient, origin: ProgrammableOrigin
):
    short = {**VARY_LANGUAGE, "Cache-Control": "max-age=1", "ETag": '"v"'}
    origin.set("/greeting", headers=short, body="hello")
    await client.get("/greeting", headers={"Accept-Language": "en"})
    origin.set("/greeting", headers={**VARY_LANGUAGE, "ETag": '"v"'}, body="bonjour")
    await client.get("/greeting", headers={"Accept-Language": "fr"})
    await asyncio.sleep(1.1)
    origin.set("/greeting", headers={"Vary": "Accept-Language", "Cache-Control": "no-store"}, body="hi")

    english = await client.get("/greeting", headers={"Accept-Language": "en"})
    assert english.body == b"hi" and not english.cache_status.hit, english
    # Only the English variant was superseded; the French one and the variant index stay.
    french = await client.get("/greeting", headers={"Accept-Language": "fr"})
    assert french.body == b"bonjour" and french.cache_status.hit, french


async def test_vary_star_is_never_stored(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/star", headers={"Cache-Control": "max-age=60", "Vary": "*"}, body="x")
    first = await client.get("/star")
    second = await client.get("/star")
    assert first.body == second.body == b"x"
    assert not first.cache_status.stored and first.cache_status.detail == "vary-star", first
    assert not second.cache_status.hit
    assert origin.count("/star") == 2


async def test_head_is_answered_from_a_stored_get(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/doc", headers={"Cache-Control": "max-age=60", "ETag": '"d"'}, body=b"d" * 1234)
    got = await client.get("/doc")
    head = await client.head("/doc")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == "1234"
    assert head.headers["ETag"] == '"d"'
    assert head.cache_status.hit, head
    assert origin.count("/doc") == 1


async def test_head_miss_fills_the_cache_for_a_later_get(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/doc", headers={"Cache-Control": "max-age=60"}, body=b"full body")
    head = await client.head("/doc")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == "9"
    assert head.cache_status.stored, head
    assert origin.last("/doc").method == "GET"

    got = await client.get("/doc")
    assert got.body == b"full body" and got.cache_status.hit, got
    assert origin.count("/doc") == 1


async def test_head_of_an_uncacheable_resource_keeps_its_content_length(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/live", headers={"Cache-Control": "no-store"}, body=b"z" * 777)
    for _ in range(2):  # the miss, then hit-for-miss
        head = await client.head("/live")
        assert head.status == 200 and head.body == b""
        # RFC 9110 §9.3.2: the same fields a GET would have had.
        assert head.headers["Content-Length"] == "777", head


async def test_concurrent_requests_for_one_variant_collapse_behind_another_variants_fill(
    client: ProxyClient, origin: ProgrammableOrigin
):
    """A cold Vary'd URL: whichever request leads fills its variant; the others for that variant
    take it, and those for another variant collapse on one fetch of theirs, not one each."""
    origin.set("/greeting", headers=VARY_LANGUAGE, body="hello", delay=0.5)
    languages = ["fr", "de", "de", "fr", "de", "de", "fr"]
    replies = await asyncio.gather(*(client.get("/greeting", headers={"Accept-Language": lang}) for lang in languages))
    assert all(seen.status == 200 and seen.body == b"hello" for seen in replies)
    # However late a request arrives, it joins its variant's fetch or finds it stored.
    assert origin.count("/greeting") == 2
