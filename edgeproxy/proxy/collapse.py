"""Request collapsing: concurrent misses for one key make one origin request.

The first request for a key leads and fetches; the others wait on its outcome. An uncacheable
result releases the waiters at once (each then goes to the origin itself), as Varnish does with
hit-for-miss objects, so an uncacheable hot URL never queues its clients one behind another.
"""

from __future__ import annotations

import asyncio
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
    """Handle of the request that fetches for everyone; resolving it wakes the waiters.

    A context manager (``Collapser.lead``): leaving it unresolved (an error path) releases the
    waiters with Uncacheable, so nobody waits forever. A class rather than a generator-based
    context manager: every cacheable miss enters one.
    """

    __slots__ = ("_inflight", "_key", "_future")

    def __init__(self, inflight: dict[bytes, asyncio.Future[FillOutcome]], key: bytes) -> None:
        self._inflight = inflight
        self._key = key
        self._future: asyncio.Future[FillOutcome] = asyncio.get_running_loop().create_future()
        inflight[key] = self._future

    def __enter__(self) -> Lead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._inflight.get(self._key) is self._future:
            del self._inflight[self._key]
        self.resolve(Uncacheable())

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

    def lead(self, key: bytes) -> Lead:
        """Become the leader for ``key`` (``with collapser.lead(key) as lead``)."""
        return Lead(self._inflight, key)
