"""Web cache deception: a private page reached through a "static-looking" URL is never stored.

Storability follows the origin's fields (RFC 9111 §3), never a file extension; even a policy
that forces a TTL on a path cannot store what the origin marked private or personal.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.cache.entry import CacheEntry
from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.keying import request_key
from tests.hardening.conftest import REPO_POLICIES, StartProxy
from tests.proxy.harness import ProxyClient, proxy_client
from tests.support.origin import ProgrammableOrigin, serve_demo_origin

PERSONAL_ANSWERS = {
    "private": {"Cache-Control": "private, max-age=600"},
    "set-cookie": {"Cache-Control": "max-age=600", "Set-Cookie": "session=victim; HttpOnly"},
    "no-store": {"Cache-Control": "no-store"},
    "no-headers-with-cookie": {"Set-Cookie": "session=victim"},
}

FORCING_POLICY = """
policies:
  assets:
    match: {hosts: ["*"], paths: ["*.css", "*.js", "/static/*"]}
    ttl: {force: 1h, min: 1h, default: 1d}
"""


@pytest.mark.parametrize("answer", PERSONAL_ANSWERS, ids=list(PERSONAL_ANSWERS))
@pytest.mark.parametrize("policy", [None, FORCING_POLICY], ids=["builtin", "forced-ttl"])
async def test_a_personal_page_under_a_static_looking_path_is_never_shared(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, answer: str, policy: str | None
):
    origin.set("/account/profile.css", headers=PERSONAL_ANSWERS[answer], body="victim's account page")
    async with start_proxy(origin_url, policy=policy) as proxy, proxy_client(proxy.url) as client:
        for target in ("/account/profile.css", "/account/profile.css?x=.js"):
            victim = await client.get(target, headers={"Cookie": "session=victim"})
            attacker = await client.get(target)
            assert victim.status == 200, victim
            assert not attacker.cache_status.hit, (target, attacker)
            assert not victim.cache_status.stored and not attacker.cache_status.stored, (target, victim, attacker)
    assert origin.count("/account/profile.css") == 4


async def test_the_demo_policies_send_account_paths_straight_to_the_origin(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    origin.set("/account/profile.css", headers={"Cache-Control": "public, max-age=600"}, body="looks public")
    async with start_proxy(origin_url, policies=REPO_POLICIES) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/account/profile.css")
        second = await client.get("/%61ccount/profile.css")
    assert first.cache_status.fwd == second.cache_status.fwd == "bypass", (first, second)
    assert origin.count("/account/profile.css") == 2


async def test_a_personalized_list_is_private_and_the_shared_copy_stays_the_base(
    start_proxy: StartProxy, tmp_path: Path
):
    # Threat 10 in docs/SECURITY.md: user A's ranking must never be what user B gets from the cache.
    target = "/api/items?category=books&limit=20"
    async with serve_demo_origin() as demo_url, start_proxy(
        demo_url, policies=REPO_POLICIES, events_path=tmp_path / "events.jsonl"
    ) as proxy, proxy_client(proxy.url) as client:
        async with aiohttp.ClientSession() as session, session.get(demo_url + target) as direct:
            base = await direct.read()
        replies = {
            uid: await client.get(target, headers={"Cookie": f"uid={uid}", "Host": "shop.example"})
            for uid in ("u0001", "u0002", "u0003")
        }
        policy = proxy.policies.current.match("shop.example", "GET", "/api/items")
        stored = proxy.l1.get_nowait(request_key(policy, RequestHead("GET", "shop.example", target, ())).hash)
    assert isinstance(stored, CacheEntry) and stored.body == base, "the shared entry is not the origin's body"
    base_items = sorted(json.loads(base)["items"], key=lambda item: item["id"])
    for uid, reply in replies.items():
        assert reply.headers["Cache-Control"].startswith("private"), (uid, reply)
        assert sorted(json.loads(reply.body)["items"], key=lambda item: item["id"]) == base_items, uid


@pytest.mark.parametrize(
    "answer, shared",
    [({"Cache-Control": "max-age=60"}, True), ({"Cache-Control": "max-age=60", "Vary": "Cookie"}, False)],
    ids=["public", "vary-cookie"],
)
async def test_a_cookie_alone_does_not_bypass_the_cache(
    client: ProxyClient, origin: ProgrammableOrigin, answer: dict[str, str], shared: bool
):
    # The decision in docs/SECURITY.md: requests with cookies are looked up and stored as
    # RFC 9111 says (a response the origin marks shareable is shared); the origin keeps a page
    # per user with private, Set-Cookie or Vary: Cookie, and an operator can pass cookies with
    # bypass.cookies (tests/policies_e2e/test_e2e_bypass.py).
    origin.set("/page", headers=answer, body="page")
    with_cookie = await client.get("/page", headers={"Cookie": "session=a"})
    anonymous = await client.get("/page")
    assert with_cookie.cache_status.stored, with_cookie
    assert anonymous.cache_status.hit is shared, anonymous
