"""The loop end to end on the demo world: logs → join → train → evaluate → publish → serve."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from edgeproxy.demo.world import World, build_model
from edgeproxy.personalize.cli import register
from edgeproxy.personalize.events import Click, JsonlSink, RedisStreamSink
from edgeproxy.personalize.features import FEATURE_NAMES, UserProfile
from edgeproxy.personalize.profiles import Lookup, ProfileCache, RedisProfileStore
from edgeproxy.personalize.registry import DirectoryBackend, Registry
from edgeproxy.personalize.train import Group, join, ndcg


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edgeproxy")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_ndcg_reference_values() -> None:
    assert ndcg(np.array([3.0, 2.0, 1.0]), np.array([1.0, 0.0, 0.0])) == 1.0
    assert ndcg(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(0.5)
    assert ndcg(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 0.0


def test_clicks_join_by_impression_id_or_by_user_item_and_time() -> None:
    impression = {
        "type": "impression", "at": 100.0, "impression_id": "i1", "user_id": "u1", "model": "m",
        "items": ["7", "8", "9"], "features": [[1.0, None]] * 3, "feature_names": ["a", "b"],
    }
    events = [
        impression,
        Click(at=110.0, user_id="u1", item_id="9", impression_id="i1").to_event(),
        Click(at=120.0, user_id="u1", item_id="7").to_event(),
        Click(at=120.0 + 7200, user_id="u1", item_id="8").to_event(),  # too late to join
        Click(at=120.0, user_id="u2", item_id="8").to_event(),  # another user
    ]
    (group,) = join(events, ["a", "b"])
    assert isinstance(group, Group) and group.y.tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(group.X[0, 1])
    assert join(events, ["other"]) == []


def test_learned_model_beats_popularity_and_nears_the_oracle(world: World) -> None:
    report = build_model(world, sessions=1500, rounds=25, progress=False)
    scores = report.ndcg
    assert scores["random"] < scores["popularity"] < scores["candidate"] <= scores["oracle"] + 0.02
    assert scores["candidate"] >= 0.9 * scores["oracle"]


def test_train_command_publishes_only_a_better_model(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "events.jsonl"
    models = tmp_path / "models"

    asyncio.run(JsonlSink(log).write(list(world.sessions(1500, seed=9))))
    assert _cli("train", "--models", str(models), "--events", str(log), "--rounds", "25") == 0
    out = capsys.readouterr().out
    assert "NDCG@10" in out and "published and promoted demo-ranker-v1" in out
    # Same data again: the candidate is no better than the current model, so nothing is published.
    assert _cli("train", "--models", str(models), "--events", str(log), "--rounds", "25") == 0
    assert "decision: keep-current" in capsys.readouterr().out
    assert _cli("model", "list", "--models", str(models)) == 0
    assert "current=v1" in capsys.readouterr().out
    registry = Registry(DirectoryBackend(models))
    asyncio.run(registry.refresh())
    selection = registry.select("demo-ranker", "u0001")
    assert selection.model is not None and selection.model.meta.features == FEATURE_NAMES


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


async def test_events_round_trip_through_a_redis_stream(redis: Redis, redis_namespace: str, world: World) -> None:
    sink = RedisStreamSink(redis, stream=f"{redis_namespace}:events")
    events = list(world.sessions(30))
    await sink.write(events)
    assert await sink.read_all(batch=7) == json.loads(json.dumps(events))


async def test_profiles_come_from_redis_and_are_cached_briefly(redis: Redis, redis_namespace: str) -> None:
    store = RedisProfileStore(redis, namespace=redis_namespace)
    profile = UserProfile(affinities=(("books", 1.0),), price_log=3.0, recency=0.2, activity=4)
    await store.put("u0001", profile)
    cache = ProfileCache(store, timeout=1.0, ttl=30.0)
    assert await cache.get("u0001", now=0.0) == (profile, Lookup.FOUND)
    await redis.delete(store.key("u0001"))
    assert await cache.get("u0001", now=10.0) == (profile, Lookup.CACHED)
    assert await cache.get("u0001", now=31.0) == (None, Lookup.UNKNOWN)
    await redis.set(store.key("u0002"), b"{broken")
    assert await cache.get("u0002", now=0.0) == (None, Lookup.ERROR)


class _SlowStore:
    """A real store that answers after a delay, standing in for an overloaded Redis."""

    async def get(self, user_id: str) -> UserProfile | None:

        await asyncio.sleep(0.5)
        return UserProfile()


async def test_a_slow_profile_store_means_cold_start_not_a_slow_request() -> None:
    cache = ProfileCache(_SlowStore(), timeout=0.01)
    assert await cache.get("u0001", now=0.0) == (None, Lookup.TIMEOUT)
