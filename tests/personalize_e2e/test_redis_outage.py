"""Personalization with the fleet's Redis dead: profiles, the event stream and the model registry
live there, yet lists keep being ranked, clicks accepted, and the proxy stops cleanly."""

from __future__ import annotations

import json

import aiohttp

from edgeproxy.proxy.runtime import running_proxy
from tests.conftest import RedisServer
from tests.personalize_e2e.conftest import ITEMS, ConfigFactory, bearer, fetch, user

CLICK = {"user": "u0001", "item": 17}


async def test_lists_are_still_ranked_and_clicks_accepted_with_redis_dead(
    proxy_config: ConfigFactory, own_redis: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config(redis=own_redis.url)) as proxy:
        warm = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        own_redis.stop()
        # u0001's profile is cached in the process; u0002's cannot be read any more.
        known = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        unread = await fetch(session, proxy.url + ITEMS, headers=user("u0002"))
        click = await fetch(session, proxy.url + "/_edge/feedback", "POST", json=CLICK)
        own_redis.start()  # so that leaving the block can flush (see test_the_proxy_stops_cleanly…)
    assert 'ranked model=demo-ranker-v1"' in warm.cache_status
    assert known.status == unread.status == 200
    assert known.body == warm.body
    assert 'ranked model=demo-ranker-v1"' in unread.cache_status
    assert click.status == 202


async def test_a_rollout_command_with_redis_dead_is_refused_with_a_reason(
    proxy_config: ConfigFactory, own_redis: RedisServer, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config(redis=own_redis.url)) as proxy:
        own_redis.stop()
        refused = await fetch(
            session,
            f"http://127.0.0.1:{proxy.admin_port}/models/demo-ranker",
            "POST",
            json={"action": "activate", "version": "v1"},
            headers=bearer(),
        )
        still = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        own_redis.start()
    assert refused.status == 503, refused.body
    assert "redis" in json.loads(refused.body)["detail"].lower()
    assert 'ranked model=demo-ranker-v1"' in still.cache_status


async def test_the_proxy_stops_cleanly_with_redis_dead_and_events_unflushed(
    proxy_config: ConfigFactory, own_redis: RedisServer, session: aiohttp.ClientSession
) -> None:
    """Events are best effort: a shutdown with Redis gone loses the buffered ones, not the exit."""
    async with running_proxy(proxy_config(redis=own_redis.url)) as proxy:
        await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        assert (await fetch(session, proxy.url + "/_edge/feedback", "POST", json=CLICK)).status == 202
        own_redis.stop()
    # Leaving the block ran ProxyRuntime.stop(); reaching this line means it did not raise.
