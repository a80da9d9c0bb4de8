"""Ranking a prepared list per request: different users, different orders; never a failed request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeproxy.cache.message import RequestHead
from edgeproxy.demo.world import World
from edgeproxy.personalize.events import EventBuffer, JsonlSink
from edgeproxy.personalize.features import feature_matrix
from edgeproxy.personalize.prepared import prepare
from edgeproxy.personalize.profiles import MemoryProfileStore, ProfileCache
from edgeproxy.personalize.ranker import Personalizer, RankOutcome
from edgeproxy.personalize.registry import Arm, Registry
from edgeproxy.policies.model import PersonalizeSettings

from .conftest import NOW, catalog_body


def _personalizer(registry: Registry, world: World, **kwargs: object) -> Personalizer:
    return Personalizer(registry, ProfileCache(MemoryProfileStore(world.profiles)), **kwargs)  # type: ignore[arg-type]


def _request(uid: str | None = None, **headers: str) -> RequestHead:
    fields = tuple(headers.items()) + ((("cookie", f"uid={uid}"),) if uid else ())
    return RequestHead("GET", "demo", "/api/items?category=books", fields)


def _ids(body: bytes) -> list[int]:
    return [it["id"] for it in json.loads(body)["items"]]


async def test_two_users_get_different_orders_of_the_same_prepared_object(
    registry: Registry, world: World, settings: PersonalizeSettings
) -> None:
    personalizer = _personalizer(registry, world)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    users = [u for u in world.users if u in world.profiles][:2]
    orders = []
    for uid in users:
        ctx = await personalizer.user_context(_request(uid), settings, NOW)
        assert ctx.profile == world.profiles[uid]
        result = personalizer.rank(prepared, ctx, settings, NOW)
        assert result.outcome is RankOutcome.RANKED and result.model == "demo-ranker-v1" and result.arm is Arm.CURRENT
        assert sorted(_ids(result.body)) == sorted(_ids(prepared.base))
        orders.append(_ids(result.body))
    assert orders[0] != orders[1]
    assert personalizer.counters["outcome.ranked"] == 2


async def test_order_follows_lightgbm_scores(registry: Registry, world: World, settings: PersonalizeSettings) -> None:
    personalizer = _personalizer(registry, world)
    prepared = prepare(catalog_body("games"), settings)
    assert prepared is not None
    ctx = await personalizer.user_context(_request(next(iter(world.profiles)), **{"user-agent": "iPhone Mobile"}), settings, NOW)
    model = personalizer.registry.live["demo-ranker"].current
    assert model is not None and model.forest is not None
    expected = model.booster.predict(feature_matrix(prepared.rows, ctx, NOW, model.meta.features))
    np.testing.assert_allclose(model.score(prepared.rows, ctx, NOW, prepared.memo), expected, atol=1e-6)
    ranked = _ids(personalizer.rank(prepared, ctx, settings, NOW).body)
    base = _ids(prepared.base)
    assert ranked == [base[i] for i in np.argsort(-expected, kind="stable")]


async def test_anonymous_users_are_ranked_with_cold_start_features(
    registry: Registry, world: World, settings: PersonalizeSettings
) -> None:
    personalizer = _personalizer(registry, world)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    ctx = await personalizer.user_context(_request(None, **{"x-country": "de"}), settings, NOW)
    assert ctx.user_id is None and ctx.profile is None and ctx.country == "DE"
    assert personalizer.rank(prepared, ctx, settings, NOW).outcome is RankOutcome.RANKED
    header_ctx = await personalizer.user_context(_request(None, **{"x-user-id": "nobody-known"}), settings, NOW)
    assert header_ctx.user_id == "nobody-known" and header_ctx.profile is None
    assert personalizer.counters["users.anonymous"] == 1 and personalizer.counters["profile.unknown"] == 1


@pytest.mark.parametrize("deadline_ms", [0.0, -1.0])
async def test_no_time_left_serves_the_base_body(registry: Registry, world: World, deadline_ms: float) -> None:
    settings = PersonalizeSettings(model="demo-ranker", deadline_ms=deadline_ms)
    personalizer = _personalizer(registry, world)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    result = personalizer.rank(prepared, await personalizer.user_context(_request("u0001"), settings, NOW), settings, NOW)
    assert result.outcome is RankOutcome.FALLBACK_DEADLINE and result.body is prepared.base
    assert personalizer.counters["outcome.deadline"] == 1


async def test_a_deadline_passed_during_scoring_serves_the_base_body(registry: Registry, world: World) -> None:
    """A clock that jumps 1 s per reading makes any scoring overrun a 2 ms deadline."""
    ticks = iter(range(1000))
    personalizer = _personalizer(registry, world, clock=lambda: float(next(ticks)))
    settings = PersonalizeSettings(model="demo-ranker", deadline_ms=2.0)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    result = personalizer.rank(prepared, await personalizer.user_context(_request("u0001"), settings, NOW), settings, NOW)
    assert result.outcome is RankOutcome.FALLBACK_DEADLINE and result.body == prepared.base


async def test_missing_model_and_scoring_errors_serve_the_base_body(
    registry: Registry, world: World, settings: PersonalizeSettings
) -> None:
    personalizer = _personalizer(registry, world)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    ctx = await personalizer.user_context(_request("u0001"), settings, NOW)
    other = PersonalizeSettings(model="no-such-model")
    assert personalizer.rank(prepared, ctx, other, NOW).outcome is RankOutcome.FALLBACK_NO_MODEL
    broken = prepare(catalog_body(), settings)
    assert broken is not None
    object.__setattr__(broken, "rows", broken.rows[:, :2])  # item matrix missing columns: scoring raises
    result = personalizer.rank(broken, ctx, settings, NOW)
    assert result.outcome is RankOutcome.FALLBACK_ERROR and result.body is broken.base


async def test_sampled_impressions_reach_the_sink(
    registry: Registry, world: World, settings: PersonalizeSettings, tmp_path: Path
) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl")
    personalizer = _personalizer(registry, world, events=EventBuffer(sink), impression_rate=1.0, seed=1)
    prepared = prepare(catalog_body(), settings)
    assert prepared is not None
    result = personalizer.rank(prepared, await personalizer.user_context(_request("u0003"), settings, NOW), settings, NOW)
    assert result.impression_id is not None
    assert await personalizer.flush_events() == 1
    (event,) = await sink.read_all()
    assert event["impression_id"] == result.impression_id and event["user_id"] == "u0003"
    assert event["items"] == [str(i) for i in _ids(result.body)[:20]]
    assert len(event["features"]) == 20 and len(event["features"][0]) == len(event["feature_names"])
