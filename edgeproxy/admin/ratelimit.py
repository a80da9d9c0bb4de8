"""Per-client token buckets for the admin API, bounded in memory, with time passed in."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: float = 5.0
    """Sustained rate each client address may call at."""
    burst: int = 20
    """Calls a quiet client may make at once."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per key (client address). The least recently seen keys are forgotten beyond
    ``max_clients`` so a spray of source addresses cannot grow memory; a forgotten client simply
    starts again with a full bucket."""

    def __init__(self, limit: RateLimit, max_clients: int = 4096) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str, now: float) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.limit.per_second


def retry_after_header(wait: float) -> str:
    """RFC 9110 §10.2.3 Retry-After is whole seconds: round up, never 0."""
    return str(max(1, math.ceil(wait)))
