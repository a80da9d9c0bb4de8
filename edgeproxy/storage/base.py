"""The narrow storage interface every tier implements.

Cache rules do not live here: a store keeps bytes-addressed objects for a TTL and forgets them
when asked. Purges by URL, prefix or tag are bans evaluated at lookup (see ``edgeproxy.cache.bans``),
so stores need no secondary indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from edgeproxy.cache.entry import StoredObject

if TYPE_CHECKING:
    from edgeproxy.storage.locks import Lease


class StoreUnavailable(RuntimeError):
    """A backend could not complete an operation the caller must know about (``clear``, a
    purge-all): map it to 503 and retry later. ``get``/``put``/``delete`` never raise this."""


class Store(Protocol):
    """Key/value store for cache objects. Implementations never raise on a backend failure
    during ``get``/``put``/``delete``: they report a miss or drop the write and count it."""

    async def get(self, key: bytes) -> StoredObject | None:
        """The object stored under ``key``, or None (also on timeout or backend error)."""
        ...

    async def put(self, key: bytes, obj: StoredObject, ttl: float) -> None:
        """Store ``obj``; the backend may drop it after ``ttl`` seconds (freshness + stale windows)."""
        ...

    async def put_many(self, items: Sequence[tuple[bytes, StoredObject, float]], *, lease: Lease | None = None) -> None:
        """``put`` each (key, object, ttl) together, e.g. a VaryIndex and its first variant: one
        round trip to a remote backend instead of one per object. ``lease``: the fill lock held
        for these objects, released after them in that same round trip by a backend that holds
        the lock too (Redis); any other leaves it to its holder."""
        ...

    async def delete(self, key: bytes) -> None:
        """Forget ``key`` if present."""
        ...

    async def clear(self) -> None:
        """Forget everything this store holds (purge all); raises ``StoreUnavailable`` when a
        remote backend could not be reached, since a silently failed purge-all is worse than a 503."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
