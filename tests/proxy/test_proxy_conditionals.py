"""Client preconditions answered from the cache (RFC 9110 §13.2.2, RFC 9111 §4.3.2)."""

from __future__ import annotations

from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

VALIDATED = {"Cache-Control": "max-age=60", "ETag": '"v1"', "Last-Modified": "Tue, 01 Jan 2030 00:00:00 GMT"}


async def test_matching_if_none_match_is_a_304_from_cache(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/c", headers=VALIDATED, body="body")
    await client.get("/c")
    for tags in ('"v1"', 'W/"v1"', '"other", "v1"', "*"):
        seen = await client.get("/c", headers={"If-None-Match": tags})
        assert seen.status == 304 and seen.body == b"", (tags, seen)
        assert seen.headers["ETag"] == '"v1"'
        assert seen.cache_status.hit
    assert origin.count("/c") == 1


async def test_other_if_none_match_gets_the_full_stored_response(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/c", headers=VALIDATED, body="body")
    await client.get("/c")
    seen = await client.get("/c", headers={"If-None-Match": '"v0"'})
    assert seen.status == 200 and seen.body == b"body" and seen.cache_status.hit
    assert origin.count("/c") == 1


async def test_if_modified_since_is_a_304_from_cache(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/c", headers=VALIDATED, body="body")
    await client.get("/c")
    same = await client.get("/c", headers={"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT"})
    older = await client.get("/c", headers={"If-Modified-Since": "Mon, 31 Dec 2029 00:00:00 GMT"})
    assert same.status == 304 and same.body == b""
    assert older.status == 200 and older.body == b"body"
    assert origin.count("/c") == 1


async def test_conditional_miss_fills_the_cache_then_answers_the_client(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/c", headers=VALIDATED, body="body")
    seen = await client.get("/c", headers={"If-None-Match": '"v1"'})
    assert seen.status == 304 and seen.body == b""
    assert seen.cache_status.stored, seen
    # The client's validator was not forwarded, so the origin sent the full body to store.
    assert "If-None-Match" not in origin.last("/c").headers
    full = await client.get("/c")
    assert full.status == 200 and full.body == b"body" and full.cache_status.hit
    assert origin.count("/c") == 1


async def test_a_precondition_holds_against_an_answer_that_is_not_stored(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # Uncacheable, so every request is fetched whole (the client's validators are not sent):
    # the client still gets the 304 its validators earn, first time and once marked hit-for-miss.
    origin.set("/u", headers={**VALIDATED, "Cache-Control": "no-store"}, body="body")
    for _ in range(2):
        seen = await client.get("/u", headers={"If-None-Match": '"v1"'})
        assert seen.status == 304 and seen.body == b"", seen
        assert seen.headers["ETag"] == '"v1"' and not seen.cache_status.stored
        assert "If-None-Match" not in origin.last("/u").headers
    since = await client.get("/u", headers={"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT"})
    changed = await client.get("/u", headers={"If-None-Match": '"v0"'})
    assert since.status == 304
    assert changed.status == 200 and changed.body == b"body"
    assert origin.count("/u") == 4


async def test_a_304_made_from_an_answer_keeps_the_cookie_the_origin_set(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/s", headers={**VALIDATED, "Set-Cookie": "session=abc"}, body="body")
    seen = await client.get("/s", headers={"If-None-Match": '"v1"'})
    assert seen.status == 304 and seen.headers.get("Set-Cookie") == "session=abc"
    again = await client.get("/s", headers={"If-None-Match": '"v1"'})
    assert again.status == 304 and again.headers.get("Set-Cookie") == "session=abc"
    assert origin.count("/s") == 2  # never stored: Set-Cookie
