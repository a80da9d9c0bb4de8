"""Cache poisoning: nothing a client controls may change a stored response unless it is keyed.

Complements tests/proxy/test_proxy_keying.py (five override headers, 404/500/503) with the full
header list, a policy that keys on one of them, every error class and raw path spellings.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.hardening.conftest import StartProxy
from tests.hardening.origins import DesyncOrigin, RecordingOrigin
from tests.hardening.wire import cache_status, raw_get
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}

# Headers that popular frameworks (Symfony, Django, Rails, Spring, IIS rewrite, Flask/werkzeug
# ProxyFix, Laravel) read to rebuild the host, scheme, port, path or method of a request.
OVERRIDE_HEADERS = [
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Scheme", "nothttps"),
    ("X-Forwarded-Server", "evil.example"),
    ("X-Host", "evil.example"),
    ("X-Original-Host", "evil.example"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("Forwarded", "host=evil.example;proto=https"),
    ("X-Forwarded-Port", "1337"),
    ("X-Forwarded-Prefix", "/evil"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Url-Scheme", "https"),
    ("Front-End-Https", "on"),
]


@pytest.mark.parametrize("name, value", OVERRIDE_HEADERS, ids=[name for name, _ in OVERRIDE_HEADERS])
async def test_unkeyed_override_header_never_reaches_the_origin(
    client: ProxyClient, origin: ProgrammableOrigin, name: str, value: str
):
    origin.set("/home", headers=CACHEABLE, body="home")
    await client.get("/home", headers={name: value})
    assert name not in origin.last("/home").headers, f"{name} was forwarded but is not in the cache key"


async def test_client_forwarded_proto_is_replaced_by_the_real_scheme(client: ProxyClient, origin: ProgrammableOrigin):
    # An origin that redirects http → https on X-Forwarded-Proto would otherwise store a redirect
    # loop (or a https-less page) for everyone.
    origin.set("/home", headers=CACHEABLE, body="home")
    await client.get("/home", headers={"X-Forwarded-Proto": "https"})
    assert origin.last("/home").headers.getall("X-Forwarded-Proto") == ["http"]


async def test_a_header_the_policy_keys_on_is_forwarded_and_separates_entries(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    policy = """
    policies:
      multi-tenant:
        match: {hosts: ["*"], paths: ["/*"]}
        key: {headers: [x-forwarded-host]}
    """
    origin.set("/home", headers=CACHEABLE, body="home")
    async with start_proxy(origin_url, policy=policy) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/home", headers={"X-Forwarded-Host": "a.example"})
        assert origin.last("/home").headers.get("X-Forwarded-Host") == "a.example"
        other = await client.get("/home", headers={"X-Forwarded-Host": "b.example"})
        assert origin.last("/home").headers.get("X-Forwarded-Host") == "b.example"
        again = await client.get("/home", headers={"X-Forwarded-Host": "a.example"})
        plain = await client.get("/home")
    assert first.cache_status.stored and not other.cache_status.hit, (first, other)
    assert again.cache_status.hit, again
    assert not plain.cache_status.hit, plain
    # Other override headers stay dropped under that policy.
    assert origin.count("/home") == 3


# 404 is not here: a 404 with explicit freshness is stored like any response (negative caching
# is normal CDN behaviour and one client cannot make a URL 404 for everyone else).
@pytest.mark.parametrize("status", [400, 403, 413, 429, 431, 500, 502, 503, 504])
async def test_error_statuses_with_freshness_are_not_stored_by_default(
    client: ProxyClient, origin: ProgrammableOrigin, status: int
):
    origin.set("/e", status=status, headers=CACHEABLE, body="error page")
    first = await client.get("/e")
    second = await client.get("/e")
    assert first.status == second.status == status
    assert not first.cache_status.stored and not second.cache_status.hit, (first, second)
    assert origin.count("/e") == 2


async def test_errors_are_stored_only_when_a_policy_says_so(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    policy = """
    policies:
      errors:
        match: {hosts: ["*"], paths: ["/*"]}
        store: {cache_errors: true}
        ttl: {negative: {404: 10s}}
    """
    origin.set("/explicit", status=503, headers=CACHEABLE, body="down")
    origin.set("/negative", status=404, body="gone")
    origin.set("/unlisted", status=500, body="oops")
    async with start_proxy(origin_url, policy=policy) as proxy, proxy_client(proxy.url) as client:
        for path in ("/explicit", "/negative", "/unlisted"):
            await client.get(path)
            await client.get(path)
    assert (origin.count("/explicit"), origin.count("/negative"), origin.count("/unlisted")) == (1, 1, 2)


RAW_SPELLINGS = ["/a/../b", "/b", "/%61", "/a", "/x//y", "/x/y", "/a;b", "/./a", "/a/%2e%2e/b", "/a%2fb", "/A"]


async def test_the_origin_receives_exactly_the_keyed_target_for_every_spelling(start_proxy: StartProxy):
    # RFC 3986 §6 normalizations (dot segments, %-decoding unreserved, empty segments) are the
    # origin's business: if the proxy keyed one spelling and forwarded another, a request for
    # /a/../b could store whatever the origin answers for /b under a key of its own choosing.
    # Each spelling is its own key, and each key is fetched exactly as spelled.
    recorder = RecordingOrigin()
    async with recorder.serving() as url, start_proxy(url) as proxy:
        for target in RAW_SPELLINGS:
            miss = await raw_get(proxy, target)
            hit = await raw_get(proxy, target)
            assert cache_status(miss).stored and cache_status(hit).hit, (target, miss, hit)
    assert recorder.targets() == RAW_SPELLINGS


@pytest.mark.parametrize("target", ["//evil.example/x", "http://shop.example//evil.example/x"], ids=["origin-form", "absolute-form"])
async def test_a_target_starting_with_two_slashes_is_refused_not_reinterpreted(start_proxy: StartProxy, target: str):
    # "//host/path" reads as a network-path reference to URL libraries (RFC 3986 §4.2); the
    # server layer refuses it rather than let the key and the upstream URL disagree on the host
    # (or hand an origin's URL joiner another host), however the request spells it.
    recorder = RecordingOrigin()
    async with recorder.serving() as url, start_proxy(url) as proxy:
        response = await raw_get(proxy, target)
    assert response.status == 400
    assert recorder.seen == []


async def test_encoded_paths_cannot_dodge_a_path_bypass(start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin):
    # Policies match on the normalized path, so /%61ccount and /x/../account are still /account.
    policy = """
    policies:
      site:
        match: {hosts: ["*"], paths: ["/*"]}
        bypass: {paths: [/account, /account/*]}
    """
    origin.set("/account/me", headers=CACHEABLE, body="me")
    async with start_proxy(origin_url, policy=policy) as proxy:
        for target in ("/account/me", "/%61ccount/me", "/x/../account/me", "/account/./me"):
            response = await raw_get(proxy, target)
            assert cache_status(response).fwd == "bypass", (target, response)


async def test_stripped_and_unlisted_parameters_are_not_forwarded(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    policy = """
    policies:
      list:
        match: {hosts: ["*"], paths: ["/list"]}
        key: {query: include, query_params: [category, limit], sort_query: true, strip_params: ["utm_*"]}
    """
    origin.set("/list", headers=CACHEABLE, body="[]")
    async with start_proxy(origin_url, policy=policy) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/list?utm_source=x&limit=5&debug=1&category=books&utm%5Fmedium=y")
        second = await client.get("/list?category=books&limit=5&debug=2&callback=evil")
    assert origin.last("/list").path_qs == "/list?category=books&limit=5"
    assert origin.count("/list") == 1
    assert first.cache_status.stored and second.cache_status.hit, (first, second)


async def test_an_unsolicited_origin_response_is_never_another_urls_answer(start_proxy: StartProxy):
    # Upstream desync: bytes an origin sends on an idle pooled connection must not be read as the
    # response to the next request sent on it (RFC 9112 §9.3.1: a response belongs to a request);
    # the connection is unusable and must be discarded (docs/SECURITY.md, trust boundaries).
    origin = DesyncOrigin()
    async with origin.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        await client.get("/split")
        await asyncio.sleep(0.2)
        victim = await client.get("/victim")
        again = await client.get("/victim")
    assert victim.body == again.body == b"genuine /victim", (victim, again)


@pytest.mark.parametrize(
    "target, suffix", [("/m", "#frag"), ("/list?category=books", "#x"), ("/list?category=books&", "#"), ("/m", "?")]
)
async def test_a_suffix_the_origin_never_sees_is_not_a_key_of_its_own(start_proxy: StartProxy, target: str, suffix: str):
    # RFC 9112 §3.2: a request-target has no fragment, and the upstream URL library drops "#…"
    # and an empty "?" on the way to the origin. Keying them mints keys for one upstream resource
    # (cache busting that even `query: include` policies cannot stop; a fragment makes endless
    # keys) whose entries URL purges never match. Refusing the target (400) or keying it without
    # the suffix are both sound.
    policy = """
    policies:
      list:
        match: {hosts: ["*"], paths: ["/list"]}
        key: {query: include, query_params: [category]}
    """
    recorder = RecordingOrigin()
    async with recorder.serving() as url, start_proxy(url, policy=policy) as proxy:
        await raw_get(proxy, target)
        suffixed = await raw_get(proxy, target + suffix)
    assert suffixed.status == 400 or cache_status(suffixed).hit, suffixed
    assert len(recorder.seen) == 1, recorder.targets()
