"""Unsafe methods pass through and invalidate what they changed (RFC 9111 §4.4)."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}


def gets(origin: ProgrammableOrigin, path_qs: str) -> int:
    """GET requests the origin saw for ``path_qs`` (the origin counts all methods per path)."""
    return sum(1 for r in origin.seen if r.method == "GET" and r.path_qs == path_qs)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_unsafe_method_passes_through_with_its_body_and_invalidates_the_url(
    client: ProxyClient, origin: ProgrammableOrigin, method: str
):
    origin.set("/res", headers=CACHEABLE, body="current")
    await client.get("/res")
    assert (await client.get("/res")).cache_status.hit

    sent = bytes(range(256)) * 4
    passed = await client.request(method, "/res", data=sent, headers={"Content-Type": "application/octet-stream"})
    assert passed.status == 200 and passed.body == b"current"
    assert passed.cache_status.fwd == "method" and passed.cache_status.fwd_status == 200, passed
    seen = origin.last("/res")
    assert seen.method == method and seen.body == sent

    after = await client.get("/res")
    assert not after.cache_status.hit, after
    assert gets(origin, "/res") == 2


@pytest.mark.parametrize("location", ["/other", "{proxy}/other"])
async def test_location_on_the_same_origin_is_invalidated_too(
    client: ProxyClient, origin: ProgrammableOrigin, location: str
):
    origin.set("/other", headers=CACHEABLE, body="other")
    origin.set("/create", status=201, headers={"Location": location.format(proxy=client.base_url)}, body="made")
    await client.get("/other")

    created = await client.request("POST", "/create", data=b"{}")
    assert created.status == 201

    assert not (await client.get("/other")).cache_status.hit
    assert gets(origin, "/other") == 2


async def test_location_on_another_host_is_left_alone(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/other", headers=CACHEABLE, body="other")
    origin.set("/create", status=201, headers={"Location": "http://elsewhere.example/other"}, body="made")
    await client.get("/other")
    await client.request("POST", "/create", data=b"{}")
    assert (await client.get("/other")).cache_status.hit


async def test_an_error_answer_to_an_unsafe_method_invalidates_nothing(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/res", headers=CACHEABLE, body="current")
    await client.get("/res")
    origin.set("/res", status=500, body="failed")
    failed = await client.request("POST", "/res", data=b"x")
    assert failed.status == 500
    # §4.4: only a non-error status invalidates.
    assert (await client.get("/res")).cache_status.hit


async def test_invalidation_covers_every_variant(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/greeting", headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"}, body="hi")
    for language in ("en", "fr"):
        await client.get("/greeting", headers={"Accept-Language": language})
    await client.request("POST", "/greeting", data=b"new text")
    for language in ("en", "fr"):
        seen = await client.get("/greeting", headers={"Accept-Language": language})
        assert not seen.cache_status.hit, (language, seen)
    assert gets(origin, "/greeting") == 4
