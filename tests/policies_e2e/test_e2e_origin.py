"""`origin` per policy: where misses go, and its connect / read timeouts."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.policies_e2e.conftest import ServePolicy
from tests.proxy.harness import unused_url
from tests.support.origin import ProgrammableOrigin, serve_app


async def test_a_policy_origin_receives_its_requests_with_the_target_appended(
    serve_policy: ServePolicy, origin: ProgrammableOrigin
):
    second = ProgrammableOrigin()
    second.set("/media/cat.png", headers={"Cache-Control": "max-age=60"}, body="from second")
    origin.set("/page", headers={"Cache-Control": "max-age=60"}, body="from default")
    async with (
        serve_app(second.app()) as second_url,
        serve_policy(f"""
        policies:
          media:
            priority: 10
            match: {{paths: ["/media/*"]}}
            origin: {{url: "{second_url}"}}
    """) as edge,
    ):
        media = await edge.get("/media/cat.png?size=2")
        page = await edge.get("/page")
    assert media.body == b"from second" and page.body == b"from default"
    assert second.last("/media/cat.png").path_qs == "/media/cat.png?size=2"
    assert origin.count("/media/cat.png") == 0 and second.count("/page") == 0


async def test_an_origin_that_refuses_connections_is_a_502(serve_policy: ServePolicy):
    async with serve_policy(f"""
        policies:
          dead:
            match: {{paths: ["/dead/*"]}}
            origin: {{url: "{unused_url()}"}}
    """) as edge:
        seen = await edge.get("/dead/x")
    assert seen.status == 502, seen
    assert seen.cache_status.detail == "connect"


async def test_connect_timeout_gives_up_on_an_origin_that_never_accepts(
    serve_policy: ServePolicy, unresponsive_url: str
):
    async with serve_policy(f"""
        policies:
          stuck:
            match: {{paths: ["/stuck/*"]}}
            origin: {{url: "{unresponsive_url}", connect_timeout: 200ms, read_timeout: 10s}}
    """) as edge:
        seen = await edge.get("/stuck/x")
    assert seen.status == 504, seen
    assert seen.cache_status.detail == "timeout"


async def test_read_timeout_gives_up_on_a_slow_response_head(
    serve_policy: ServePolicy, origin: ProgrammableOrigin, origin_url: str
):
    origin.set("/slow", headers={"Cache-Control": "max-age=60"}, body="late", delay=0.6)
    origin.set("/quick", headers={"Cache-Control": "max-age=60"}, body="on time", delay=0.05)
    async with serve_policy(f"""
        policies:
          impatient:
            origin: {{url: "{origin_url}", read_timeout: 300ms}}
    """) as edge:
        slow = await edge.get("/slow")
        quick = await edge.get("/quick")
    assert slow.status == 504, slow
    assert slow.cache_status.detail == "timeout"
    assert quick.status == 200 and quick.body == b"on time"


def trickling_origin(gap: float) -> web.Application:
    """``/trickle`` sends its head at once, then three chunks ``gap`` seconds apart."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        await response.prepare(request)
        for _ in range(3):
            await asyncio.sleep(gap)
            await response.write(b"x" * 100)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/trickle", trickle)
    return app


async def test_read_timeout_bounds_each_wait_not_the_whole_body(serve_policy: ServePolicy):
    """Three gaps of 0.4 s under an 800 ms read timeout: slower in total than the timeout, yet
    the origin never went quiet for that long."""
    async with (
        serve_app(trickling_origin(0.4)) as url,
        serve_policy(f"""
        policies:
          patient:
            origin: {{url: "{url}", read_timeout: 800ms}}
    """) as edge,
    ):
        seen = await edge.get("/trickle")
    assert seen.status == 200 and seen.body == b"x" * 300, seen


async def test_a_body_that_stalls_past_read_timeout_is_a_gateway_timeout(serve_policy: ServePolicy):
    """RFC 9110 §15.6.5: the origin did not answer in time, whether the head or the body stalled."""
    async with (
        serve_app(trickling_origin(0.5)) as url,
        serve_policy(f"""
        policies:
          impatient:
            origin: {{url: "{url}", read_timeout: 200ms}}
    """) as edge,
    ):
        seen = await edge.get("/trickle")
    assert seen.status == 504, seen
    assert seen.cache_status.detail == "timeout", seen


async def test_when_a_policy_origin_goes_away_stale_if_error_still_answers(
    serve_policy: ServePolicy, origin: ProgrammableOrigin, origin_url: str
):
    origin.set("/page", headers={"Cache-Control": "max-age=1", "Age": "5"}, body="kept")
    site = """
        policies:
          site:
            origin: {{url: "{url}"}}
            stale: {{if_error: 5m}}
    """
    async with serve_policy(site.format(url=origin_url)) as edge:
        await edge.get("/page")
        edge.write(site.format(url=unused_url()))
        assert (await edge.reload()).body["outcome"] == "reloaded"
        seen = await edge.get("/page")
    assert seen.status == 200 and seen.body == b"kept", seen
    assert seen.cache_status.fwd == "stale" and seen.cache_status.detail == "origin-connect", seen
