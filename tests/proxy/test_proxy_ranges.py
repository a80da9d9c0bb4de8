"""Range requests are answered from the complete stored body (RFC 9110 §14), on hits and on the
miss that fills the cache; the origin is always asked for the whole representation."""

from __future__ import annotations

from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

BODY = "01234567890"


def program(origin: ProgrammableOrigin) -> None:
    origin.set("/r", headers={"Cache-Control": "max-age=60", "ETag": '"v1"'}, body=BODY)


async def test_a_miss_with_range_fetches_the_whole_body_and_answers_the_range(
    client: ProxyClient, origin: ProgrammableOrigin
):
    program(origin)
    first = await client.get("/r", headers={"Range": "bytes=0-1"})
    assert first.status == 206 and first.body == b"01"
    assert first.headers["Content-Range"] == "bytes 0-1/11" and first.headers["Content-Length"] == "2"
    assert first.cache_status.stored
    assert "Range" not in origin.last("/r").headers

    whole = await client.get("/r")
    assert whole.status == 200 and whole.body == BODY.encode() and whole.cache_status.hit


async def test_hits_serve_each_range_from_the_stored_body(client: ProxyClient, origin: ProgrammableOrigin):
    program(origin)
    await client.get("/r")
    for range_field, content_range, body in [
        ("bytes=5-", "bytes 5-10/11", b"567890"),
        ("bytes=-3", "bytes 8-10/11", b"890"),
        ("bytes=2-2", "bytes 2-2/11", b"2"),
    ]:
        for _ in range(3):  # the same request bytes again: still its own range
            seen = await client.get("/r", headers={"Range": range_field})
            assert seen.status == 206 and seen.body == body and seen.headers["Content-Range"] == content_range
            assert seen.cache_status.hit and seen.headers["ETag"] == '"v1"'
    assert origin.count("/r") == 1


async def test_a_range_past_the_end_is_416_with_the_complete_length(client: ProxyClient, origin: ProgrammableOrigin):
    program(origin)
    await client.get("/r")
    seen = await client.get("/r", headers={"Range": "bytes=20-"})
    assert seen.status == 416 and seen.body == b"" and seen.headers["Content-Range"] == "bytes */11"


async def test_whole_representation_for_several_ranges_a_stale_if_range_and_head(
    client: ProxyClient, origin: ProgrammableOrigin
):
    program(origin)
    await client.get("/r")
    several = await client.get("/r", headers={"Range": "bytes=0-1,3-4"})
    changed = await client.get("/r", headers={"Range": "bytes=0-1", "If-Range": '"v0"'})
    same = await client.get("/r", headers={"Range": "bytes=0-1", "If-Range": '"v1"'})
    head = await client.head("/r", headers={"Range": "bytes=0-1"})
    assert several.status == 200 and several.body == BODY.encode()
    assert changed.status == 200 and changed.body == BODY.encode()
    assert same.status == 206 and same.body == b"01"
    assert head.status == 200 and head.headers["Content-Length"] == "11"
    assert origin.count("/r") == 1


async def test_if_none_match_is_answered_before_range(client: ProxyClient, origin: ProgrammableOrigin):
    program(origin)
    await client.get("/r")
    seen = await client.get("/r", headers={"Range": "bytes=0-1", "If-None-Match": '"v1"'})
    assert seen.status == 304 and seen.body == b""
