"""Policy knobs seen from the outside: one policy directory, one path prefix per policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, proxy_client, ttl_near
from tests.support.origin import ProgrammableOrigin

POLICIES = """
policies:
  strip-cookies:
    priority: 1
    match:
      hosts: ["*"]
      paths: ["/strip/*"]
    store:
      set_cookie: strip
  negative:
    priority: 2
    match:
      hosts: ["*"]
      paths: ["/neg/*"]
    ttl:
      negative: {404: 10s}
  keyed:
    priority: 3
    match:
      hosts: ["*"]
      paths: ["/keyed/*"]
    key:
      strip_params: ["utm_*", "fbclid"]
      sort_query: true
  session:
    priority: 4
    match:
      hosts: ["*"]
      paths: ["/app/*"]
    bypass:
      cookies: [session]
"""

CACHEABLE = {"Cache-Control": "max-age=60"}


@pytest.fixture
async def client(start_proxy: StartProxy, origin_url: str, tmp_path: Path) -> AsyncIterator[ProxyClient]:
    (tmp_path / "e2e.yaml").write_text(POLICIES)
    async with start_proxy(origin_url, policies=tmp_path) as proxy, proxy_client(proxy.url) as connected:
        yield connected


async def test_set_cookie_strip_stores_the_response_without_the_cookie(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/strip/page", headers={**CACHEABLE, "Set-Cookie": "sid=first"}, body="page")
    first = await client.get("/strip/page")
    assert first.cache_status.stored, first
    # The client whose request filled the cache still gets the origin's answer in full.
    assert first.headers.get("Set-Cookie") == "sid=first"
    hit = await client.get("/strip/page")
    assert hit.cache_status.hit and "Set-Cookie" not in hit.headers, hit


async def test_negative_ttl_stores_a_404_without_freshness(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/neg/missing", status=404, body="not here")
    first = await client.get("/neg/missing")
    assert first.status == 404 and first.cache_status.stored and first.cache_status.ttl in ttl_near(10), first
    again = await client.get("/neg/missing")
    assert again.status == 404 and again.cache_status.hit
    assert origin.count("/neg/missing") == 1


async def test_tracking_parameters_are_stripped_from_key_and_origin_request(
    client: ProxyClient, origin: ProgrammableOrigin
):
    origin.set("/keyed/list", headers=CACHEABLE, body="list")
    await client.get("/keyed/list?b=2&utm_source=mail&a=1&fbclid=xyz")
    # The origin answers exactly what was keyed: no tracking parameters, sorted.
    assert origin.last("/keyed/list").path_qs == "/keyed/list?a=1&b=2"
    for spelling in ("/keyed/list?a=1&b=2", "/keyed/list?b=2&a=1&utm_campaign=x"):
        seen = await client.get(spelling)
        assert seen.cache_status.hit, (spelling, seen)
    assert origin.count("/keyed/list") == 1


async def test_bypass_cookie_passes_the_request(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/app/home", headers=CACHEABLE, body="home")
    await client.get("/app/home")
    anonymous = await client.get("/app/home")
    logged_in = await client.get("/app/home", headers={"Cookie": "theme=dark; session=abc"})
    assert anonymous.cache_status.hit
    assert logged_in.cache_status.fwd == "bypass" and logged_in.cache_status.detail == "req_bypass_cookie", logged_in
    assert origin.last("/app/home").headers.get("Cookie") == "theme=dark; session=abc"
    assert origin.count("/app/home") == 2
