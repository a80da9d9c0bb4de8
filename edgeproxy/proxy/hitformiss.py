"""Hit-for-miss memory (Varnish's ``beresp.uncacheable``): keys recently seen uncacheable skip
request collapsing, so their clients are not serialized behind one another."""

from __future__ import annotations

from collections import OrderedDict


class HitForMiss:
    """Bounded map key -> expiry; the oldest marks are dropped first when full."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._until: OrderedDict[bytes, float] = OrderedDict()
        self._capacity = capacity

    def remember(self, key: bytes, until: float) -> None:
        self._until[key] = until
        self._until.move_to_end(key)
        while len(self._until) > self._capacity:
            self._until.popitem(last=False)

    def forget(self, key: bytes) -> None:
        self._until.pop(key, None)

    def active(self, key: bytes, now: float) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= now:
            del self._until[key]
            return False
        return True
