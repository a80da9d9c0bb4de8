"""Hit-for-miss memory (Varnish's ``beresp.uncacheable``): keys recently seen uncacheable skip
request collapsing, so their clients are not serialized behind one another. The reason is kept:
a key too large to store is passed through as the client asked (Varnish's hit-for-pass)."""

from __future__ import annotations

from collections import OrderedDict

from edgeproxy.cache.phases import NoCacheReason


class HitForMiss:
    """Bounded map key -> (expiry, reason); the oldest marks are dropped first when full."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._marks: OrderedDict[bytes, tuple[float, NoCacheReason]] = OrderedDict()
        self._capacity = capacity

    def remember(self, key: bytes, until: float, reason: NoCacheReason) -> None:
        self._marks[key] = (until, reason)
        self._marks.move_to_end(key)
        while len(self._marks) > self._capacity:
            self._marks.popitem(last=False)

    def forget(self, key: bytes) -> None:
        self._marks.pop(key, None)

    def marked(self, key: bytes, now: float) -> NoCacheReason | None:
        """Why ``key`` was last seen uncacheable, while the mark lasts; None otherwise."""
        mark = self._marks.get(key)
        if mark is None:
            return None
        if mark[0] <= now:
            del self._marks[key]
            return None
        return mark[1]
