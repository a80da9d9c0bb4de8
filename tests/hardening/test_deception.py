"""Web cache deception: a private page reached through a "static-looking" URL is never stored.

Storability follows the origin's fields (RFC 9111 §3), never a file extension; even a policy
that forces a TTL on a path cannot store what the origin marked private or personal.
"""

from __future__ import annotations

import pytest

from tests.hardening.conftest import REPO_POLICIES, StartProxy
from tests.proxy.harness import proxy_client
from tests.support.origin import ProgrammableOrigin

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
