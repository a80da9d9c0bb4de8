"""L1 memory in front of a shared L2: look up near first, promote what the far tier had."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edgeproxy.cache.entry import CacheEntry, StoredObject
from edgeproxy.cache.spec import storage_ttl
from edgeproxy.storage.base import Store
from edgeproxy.storage.memory import MemoryStore

if TYPE_CHECKING:
    from edgeproxy.storage.locks import Lease  # a Redis fill lock: only its type is needed here


class Tier(enum.Enum):
    """Where a lookup was answered; rendered into Cache-Status detail and metrics labels."""

    L1 = "l1"
    L2 = "l2"
    NONE = "none"


def remaining_ttl(obj: StoredObject, now: float) -> float:
    """Seconds a promoted object stays in L1: what ``spec.storage_ttl`` gives it now, the same
    rule that set its L2 lifetime (its age on arrival counts; an object with a validator is kept
    for revalidation). A VaryIndex lives as long as the longest-lived variant it points at."""
    if isinstance(obj, CacheEntry):
        return storage_ttl(obj, now)
    return obj.stored_at + obj.fresh_for - now


Promote = Callable[[StoredObject], StoredObject]
"""Hook run on an L2 hit before the object enters L1, e.g. to attach per-process ``prepared``
data (which never travels through L2)."""


class TieredStore:
    """Implements ``Store`` over an L1 ``MemoryStore`` and any L2 ``Store``; without an L2 (one
    proxy, no fleet) a lookup L1 cannot answer is a miss at once, with no far tier to ask."""

    def __init__(
        self,
        l1: MemoryStore,
        l2: Store | None = None,
        *,
        promote: Promote | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self._promote = promote
        self._clock = clock
        self._inflight: dict[bytes, asyncio.Future[StoredObject | None]] = {}
        """One L2 read per key at a time: a burst of misses for a hot key makes one Redis GET
        (and one connection), not one per request."""

    async def get_with_tier(self, key: bytes, *, joined: bool = True) -> tuple[StoredObject | None, Tier]:
        """``joined=False`` asks L2 anew rather than sharing a read already in flight, which may
        have been sent before a write the caller knows has landed (a peer's fill, announced by the
        release of its fill lock)."""
        obj = self.l1.get_nowait(key)
        if obj is not None:
            return obj, Tier.L1
        if self.l2 is None:
            return None, Tier.NONE
        pending = self._inflight.get(key) if joined else None
        if pending is not None:
            obj = await asyncio.shield(pending)
            return (obj, Tier.L2) if obj is not None else (None, Tier.NONE)
        future: asyncio.Future[StoredObject | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            obj = await self.l2.get(key)
        finally:
            # obj is still None (the L1 miss) if the read was cancelled: waiters then miss too.
            if self._inflight.get(key) is future:
                del self._inflight[key]
            future.set_result(obj)
        if obj is None:
            return None, Tier.NONE
        if self._promote is not None:
            obj = self._promote(obj)
        self.l1.put_nowait(key, obj, remaining_ttl(obj, self._clock()))
        return obj, Tier.L2

    async def get(self, key: bytes) -> StoredObject | None:
        obj, _ = await self.get_with_tier(key)
        return obj

    async def put(self, key: bytes, obj: StoredObject, ttl: float) -> None:
        self.l1.put_nowait(key, obj, ttl)
        if self.l2 is not None:
            await self.l2.put(key, obj, ttl)

    async def put_many(self, items: Sequence[tuple[bytes, StoredObject, float]], *, lease: Lease | None = None) -> None:
        for key, obj, ttl in items:
            self.l1.put_nowait(key, obj, ttl)
        if self.l2 is not None:
            await self.l2.put_many(items, lease=lease)

    async def delete(self, key: bytes) -> None:
        self.l1.delete_nowait(key)
        if self.l2 is not None:
            await self.l2.delete(key)

    async def clear(self) -> None:
        """Clear L1 first: even if L2 is unreachable (``StoreUnavailable``), this process stops
        serving what it held."""
        self.l1.clear_nowait()
        if self.l2 is not None:
            await self.l2.clear()

    async def close(self) -> None:
        await self.l1.close()
        if self.l2 is not None:
            await self.l2.close()
