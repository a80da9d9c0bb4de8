"""Model rollout across a fleet: two proxies on one private Redis, driven through one admin API.

A second version is published with the real CLI (``edgeproxy model publish --redis``); the admin
API of proxy A activates, canaries or rolls it back, and proxy B follows over the fleet bus.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.personalize.registry import user_share
from edgeproxy.proxy.runtime import ProxyRuntime, running_proxy
from tests.conftest import RedisServer
from tests.personalize_e2e.conftest import (
    BUNDLED_MODELS,
    ITEMS,
    ConfigFactory,
    bearer,
    fetch,
    metric,
    metrics_text,
    origin_requests,
    user,
)

MODEL = "demo-ranker"
_MODEL_LABEL = re.compile(r"model=(\S+?)\"")
FOLLOW_TIMEOUT = 5.0


def served_model(cache_status: str) -> str:
    found = _MODEL_LABEL.search(cache_status)
    assert found is not None, f"no model in Cache-Status {cache_status!r}"
    return found[1]


def cli(redis_url: str, *argv: str) -> str:
    """Run ``edgeproxy model <argv> --redis URL`` as an operator would; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "edgeproxy.cli", "model", *argv, "--redis", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def publish_second_version(redis_url: str, tmp_path: Path) -> None:
    """``edgeproxy model publish`` of the bundled model file: stored as the next version (v2)."""
    for suffix in (".txt", ".json"):
        shutil.copy(BUNDLED_MODELS / f"{MODEL}-v1{suffix}", tmp_path / f"candidate{suffix}")
    assert f"published {MODEL}-v2" in cli(redis_url, "publish", str(tmp_path / "candidate.txt"))


async def model_for(session: aiohttp.ClientSession, proxy: ProxyRuntime, uid: str) -> str:
    seen = await fetch(session, proxy.url + ITEMS, headers=user(uid))
    assert seen.status == 200
    return served_model(seen.cache_status)


async def eventually_serves(session: aiohttp.ClientSession, proxy: ProxyRuntime, label: str) -> None:
    """Poll until ``proxy`` serves ``label`` to u0001 (a fleet message takes a moment)."""
    deadline = asyncio.get_running_loop().time() + FOLLOW_TIMEOUT
    while (served := await model_for(session, proxy, "u0001")) != label:
        assert asyncio.get_running_loop().time() < deadline, f"{proxy.url} still serves {served}, not {label}"
        await asyncio.sleep(0.05)


async def command(
    session: aiohttp.ClientSession, proxy: ProxyRuntime, body: dict[str, object]
) -> aiohttp.ClientResponse:
    async with session.post(f"http://127.0.0.1:{proxy.admin_port}/models/{MODEL}", json=body, headers=bearer()) as resp:
        await resp.read()
        return resp


@pytest.fixture
async def pair(proxy_config: ConfigFactory, own_redis: RedisServer) -> AsyncIterator[tuple[ProxyRuntime, ProxyRuntime]]:
    """Proxies A and B sharing ``own_redis`` (models seeded there from the bundled v1)."""
    config = proxy_config(redis=own_redis.url)
    async with running_proxy(config) as a, running_proxy(config) as b:
        yield a, b


@pytest.fixture
def fleet(
    pair: tuple[ProxyRuntime, ProxyRuntime], own_redis: RedisServer, tmp_path: Path
) -> tuple[ProxyRuntime, ProxyRuntime]:
    """``pair`` with demo-ranker v2 published (not yet serving)."""
    publish_second_version(own_redis.url, tmp_path)
    return pair


async def test_a_user_gets_the_same_order_from_either_proxy(
    pair: tuple[ProxyRuntime, ProxyRuntime], origin: str, session: aiohttp.ClientSession
) -> None:
    a, b = pair
    site = {"Host": "shop.example"}  # the cache key holds the host: one site behind both proxies
    on_a = await fetch(session, a.url + ITEMS, headers={**site, **user("u0007")})
    on_b = await fetch(session, b.url + ITEMS, headers={**site, **user("u0007")})  # B's copy comes from L2
    other = await fetch(session, b.url + ITEMS, headers={**site, **user("u0008")})
    assert await origin_requests(session, origin) == 1
    assert 'detail="l2 ranked model=demo-ranker-v1"' in on_b.cache_status
    assert (on_b.body, on_b.headers["ETag"]) == (on_a.body, on_a.headers["ETag"])
    assert other.body != on_a.body


async def test_activate_on_one_admin_api_switches_the_fleet_and_rollback_returns(
    fleet: tuple[ProxyRuntime, ProxyRuntime], session: aiohttp.ClientSession
) -> None:
    a, b = fleet
    assert await model_for(session, a, "u0001") == await model_for(session, b, "u0001") == f"{MODEL}-v1"

    activated = await command(session, a, {"action": "activate", "version": "v2"})
    assert activated.status == 200
    assert await model_for(session, a, "u0001") == f"{MODEL}-v2"  # applied here before answering
    await eventually_serves(session, b, f"{MODEL}-v2")
    for proxy in (a, b):
        metrics = await metrics_text(session, proxy.admin_port)
        assert metric(metrics, "edgeproxy_model_version_info", model=MODEL, version="v2") == 1
        assert metric(metrics, "edgeproxy_model_version_info", model=MODEL, version="v1") == 0

    # A proxy joining the fleet later reads the rollout from Redis.
    async with running_proxy(replace(a.config, port=0, admin=None)) as late:
        assert await model_for(session, late, "u0001") == f"{MODEL}-v2"

    rolled_back = await command(session, a, {"action": "rollback"})
    assert rolled_back.status == 200
    assert await model_for(session, a, "u0001") == f"{MODEL}-v1"
    await eventually_serves(session, b, f"{MODEL}-v1")


async def test_the_model_cli_rolls_out_to_every_proxy_over_the_fleet_bus(
    fleet: tuple[ProxyRuntime, ProxyRuntime], session: aiohttp.ClientSession, own_redis: RedisServer
) -> None:
    cli(own_redis.url, "promote", MODEL, "2")
    for proxy in fleet:
        await eventually_serves(session, proxy, f"{MODEL}-v2")
    cli(own_redis.url, "rollback", MODEL)
    for proxy in fleet:
        await eventually_serves(session, proxy, f"{MODEL}-v1")


async def test_rollback_aborts_a_canary_of_a_first_new_version(
    fleet: tuple[ProxyRuntime, ProxyRuntime], session: aiohttp.ClientSession
) -> None:
    """The admin API has no other way to stop a canary: canary shares must be in (0, 1], and
    activating the current version leaves the canary running."""
    a, b = fleet
    assert (await command(session, a, {"action": "canary", "version": "v2", "share": 1.0})).status == 200
    await eventually_serves(session, b, f"{MODEL}-v2")
    aborted = await command(session, a, {"action": "rollback"})
    assert aborted.status == 200
    for proxy in fleet:
        await eventually_serves(session, proxy, f"{MODEL}-v1")


async def test_a_canary_serves_its_share_of_users_stably_across_the_fleet(
    fleet: tuple[ProxyRuntime, ProxyRuntime], session: aiohttp.ClientSession
) -> None:
    a, b = fleet
    share = 0.3
    canaried = await command(session, a, {"action": "canary", "version": "v2", "share": share})
    assert canaried.status == 200
    users = [f"u{i:04d}" for i in range(1, 201)]
    expected = {u for u in users if user_share(MODEL, u) < share}
    await eventually_serves(session, b, f"{MODEL}-v2" if "u0001" in expected else f"{MODEL}-v1")
    on_a = {u for u in users if await model_for(session, a, u) == f"{MODEL}-v2"}
    on_b = {u for u in users if await model_for(session, b, u) == f"{MODEL}-v2"}
    assert on_a == on_b == expected  # the same users on the canary, whichever proxy they reach
    assert 0.2 <= len(on_a) / len(users) <= 0.4
    # Anonymous users always get the current version.
    anonymous = await fetch(session, b.url + ITEMS)
    assert served_model(anonymous.cache_status) == f"{MODEL}-v1"


async def test_activating_a_version_that_does_not_exist_is_404_unknown_version(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    shutil.copytree(BUNDLED_MODELS, tmp_path / "models")
    async with running_proxy(proxy_config(models=tmp_path / "models")) as proxy:
        refused = await command(session, proxy, {"action": "activate", "version": "v9"})
        still = await model_for(session, proxy, "u0001")
    assert refused.status == 404  # ModelOutcome.UNKNOWN_VERSION, as for a malformed version
    assert still == f"{MODEL}-v1"


async def test_unknown_models_are_404_and_a_rollback_without_history_is_409(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    shutil.copytree(BUNDLED_MODELS, tmp_path / "models")
    async with running_proxy(proxy_config(models=tmp_path / "models")) as proxy:
        async with session.post(
            f"http://127.0.0.1:{proxy.admin_port}/models/no-such-model",
            json={"action": "activate", "version": "v1"},
            headers=bearer(),
        ) as resp:
            unknown_model = resp.status
        nothing_to_roll_back = await command(session, proxy, {"action": "rollback"})
        still = await model_for(session, proxy, "u0001")
    assert unknown_model == 404
    assert nothing_to_roll_back.status == 409
    assert still == f"{MODEL}-v1"
