"""Request collapsing: concurrent misses for one key make one origin request.

The first request for a key leads and fetches; the others wait on its outcome. An uncacheable
result releases the waiters at once (each then goes to the origin itself), as Varnish does with
hit-for-miss objects, so an uncacheable hot URL never queues its clients one behind another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edgeproxy.cache.entry import CacheEntry
from edgeproxy.proxy.upstream import UpstreamError


@dataclass(frozen=True, slots=True)
class Filled:
    entry: CacheEntry


@dataclass(frozen=True, slots=True)
class Uncacheable:
    """The leader's response cannot be shared: waiters fetch on their own."""


@dataclass(frozen=True, slots=True)
class Failed:
    error: UpstreamError


FillOutcome = Filled | Uncacheable | Failed


class Lead:
    """Handle of the request that fetches for everyone; resolving it wakes the waiters."""

    def __init__(self, future: asyncio.Future[FillOutcome]) -> None:
        self._future = future

    def resolve(self, outcome: FillOutcome) -> None:
        if not self._future.done():
            self._future.set_result(outcome)


class Collapser:
    def __init__(self) -> None:
        self._inflight: dict[bytes, asyncio.Future[FillOutcome]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    def in_flight(self, key: bytes) -> asyncio.Future[FillOutcome] | None:
        """The pending fill for ``key``, if a leader is fetching it now."""
        return self._inflight.get(key)

    @contextmanager
    def lead(self, key: bytes) -> Iterator[Lead]:
        """Become the leader for ``key``; waiters are released with Uncacheable if the leader
        exits without resolving (an error path), so nobody waits forever."""
        future: asyncio.Future[FillOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            yield Lead(future)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            if not future.done():
                future.set_result(Uncacheable())
