"""User profiles: Redis (``user:<id>``) or in-process, behind a short timeout and a brief cache."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from enum import Enum
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from edgeproxy.personalize.features import UserProfile


class ProfileStore(Protocol):
    async def get(self, user_id: str) -> UserProfile | None:
        """The stored profile, or None for a user we know nothing about."""
        ...


class MemoryProfileStore:
    """Profiles in a dict: the demo without Redis, and tests."""

    def __init__(self, profiles: Mapping[str, UserProfile] | None = None) -> None:
        self.profiles = dict(profiles or {})

    async def get(self, user_id: str) -> UserProfile | None:
        return self.profiles.get(user_id)


class RedisProfileStore:
    """Profiles as JSON strings under ``<namespace>user:<id>``."""

    def __init__(self, redis: Redis, namespace: str = "") -> None:
        self.redis = redis
        self.namespace = namespace

    def key(self, user_id: str) -> str:
        return f"{self.namespace}user:{user_id}"

    async def get(self, user_id: str) -> UserProfile | None:
        raw = await self.redis.get(self.key(user_id))
        return None if raw is None else UserProfile.from_json(raw)

    async def put(self, user_id: str, profile: UserProfile) -> None:
        await self.redis.set(self.key(user_id), profile.to_json())


class Lookup(Enum):
    """How a profile lookup ended; the value is the metrics label."""

    CACHED = "cached"
    FOUND = "found"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class ProfileCache:
    """Bounds profile lookups in time (timeout → cold start) and caches answers briefly in process.

    Unknown users are cached too, so a flood of new ids costs one store read each per ``ttl``.
    """

    def __init__(self, store: ProfileStore, timeout: float = 0.005, ttl: float = 30.0, max_entries: int = 50_000) -> None:
        self.store = store
        self.timeout = timeout
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, UserProfile | None]] = OrderedDict()

    async def get(self, user_id: str, now: float) -> tuple[UserProfile | None, Lookup]:
        hit = self._entries.get(user_id)
        if hit is not None and now - hit[0] < self.ttl:
            self._entries.move_to_end(user_id)
            return hit[1], Lookup.CACHED
        try:
            profile = await asyncio.wait_for(self.store.get(user_id), self.timeout)
        except TimeoutError:
            return None, Lookup.TIMEOUT
        except (RedisError, OSError, ValueError):
            return None, Lookup.ERROR
        self._entries[user_id] = (now, profile)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return profile, Lookup.FOUND if profile is not None else Lookup.UNKNOWN
