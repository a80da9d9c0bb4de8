"""Rollout: hot swap across processes sharing Redis, canary share by user hash, rollback."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from edgeproxy.personalize.cli import register
from edgeproxy.personalize.model import ModelMeta
from edgeproxy.personalize.registry import (
    Arm,
    DirectoryBackend,
    RedisBackend,
    Registry,
    RegistryError,
    canary,
    promote,
    publish,
    rollback,
    shadow,
    user_share,
)
from edgeproxy.storage.bus import FleetBus, Message


@pytest.fixture
async def redis(redis_url: str, redis_namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{redis_namespace}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def _version(registry: Registry, name: str = "demo-ranker") -> int | None:
    current = registry.live[name].current
    return None if current is None else current.meta.version


async def test_a_promotion_hot_swaps_every_registry_sharing_redis(
    redis: Redis, redis_namespace: str, small_model: tuple[str, ModelMeta]
) -> None:
    text, meta = small_model
    backend = RedisBackend(redis, redis_namespace)
    first = await publish(backend, text, meta)
    second = await publish(backend, text, meta)
    assert (first.version, second.version) == (1, 2)
    fleet = [Registry(RedisBackend(redis, redis_namespace)) for _ in range(2)]
    for registry in fleet:
        await registry.refresh()
        assert _version(registry) == 1

    # The rollout travels on the fleet bus, as every proxy process follows it.
    bus_backend = RedisBackend(redis, redis_namespace, bus_namespace=redis_namespace)
    follower = FleetBus(redis, redis_namespace)
    received: list[Message] = []
    await follower.subscribe(received.append)
    await promote(backend, "demo-ranker", 2)
    assert await bus_backend.announce({"kind": "model-rollout", "name": "demo-ranker"}) >= 1
    async with asyncio.timeout(5):
        while not received:
            await asyncio.sleep(0.01)
    await follower.close()
    assert received[0].kind == "model-rollout"
    for registry in fleet:
        await registry.apply(received[0].payload)
        assert _version(registry) == 2

    await rollback(backend, "demo-ranker")
    for registry in fleet:
        await registry.apply({"kind": "model-rollout", "name": "demo-ranker"})
        assert _version(registry) == 1
    await fleet[0].apply({"kind": "purge", "name": "demo-ranker"})  # other bus messages are ignored


async def test_canary_share_is_honoured_and_stable(tmp_path: Path, small_model: tuple[str, ModelMeta]) -> None:
    text, meta = small_model
    backend = DirectoryBackend(tmp_path)
    await publish(backend, text, meta)
    await publish(backend, text, meta)
    await canary(backend, "demo-ranker", 2, share=0.1)
    await shadow(backend, "demo-ranker", 1)
    registry = Registry(backend)
    await registry.refresh()
    users = [f"user-{i}" for i in range(20_000)]
    arms = [registry.select("demo-ranker", u) for u in users]
    on_canary = sum(s.arm is Arm.CANARY for s in arms) / len(users)
    assert 0.09 < on_canary < 0.11
    assert all((s.model is not None and s.model.meta.version == 2) == (s.arm is Arm.CANARY) for s in arms)
    assert all(s.shadow is not None and s.shadow.meta.version == 1 for s in arms)
    assert [registry.select("demo-ranker", u).arm for u in users[:200]] == [s.arm for s in arms[:200]]
    assert registry.select("demo-ranker", None).arm is Arm.CURRENT
    assert abs(sum(user_share("demo-ranker", u) for u in users) / len(users) - 0.5) < 0.01


async def test_rollout_commands_refuse_unknown_versions(tmp_path: Path, small_model: tuple[str, ModelMeta]) -> None:
    text, meta = small_model
    backend = DirectoryBackend(tmp_path)
    await publish(backend, text, meta)
    with pytest.raises(RegistryError, match="no version 7"):
        await promote(backend, "demo-ranker", 7)
    with pytest.raises(RegistryError, match="no previous version"):
        await rollback(backend, "demo-ranker")
    with pytest.raises(RegistryError, match="within"):
        await canary(backend, "demo-ranker", 1, share=1.5)
    assert (await backend.state("demo-ranker")).current == 1


async def test_the_bundled_demo_model_loads() -> None:
    registry = Registry(DirectoryBackend(Path(__file__).parents[2] / "edgeproxy" / "demo" / "models"))
    await registry.refresh()
    assert registry.rejected == {}
    selection = registry.select("demo-ranker", "u0001")
    assert selection.model is not None and selection.model.forest is not None
    assert selection.model.forest.n_trees <= 100


async def test_apply_survives_an_unreachable_backend(own_redis: object, small_model: tuple[str, ModelMeta]) -> None:
    """A fleet message arriving while Redis is down leaves the live model serving."""
    text, meta = small_model
    client = Redis.from_url(own_redis.url, socket_timeout=1.0)  # type: ignore[attr-defined]
    registry = Registry(RedisBackend(client, "t:"))
    await publish(registry.backend, text, meta)
    await registry.refresh()
    own_redis.stop()  # type: ignore[attr-defined]
    await registry.apply({"kind": "model-rollout", "name": "demo-ranker"})
    assert registry.apply_failures == 1 and _version(registry) == 1
    await client.aclose()


def test_rollout_commands_from_the_shell(tmp_path: Path, small_model: tuple[str, ModelMeta], capsys: pytest.CaptureFixture[str]) -> None:
    def cli(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="edgeproxy")
        register(parser.add_subparsers(required=True))
        args = parser.parse_args([*argv, "--models", str(tmp_path / "models")])
        return int(args.func(args))

    text, meta = small_model
    (tmp_path / "m.txt").write_text(text)
    (tmp_path / "m.json").write_text(meta.to_json())
    assert cli("model", "publish", str(tmp_path / "m.txt")) == 0
    assert cli("model", "publish", str(tmp_path / "m.txt")) == 0
    assert cli("model", "canary", "demo-ranker", "2", "--share", "0.25") == 0
    assert "canary=v2 (25% of users)" in capsys.readouterr().out
    assert cli("model", "shadow", "demo-ranker", "2") == 0
    assert cli("model", "promote", "demo-ranker", "2") == 0
    assert "current=v2  shadow=v2  history=v1" in capsys.readouterr().out
    assert cli("model", "rollback", "demo-ranker") == 0
    assert cli("model", "rollback", "demo-ranker") == 1
    assert "no previous version" in capsys.readouterr().err
    assert cli("model", "list") == 0
    assert "current=v1" in capsys.readouterr().out
