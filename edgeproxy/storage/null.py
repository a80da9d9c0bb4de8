"""The absent tier: an L2 that holds nothing, so an L1-only proxy uses the same tiered path."""

from __future__ import annotations

from collections.abc import Sequence

from edgeproxy.cache.entry import StoredObject


class NullStore:
    """Implements ``Store``; every lookup misses and every write is dropped."""

    async def get(self, key: bytes) -> StoredObject | None:
        return None

    async def put(self, key: bytes, obj: StoredObject, ttl: float) -> None:
        return None

    async def put_many(self, items: Sequence[tuple[bytes, StoredObject, float]]) -> None:
        return None

    async def delete(self, key: bytes) -> None:
        return None

    async def clear(self) -> None:
        return None

    async def close(self) -> None:
        return None
