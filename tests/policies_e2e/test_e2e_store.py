"""`store`: Set-Cookie handling, the object size cap, and caching of errors."""

from __future__ import annotations

from aiohttp import web

from tests.policies_e2e.conftest import ServePolicy
from tests.support.origin import ProgrammableOrigin, serve_app

COOKIE_RESPONSE = [("Cache-Control", "max-age=60"), ("Set-Cookie", "session=abc; Path=/"), ("Set-Cookie", "ab=b")]


def store_policy(store: str) -> str:
    return f"""
        policies:
          site:
            store: {store}
    """


async def test_set_cookie_pass_does_not_store_a_response_that_sets_a_cookie(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/landing", headers=COOKIE_RESPONSE, body="welcome")
    async with serve_policy(store_policy("{set_cookie: pass}")) as edge:
        first = await edge.get("/landing")
        second = await edge.get("/landing")
    assert first.cache_status.detail == "set-cookie" and not first.cache_status.stored, first
    assert not second.cache_status.hit and second.headers.getall("Set-Cookie") == ["session=abc; Path=/", "ab=b"]
    assert origin.count("/landing") == 2


async def test_set_cookie_strip_stores_without_the_cookie_and_only_the_filling_client_gets_it(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/landing", headers=COOKIE_RESPONSE, body="welcome")
    async with serve_policy(store_policy("{set_cookie: strip}")) as edge:
        first = await edge.get("/landing")
        second = await edge.get("/landing")
    assert first.cache_status.stored, first
    assert first.headers.getall("Set-Cookie") == ["session=abc; Path=/", "ab=b"]
    assert second.cache_status.hit and second.body == b"welcome", second
    assert "Set-Cookie" not in second.headers, "a stored copy must never hand out another client's cookie"
    assert origin.count("/landing") == 1


async def test_max_object_size_streams_larger_bodies_through_unstored(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    big, small = b"B" * 4096, b"s" * 1024
    origin.set("/big", headers={"Cache-Control": "max-age=60"}, body=big)
    origin.set("/small", headers={"Cache-Control": "max-age=60"}, body=small)
    async with serve_policy(store_policy("{max_object_size: 2KB}")) as edge:
        big_replies = [await edge.get("/big") for _ in range(2)]
        small_replies = [await edge.get("/small") for _ in range(2)]
    for seen in big_replies:
        assert seen.status == 200 and seen.body == big, seen
        assert not seen.cache_status.stored, seen
    # The first is found too large; the second is passed through (hit-for-pass) without a try.
    assert [seen.cache_status.detail for seen in big_replies] == ["too-large", "hit-for-pass"]
    assert origin.count("/big") == 2
    assert small_replies[1].cache_status.hit and small_replies[1].body == small
    assert origin.count("/small") == 1


async def test_max_object_size_also_applies_to_bodies_without_a_length(serve_policy: ServePolicy):
    """A chunked body is read up to the cap; past it, the rest streams and nothing is stored."""
    served = 0

    async def chunked(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"c" * 1024)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    async with serve_app(app) as url, serve_policy(store_policy("{max_object_size: 2KB}"), origin=url) as edge:
        replies = [await edge.get("/chunked") for _ in range(2)]
    assert all(seen.body == b"c" * 8192 for seen in replies), replies
    assert replies[0].cache_status.detail == "too-large"
    assert served == 2


async def test_cache_errors_stores_errors_that_carry_explicit_freshness(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/oops", status=500, headers={"Cache-Control": "max-age=30"}, body="oops")
    origin.set("/no-freshness", status=500, body="oops")
    async with serve_policy(store_policy("{cache_errors: true}")) as edge:
        first = await edge.get("/oops")
        second = await edge.get("/oops")
        await edge.get("/no-freshness")
        await edge.get("/no-freshness")
    assert first.cache_status.stored, first
    assert second.status == 500 and second.cache_status.hit, second
    assert origin.count("/oops") == 1 and origin.count("/no-freshness") == 2


async def test_without_cache_errors_an_error_is_not_stored_even_with_freshness(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    origin.set("/oops", status=500, headers={"Cache-Control": "max-age=30"}, body="oops")
    async with serve_policy(store_policy("{cache_errors: false}")) as edge:
        first = await edge.get("/oops")
        await edge.get("/oops")
    assert first.cache_status.detail == "status", first
    assert origin.count("/oops") == 2


async def test_cache_errors_never_invents_freshness_for_an_error(serve_policy: ServePolicy, origin: ProgrammableOrigin):
    """cache_errors stores provokable errors "that carry explicit freshness"; without it they are
    ttl.negative's business. Neither ttl.default nor the §4.2.2 heuristic (a public 500 with
    Last-Modified) may keep an error the origin gave no lifetime: one outage would be cached."""
    old = "Mon, 01 Jan 2024 00:00:00 GMT"
    origin.set("/public-error", status=500, headers={"Cache-Control": "public"}, body="oops")
    origin.set("/old-error", status=503, headers={"Cache-Control": "public", "Last-Modified": old}, body="down")
    async with serve_policy("""
        policies:
          defaulted:
            priority: 10
            match: {paths: [/public-error]}
            ttl: {default: 1m}
            store: {cache_errors: true}
          heuristic:
            match: {paths: [/old-error]}
            store: {cache_errors: true}
    """) as edge:
        replies = {path: [await edge.get(path) for _ in range(2)] for path in ("/public-error", "/old-error")}
    for path, (first, second) in replies.items():
        assert not first.cache_status.stored and not second.cache_status.hit, (path, first, second)
        assert origin.count(path) == 2
