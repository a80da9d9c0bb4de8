"""Byte-bounded in-memory caches: S3-FIFO (the L1 policy) and LRU (the baseline it beats).

Both hold values under a byte budget given by the caller's ``size`` and share one interface,
:class:`EvictingCache`, so the benchmark's cache simulator can replay the same key trace through
either. Queues are ``OrderedDict``s (C-implemented in CPython): O(1) insert, lookup, removal by
key and FIFO pop, with no per-operation allocation on the hit path.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

EvictCallback = Callable[[K, V], None]
"""Called with (key, value) for each object the policy evicts (not for ``pop`` or ``clear``)."""


class EvictingCache(Protocol[K_contra, V]):
    """A cache bounded in bytes that evicts on its own when a ``set`` would overflow it."""

    capacity: int
    bytes_used: int
    evictions: int

    def get(self, key: K_contra) -> V | None:
        """The value under ``key`` or None; a hit counts as an access for the policy."""
        ...

    def set(self, key: K_contra, value: V, size: int) -> None:
        """Insert or replace ``key``. An object larger than the capacity is refused (and any
        older value under ``key`` dropped, so a refused update never leaves the old one behind)."""
        ...

    def pop(self, key: K_contra) -> V | None:
        """Remove ``key`` and return its value (not counted as an eviction)."""
        ...

    def clear(self) -> None:
        """Drop every object (not counted as evictions)."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...


def _check_capacity(capacity: int) -> int:
    if capacity <= 0:
        raise ValueError(f"cache capacity must be a positive number of bytes, got {capacity}")
    return capacity


class _Slot(Generic[V]):
    """One cached object: its value, declared size, S3-FIFO access frequency (0..3) and expiry
    (kept here rather than beside the value in a tuple: one object less per cached object)."""

    __slots__ = ("value", "size", "freq", "expires_at")

    def __init__(self, value: V, size: int, expires_at: float) -> None:
        self.value = value
        self.size = size
        self.freq = 0
        self.expires_at = expires_at


_MAX_FREQ = 3
"""S3-FIFO keeps a 2-bit counter: enough to tell one-hit wonders from the working set."""


class S3FIFOCache(Generic[K, V]):
    """S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23).

    New objects enter a small FIFO (``small_ratio`` of the bytes). Evicted from there, an object
    that was hit while queued moves to the main FIFO; one that was not leaves, and its key is
    remembered in a ghost FIFO. A key found in the ghost on insert goes straight to main. Main
    evicts with lazy promotion (an object with hits is reinserted with one fewer). A one-time scan
    therefore passes through the small queue without displacing the working set in main.
    Parameters follow the authors' libCacheSim: small queue 10%, move-to-main after one hit,
    ghost covering the main queue's bytes.

    An object may carry an expiry; one found expired when looked up is dropped then (no timer, no
    sweep): one never asked for again ages out through the queues like any cold object.
    """

    __slots__ = (
        "capacity", "bytes_used", "evictions", "expired", "on_evict",
        "_small", "_main", "_ghost", "_small_bytes", "_small_target", "_ghost_bytes",
    )

    def __init__(
        self,
        capacity: int,
        *,
        small_ratio: float = 0.1,
        on_evict: EvictCallback[K, V] | None = None,
    ) -> None:
        if not 0.0 < small_ratio < 1.0:
            raise ValueError(f"small_ratio must be between 0 and 1 (exclusive), got {small_ratio}")
        self.capacity = _check_capacity(capacity)
        self.bytes_used = 0
        self.evictions = 0
        self.expired = 0
        """Objects found expired when looked up, and dropped (not counted as evictions)."""
        self.on_evict = on_evict
        self._small: OrderedDict[K, _Slot[V]] = OrderedDict()
        self._main: OrderedDict[K, _Slot[V]] = OrderedDict()
        self._ghost: OrderedDict[K, int] = OrderedDict()
        self._small_bytes = 0
        self._small_target = max(1, int(capacity * small_ratio))
        self._ghost_bytes = 0

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    def __contains__(self, key: object) -> bool:
        return key in self._small or key in self._main

    def get(self, key: K, now: float = -math.inf) -> V | None:
        """The value under ``key``, or None if absent or expired at ``now``."""
        slot = self._small.get(key)
        if slot is None:
            slot = self._main.get(key)
            if slot is None:
                return None
        if now >= slot.expires_at:
            self.pop(key)
            self.expired += 1
            return None
        if slot.freq < _MAX_FREQ:
            slot.freq += 1
        return slot.value

    def set(self, key: K, value: V, size: int, expires_at: float = math.inf) -> None:
        """As ``EvictingCache.set``; ``get`` treats the object as gone from ``expires_at`` on."""
        # A replaced object keeps its place in main: a revalidated hot object is still hot.
        was_main = key in self._main
        self.pop(key)
        if size > self.capacity:
            return
        while self.bytes_used + size > self.capacity:
            self._evict()
        slot = _Slot(value, size, expires_at)
        ghost_size = self._ghost.pop(key, None)
        if ghost_size is not None:
            self._ghost_bytes -= ghost_size
        if was_main or ghost_size is not None:
            self._main[key] = slot
        else:
            self._small[key] = slot
            self._small_bytes += size
        self.bytes_used += size

    def pop(self, key: K) -> V | None:
        slot = self._small.pop(key, None)
        if slot is not None:
            self._small_bytes -= slot.size
        else:
            slot = self._main.pop(key, None)
            if slot is None:
                return None
        self.bytes_used -= slot.size
        return slot.value

    def clear(self) -> None:
        self._small.clear()
        self._main.clear()
        self._ghost.clear()
        self._small_bytes = 0
        self._ghost_bytes = 0
        self.bytes_used = 0

    def _evict(self) -> None:
        """Free at least one object's bytes (the caller loops until the new object fits)."""
        if self._small_bytes >= self._small_target or not self._main:
            self._evict_small()
        else:
            self._evict_main()

    def _evict_small(self) -> None:
        while self._small:
            key, slot = self._small.popitem(last=False)
            self._small_bytes -= slot.size
            if slot.freq > 0:
                slot.freq = 0
                self._main[key] = slot
                continue
            self._remember(key, slot.size)
            self._drop(key, slot)
            return
        self._evict_main()

    def _evict_main(self) -> None:
        while self._main:
            key, slot = self._main.popitem(last=False)
            if slot.freq > 0:
                slot.freq -= 1
                self._main[key] = slot
                continue
            self._drop(key, slot)
            return

    def _remember(self, key: K, size: int) -> None:
        """Ghost entries are keys only; they cover as many bytes as main may hold, so a key
        evicted from small is recognised if it returns within about one main-queue lifetime."""
        self._ghost[key] = size
        self._ghost_bytes += size
        while self._ghost_bytes > self.capacity - self._small_target:
            self._ghost_bytes -= self._ghost.popitem(last=False)[1]

    def _drop(self, key: K, slot: _Slot[V]) -> None:
        self.bytes_used -= slot.size
        self.evictions += 1
        if self.on_evict is not None:
            self.on_evict(key, slot.value)


class LRUCache(Generic[K, V]):
    """Byte-bounded least-recently-used cache: the baseline that a scan flushes."""

    __slots__ = ("capacity", "bytes_used", "evictions", "on_evict", "_items")

    def __init__(self, capacity: int, *, on_evict: EvictCallback[K, V] | None = None) -> None:
        self.capacity = _check_capacity(capacity)
        self.bytes_used = 0
        self.evictions = 0
        self.on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def set(self, key: K, value: V, size: int) -> None:
        self.pop(key)
        if size > self.capacity:
            return
        while self.bytes_used + size > self.capacity:
            old_key, (old_value, old_size) = self._items.popitem(last=False)
            self.bytes_used -= old_size
            self.evictions += 1
            if self.on_evict is not None:
                self.on_evict(old_key, old_value)
        self._items[key] = (value, size)
        self.bytes_used += size

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        self.bytes_used -= item[1]
        return item[0]

    def clear(self) -> None:
        self._items.clear()
        self.bytes_used = 0
