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
