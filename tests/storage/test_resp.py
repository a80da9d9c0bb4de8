"""The lean data-path channel (edgeproxy/storage/resp.py) against real Redis: many callers on one
connection each get their own reply, a timed-out caller never hands its reply to another, and
the URL's login is applied before any command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from edgeproxy.storage.redisconn import BACKEND_ERRORS
from edgeproxy.storage.resp import Endpoint, RespChannel, plain_endpoint

if TYPE_CHECKING:
    from tests.conftest import RedisServer


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("redis://127.0.0.1:6380/2", Endpoint("127.0.0.1", 6380, db=2)),
        ("redis://localhost", Endpoint("localhost", 6379)),
        ("redis://:s%40cret@h:1", Endpoint("h", 1, password="s@cret")),
        ("redis://user:pw@h:1/0", Endpoint("h", 1, username="user", password="pw")),
        ("redis://h:1?db=4", Endpoint("h", 1, db=4)),
        ("unix:///run/redis.sock?db=3", Endpoint(path="/run/redis.sock", db=3)),
        ("rediss://h:1/0", None),
        ("redis+cluster://h:1", None),
        ("redis://h:1/0?socket_keepalive=true", None),
        ("redis://h:1/x", None),
    ],
    ids=["host-port-db", "defaults", "password-quoted", "user-password", "db-option", "unix", "tls-to-redis-py",
         "cluster-to-redis-py", "other-options-to-redis-py", "bad-db-to-redis-py"],
)
def test_only_plain_urls_it_fully_understands_take_the_lean_channel(url: str, endpoint: Endpoint | None) -> None:
    assert plain_endpoint(url) == endpoint


def channel_for(url: str) -> RespChannel:
    endpoint = plain_endpoint(url)
    assert endpoint is not None
    return RespChannel(endpoint)


@pytest.fixture
async def channel(redis_url: str, redis_namespace: str) -> AsyncIterator[RespChannel]:
    channel = channel_for(redis_url)
    yield channel
    keys = await channel.call("KEYS", f"{redis_namespace}:*")
    if keys:
        await channel.call("UNLINK", *keys)
    await channel.close()


pytestmark = pytest.mark.redis


async def test_concurrent_callers_each_get_their_own_reply_over_a_few_connections(own_redis: RedisServer) -> None:
    channel = channel_for(own_redis.url)
    admin = Redis.from_url(own_redis.url)
    try:
        keys = [f"k{n}" for n in range(200)]
        await channel.pipeline([("SET", key, f"value-{n}") for n, key in enumerate(keys)])
        values = await asyncio.gather(*(channel.call("GET", key) for key in keys))
        assert values == [f"value-{n}".encode() for n in range(len(keys))]
        clients = (await admin.info("clients"))["connected_clients"]
        assert 1 < clients <= 1 + channel.size  # ours, plus the admin's
    finally:
        await channel.close()
        await admin.aclose()


async def test_a_slow_reply_does_not_hold_up_other_callers(channel: RespChannel, redis_namespace: str) -> None:
    await channel.call("SET", f"{redis_namespace}:small", "v")
    # BLPOP on an empty list answers only after 1 s: a stand-in for a big object on its way.
    slow = asyncio.ensure_future(channel.call("BLPOP", f"{redis_namespace}:empty", 1))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(0.5):
        assert await channel.call("GET", f"{redis_namespace}:small") == b"v"
    assert await slow is None


async def test_a_pipeline_runs_every_command_then_raises_the_first_error(channel: RespChannel, redis_namespace: str) -> None:
    text, after = f"{redis_namespace}:text", f"{redis_namespace}:after"
    with pytest.raises(ResponseError, match="not an integer"):
        await channel.pipeline([("SET", text, "abc"), ("INCR", text), ("SET", after, "1")])
    assert await channel.pipeline([("GET", text), ("GET", after), ("EXISTS", text, after)]) == [b"abc", b"1", 2]


async def test_an_unknown_script_raises_noscripterror_as_redis_py_does(channel: RespChannel) -> None:
    # The fill lock's scripts rely on it to send themselves whole (locks.Script).
    with pytest.raises(NoScriptError):
        await channel.call("EVALSHA", "0" * 40, 0)


async def test_a_caller_that_timed_out_never_hands_its_reply_to_the_next(own_redis: RedisServer) -> None:
    channel = channel_for(own_redis.url)
    admin = Redis.from_url(own_redis.url)
    try:
        await channel.call("SET", "slow", "first")
        await channel.call("SET", "next", "second")
        await admin.execute_command("CLIENT", "PAUSE", 300, "ALL")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await channel.call("GET", "slow")
        # The paused GET's reply arrives later on the old connection; this call must not see it.
        assert await channel.call("GET", "next") == b"second"
    finally:
        await channel.close()
        await admin.aclose()


async def test_a_dead_server_fails_callers_with_a_backend_error_and_a_restart_is_found_again(
    own_redis: RedisServer,
) -> None:
    channel = channel_for(own_redis.url)
    try:
        assert await channel.call("PING") == b"PONG"
        own_redis.stop()
        with pytest.raises(BACKEND_ERRORS):
            await channel.call("PING")
        own_redis.start()
        assert await channel.call("PING") == b"PONG"
    finally:
        await channel.close()


async def test_the_urls_password_and_database_apply_before_any_command(own_redis: RedisServer) -> None:
    admin = Redis.from_url(own_redis.url)
    await admin.config_set("requirepass", "s@cret")
    await admin.aclose()
    host_port = f"127.0.0.1:{own_redis.port}"
    channel = channel_for(f"redis://:s%40cret@{host_port}/3")
    wrong = channel_for(f"redis://:nope@{host_port}/0")
    db0, db3 = (Redis(host="127.0.0.1", port=own_redis.port, password="s@cret", db=db) for db in (0, 3))
    try:
        await channel.call("SET", "where", "db3")
        assert await db0.exists("where") == 0 and await db3.get("where") == b"db3"
        with pytest.raises(RedisConnectionError, match="refused the login"):
            await wrong.call("PING")
    finally:
        await channel.close()
        await wrong.close()
        await db0.aclose()
        await db3.aclose()
