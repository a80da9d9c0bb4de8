"""What separates two stored responses, and what a client cannot use to poison one."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyClient
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}


async def test_hosts_have_separate_entries_and_host_case_does_not_matter(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/page", headers=CACHEABLE, body="shop a")
    await client.get("/page", headers={"Host": "a.example"})
    origin.set("/page", headers=CACHEABLE, body="shop b")
    other_host = await client.get("/page", headers={"Host": "b.example"})
    assert other_host.body == b"shop b" and not other_host.cache_status.hit

    same_host = await client.get("/page", headers={"Host": "A.Example"})
    assert same_host.body == b"shop a" and same_host.cache_status.hit
    assert origin.last("/page").headers["Host"] == "b.example"


async def test_queries_have_separate_entries(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/q", headers=CACHEABLE, body="x")
    for target in ("/q", "/q?a=1", "/q?a=2", "/q?a=1&b=2", "/q?b=2&a=1"):
        assert not (await client.get(target)).cache_status.hit, target
    assert (await client.get("/q?a=1")).cache_status.hit
    assert origin.count("/q") == 5


async def test_unkeyed_override_headers_are_not_forwarded(client: ProxyClient, origin: ProgrammableOrigin):
    # Headers that make some frameworks answer for another host, path or method, while the cache
    # key ignores them: forwarding them lets one request poison the entry everyone gets.
    origin.set("/home", headers=CACHEABLE, body="home")
    await client.get(
        "/home",
        headers={
            "X-Forwarded-Host": "evil.example",
            "X-Original-URL": "/admin",
            "X-Rewrite-URL": "/admin",
            "X-HTTP-Method-Override": "DELETE",
            "Forwarded": "host=evil.example;proto=https",
        },
    )
    seen = origin.last("/home").headers
    for name in ("X-Forwarded-Host", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "Forwarded"):
        assert name not in seen, name


@pytest.mark.parametrize("status", [400, 413, 500, 503])
async def test_errors_a_client_can_provoke_are_not_stored_by_default(
    client: ProxyClient, origin: ProgrammableOrigin, status: int
):
    # One client's bad request (or an origin hiccup) must not become everyone's answer.
    path = f"/err{status}"
    origin.set(path, status=status, headers=CACHEABLE, body="error page")
    first = await client.get(path)
    second = await client.get(path)
    assert first.status == second.status == status
    assert not first.cache_status.stored and first.cache_status.detail == "status", first
    assert not second.cache_status.hit
    assert origin.count(path) == 2


async def test_a_404_with_explicit_freshness_is_stored(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/gone", status=404, headers=CACHEABLE, body="no such page")
    await client.get("/gone")
    hit = await client.get("/gone")
    assert hit.status == 404 and hit.cache_status.hit and hit.body == b"no such page", hit
    assert origin.count("/gone") == 1


async def test_permanent_redirect_with_freshness_is_stored(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/old", status=301, headers={"Cache-Control": "max-age=60", "Location": "/new"})
    await client.get("/old")
    hit = await client.get("/old")
    assert hit.status == 301 and hit.headers["Location"] == "/new" and hit.cache_status.hit, hit
    assert origin.count("/old") == 1
