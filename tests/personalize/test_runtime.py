"""A process's Personalizer, assembled with and without Redis, serving the bundled demo model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from edgeproxy.cache.message import RequestHead
from edgeproxy.demo.world import World
from edgeproxy.personalize.feedback import parse_feedback
from edgeproxy.personalize.model import ModelMeta
from edgeproxy.personalize.prepared import prepare
from edgeproxy.personalize.ranker import RankOutcome
from edgeproxy.personalize.registry import DirectoryBackend, Registry, publish, shadow
from edgeproxy.personalize.runtime import (
    BUNDLED_MODELS,
    PersonalizeConfig,
    open_personalizer,
)
from edgeproxy.policies.model import PersonalizeSettings

from .conftest import NOW, catalog_body

SETTINGS = PersonalizeSettings(model="demo-ranker", deadline_ms=50.0)
REQUEST = RequestHead("GET", "demo", "/api/items?category=toys", (("cookie", "uid=u0002"),))


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


async def test_without_redis_models_come_from_the_directory_and_events_go_to_a_file(tmp_path: Path, world: World) -> None:
    config = PersonalizeConfig(events_path=tmp_path / "ev.jsonl", impression_rate=1.0, seed_profiles=world.profiles)
    personalizer = await open_personalizer(config)
    prepared = prepare(catalog_body("toys"), SETTINGS)
    assert prepared is not None
    ctx = await personalizer.user_context(REQUEST, SETTINGS, NOW)
    assert ctx.profile == world.profiles.get("u0002")
    result = personalizer.rank(prepared, ctx, SETTINGS, NOW)
    assert result.outcome is RankOutcome.RANKED and result.model == "demo-ranker-v1"
    personalizer.record_click(parse_feedback(b'{"user": "u0002", "item": 5}', NOW + 3))
    assert await personalizer.flush_events() == 2
    kinds = [json.loads(line)["type"] for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert kinds == ["impression", "click"]


async def test_with_redis_the_bundled_model_and_demo_profiles_are_seeded(
    redis: Redis, redis_namespace: str, world: World
) -> None:
    config = PersonalizeConfig(redis=redis, namespace=redis_namespace, seed_profiles=world.profiles)
    personalizer = await open_personalizer(config)
    assert personalizer.registry.select("demo-ranker", "u0002").model is not None
    assert await redis.exists(f"{redis_namespace}models:demo-ranker:v1:text") == 1
    ctx = await personalizer.user_context(REQUEST, SETTINGS, NOW)
    assert ctx.profile == world.profiles.get("u0002")
    personalizer.record_click(parse_feedback(b'{"user": "u0002", "item": 5}', NOW))
    assert await personalizer.flush_events() == 1
    assert await redis.xlen(f"{redis_namespace}edgeproxy:events") == 1
    again = await open_personalizer(config)  # a second process: nothing re-published
    assert [m.version for m in await again.registry.backend.versions("demo-ranker")] == [1]


async def test_shadow_agreement_is_recorded(tmp_path: Path, small_model: tuple[str, ModelMeta], world: World) -> None:
    backend = DirectoryBackend(tmp_path)
    bundled_text, bundled_meta = await DirectoryBackend(BUNDLED_MODELS).read("demo-ranker", 1)
    await publish(backend, bundled_text, bundled_meta)
    text, meta = small_model
    await publish(backend, text, meta)
    await shadow(backend, "demo-ranker", 2)
    personalizer = await open_personalizer(PersonalizeConfig(models_dir=tmp_path, seed_profiles=world.profiles))
    assert isinstance(personalizer.registry, Registry)
    prepared = prepare(catalog_body("toys"), SETTINGS)
    assert prepared is not None
    for uid in list(world.profiles)[:5]:
        req = RequestHead("GET", "demo", "/api/items", (("x-user-id", uid),))
        result = personalizer.rank(prepared, await personalizer.user_context(req, SETTINGS, NOW), SETTINGS, NOW)
        assert result.model == "demo-ranker-v1"
    stats = personalizer.shadow_stats
    assert stats["compared"] == 5
    assert 0.0 <= stats["top_k_overlap_sum"] / 5 <= 1.0 and -1.0 <= stats["kendall_tau_sum"] / 5 <= 1.0
