"""Assemble a ``Personalizer`` for one proxy process, with or without Redis.

With Redis: models, profiles (``user:<id>``) and the event stream live there and are shared by
the fleet. Without: models come from a directory, profiles from memory, events go to a JSONL file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from edgeproxy.personalize.events import (
    EventBuffer,
    EventSink,
    JsonlSink,
    RedisStreamSink,
)
from edgeproxy.personalize.features import UserProfile
from edgeproxy.personalize.profiles import (
    MemoryProfileStore,
    ProfileCache,
    ProfileStore,
    RedisProfileStore,
)
from edgeproxy.personalize.ranker import Personalizer
from edgeproxy.personalize.registry import (
    DirectoryBackend,
    RedisBackend,
    Registry,
    RegistryBackend,
    publish,
)

BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "demo" / "models"
"""The shipped ``demo-ranker``: the default models directory."""


@dataclass(frozen=True, slots=True)
class PersonalizeConfig:
    models_dir: Path | None = None
    """Models directory. With Redis and no directory, models are read from Redis."""
    redis: Redis | None = None
    namespace: str = ""
    """Prefix of every Redis key this package writes (models, profiles, events)."""
    events_path: Path = Path("edgeproxy-events.jsonl")
    """Event log without Redis."""
    impression_rate: float = 0.01
    profile_timeout: float = 0.005
    profile_ttl: float = 30.0
    seed_models: Path | None = BUNDLED_MODELS
    """With Redis: publish this directory's models into Redis when Redis holds none of that name."""
    seed_profiles: Mapping[str, UserProfile] = field(default_factory=dict)
    """Profiles to serve (no Redis) or to write to Redis where absent (demo users)."""


async def _seed_models(backend: RedisBackend, source: Path) -> None:
    directory = DirectoryBackend(source)
    for name in await directory.names():
        if await backend.versions(name):
            continue
        state = await directory.state(name)
        if state.current is not None:
            text, meta = await directory.read(name, state.current)
            await publish(backend, text, meta)


async def open_personalizer(config: PersonalizeConfig) -> Personalizer:
    """Load (and child-validate) the models, then return a ready Personalizer.

    The caller owns ``config.redis`` and should run ``personalizer.flush_forever()`` as a task,
    and call ``personalizer.registry.apply(message)`` for fleet-bus model messages.
    """
    redis = config.redis
    backend: RegistryBackend
    store: ProfileStore
    sink: EventSink
    if redis is None:
        backend = DirectoryBackend(config.models_dir or BUNDLED_MODELS)
        store = MemoryProfileStore(config.seed_profiles)
        sink = JsonlSink(config.events_path)
    else:
        if config.models_dir is not None:
            backend = DirectoryBackend(config.models_dir)
        else:
            backend = RedisBackend(redis, config.namespace)
            if config.seed_models is not None:
                await _seed_models(backend, config.seed_models)
        profiles = RedisProfileStore(redis, config.namespace)
        if config.seed_profiles:
            async with redis.pipeline(transaction=False) as pipe:
                for user_id, profile in config.seed_profiles.items():
                    pipe.set(profiles.key(user_id), profile.to_json(), nx=True)
                await pipe.execute()
        store = profiles
        sink = RedisStreamSink(redis, config.namespace + "edgeproxy:events")
    registry = Registry(backend)
    await registry.refresh()
    return Personalizer(
        registry,
        ProfileCache(store, timeout=config.profile_timeout, ttl=config.profile_ttl),
        EventBuffer(sink),
        impression_rate=config.impression_rate,
    )
