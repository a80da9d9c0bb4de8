"""Live, bounded, in-process request statistics for ``/stats`` and the status page.

Prometheus answers "how many, ever"; this answers "what is happening right now" without a
Prometheus server: requests/s and hit ratio over a sliding window, recent latency percentiles,
the hottest keys, origin health and the last purges. Pure: every method takes ``now``; memory is
bounded whatever the traffic. One instance per worker (see the report on fleet-wide views).
"""

from __future__ import annotations

import enum
import heapq
import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HIT_PHASES = frozenset({"hit", "stale", "stale-updating", "revalidated"})
"""Phases answered with a stored body (a revalidated 304 still served the cached copy)."""
PASS_PHASES = frozenset({"pass", "bypass"})
"""Phases that never consulted the cache; left out of the hit ratio's denominator."""


class OriginHealth(enum.Enum):
    """An origin's state as seen from this worker's recent fetches."""

    UP = "up"
    DEGRADED = "degraded"
    """Some recent fetches failed."""
    DOWN = "down"
    """The last ``down_after`` fetches all failed."""
    UNKNOWN = "unknown"
    """No fetch yet."""


class OriginOutcome(enum.Enum):
    OK = "ok"
    ERROR = "error"


class SecondRing:
    """Per-second counters over the last ``window`` seconds, O(window) memory."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._second = [-1] * window
        self._count = [0] * window

    def add(self, now: float, n: int = 1) -> None:
        second = int(now)
        slot = second % self.window
        if self._second[slot] != second:
            self._second[slot] = second
            self._count[slot] = 0
        self._count[slot] += n

    def total(self, now: float) -> int:
        """Sum of the counts whose second lies in ``(now - window, now]``."""
        newest = int(now)
        oldest = newest - self.window + 1
        return sum(c for s, c in zip(self._second, self._count, strict=True) if oldest <= s <= newest)


class SpaceSaving:
    """Top-k heavy hitters in O(capacity) memory (Metwally et al., 2005, "space-saving").

    A new key arriving when the table is full replaces the smallest counter and inherits its count
    as ``error``, so a reported count over-estimates by at most that error and any key with true
    frequency above total/capacity is guaranteed to be in the table. The smallest counter comes
    from a heap with one entry per key, corrected lazily (a count that grew since it was pushed is
    pushed again when it surfaces): O(log capacity) per new key, where a scan was O(capacity).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._counts: dict[str, list[int]] = {}
        self._heap: list[tuple[int, str]] = []

    def add(self, key: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``key`` (the same as ``n`` single adds in a row)."""
        slot = self._counts.get(key)
        if slot is not None:
            slot[0] += n
            return
        floor = self._evict_smallest() if len(self._counts) >= self.capacity else 0
        self._counts[key] = [floor + n, floor]
        heapq.heappush(self._heap, (floor + n, key))

    def _evict_smallest(self) -> int:
        """Remove the key with the smallest count and return that count."""
        heap = self._heap
        while True:
            pushed, key = heap[0]
            count = self._counts[key][0]
            if count == pushed:
                heapq.heappop(heap)
                del self._counts[key]
                return count
            heapq.heapreplace(heap, (count, key))

    def top(self, n: int) -> list[tuple[str, int, int]]:
        """The ``n`` largest as ``(key, count, error)``, largest first."""
        ranked = sorted(self._counts.items(), key=lambda kv: kv[1][0], reverse=True)[:n]
        return [(k, c, e) for k, (c, e) in ranked]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class _OriginState:
    window: int
    requests: SecondRing = field(init=False)
    errors: SecondRing = field(init=False)
    consecutive_errors: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    last_ok_at: float | None = None

    def __post_init__(self) -> None:
        self.requests = SecondRing(self.window)
        self.errors = SecondRing(self.window)


@dataclass(frozen=True, slots=True)
class PurgeNote:
    """One line of the status page's "recent purges" list."""

    at: float
    client: str
    summary: str
    outcome: str


class LiveStats:
    """Sliding-window request statistics; feed it from the request path, read it from ``/stats``."""

    def __init__(
        self,
        *,
        window: int = 60,
        latency_samples: int = 4096,
        top_keys: int = 64,
        recent_purges: int = 20,
        down_after: int = 3,
    ) -> None:
        self.window = window
        self.down_after = down_after
        self._started: float | None = None
        self._requests = SecondRing(window)
        self._lookups = SecondRing(window)
        self._hits = SecondRing(window)
        self._latency: deque[tuple[float, float]] = deque(maxlen=latency_samples)
        self._keys = SpaceSaving(top_keys)
        self._origins: dict[str, _OriginState] = {}
        self._purges: deque[PurgeNote] = deque(maxlen=recent_purges)
        self.phase_totals: dict[str, int] = {}

    def record_request(self, now: float, phase: str, seconds: float, key: str | None = None) -> None:
        """One finished client request: its cache phase, duration and (if cacheable) its key."""
        self.record_requests(now, [(phase, seconds, key)])

    def record_requests(self, now: float, batch: Sequence[tuple[str, float, str | None]]) -> None:
        """Requests that finished up to ``now``, as (phase, seconds, key or None), counted per
        phase and key first so that a batch costs a few updates, not one per request."""
        if not batch:
            return
        if self._started is None:
            self._started = now
        phases = Counter([phase for phase, _, _ in batch])
        self._requests.add(now, len(batch))
        for phase, n in phases.items():
            if phase not in PASS_PHASES:
                self._lookups.add(now, n)
                if phase in HIT_PHASES:
                    self._hits.add(now, n)
            self.phase_totals[phase] = self.phase_totals.get(phase, 0) + n
        self._latency.extend([(now, seconds) for _, seconds, _ in batch])
        for key, n in Counter([key for _, _, key in batch if key is not None]).items():
            self._keys.add(key, n)

    def record_origin(self, now: float, origin: str, outcome: OriginOutcome, error: str = "") -> None:
        """One upstream fetch and whether it failed (``error`` says how, for the status page)."""
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _OriginState(self.window)
        state.requests.add(now)
        if outcome is OriginOutcome.OK:
            state.consecutive_errors = 0
            state.last_ok_at = now
            return
        state.errors.add(now)
        state.consecutive_errors += 1
        state.last_error = error
        state.last_error_at = now

    def record_purge(self, now: float, client: str, summary: str, outcome: str) -> None:
        self._purges.append(PurgeNote(now, client, summary, outcome))

    def origin_health(self, origin: str, now: float) -> OriginHealth:
        state = self._origins.get(origin)
        if state is None:
            return OriginHealth.UNKNOWN
        if state.consecutive_errors >= self.down_after:
            return OriginHealth.DOWN
        if state.errors.total(now) > 0:
            return OriginHealth.DEGRADED
        return OriginHealth.UP

    def snapshot(self, now: float, top: int = 10) -> dict[str, Any]:
        """JSON-ready view of this process alone; the schema is documented in ``edgeproxy.admin.control``."""
        return self.export(now).snapshot(top)

    def export(self, now: float) -> StatsExport:
        """The window's raw, mergeable state: what another worker needs to build a fleet view."""
        return StatsExport(
            at=now,
            window=self.window,
            requests=self._requests.total(now),
            rate=self._requests.total(now) / self._span(now),
            lookups=self._lookups.total(now),
            hits=self._hits.total(now),
            latencies=tuple(s for t, s in self._latency if t > now - self.window),
            phases=dict(self.phase_totals),
            top_keys=tuple(self._keys.top(self._keys.capacity)),
            origins=tuple(
                OriginView(name, self.origin_health(name, now), st.requests.total(now), st.errors.total(now),
                           st.last_error, st.last_error_at)
                for name, st in sorted(self._origins.items())
            ),
            purges=tuple(reversed(self._purges)),
        )

    def _span(self, now: float) -> float:
        """Seconds the rate is averaged over: the window, or less just after start."""
        if self._started is None:
            return float(self.window)
        return float(min(self.window, max(1, int(now) - int(self._started) + 1)))


_SEVERITY = {OriginHealth.UNKNOWN: 0, OriginHealth.UP: 1, OriginHealth.DEGRADED: 2, OriginHealth.DOWN: 3}


@dataclass(frozen=True, slots=True)
class OriginView:
    origin: str
    health: OriginHealth
    requests: int
    errors: int
    last_error: str = ""
    last_error_at: float | None = None


@dataclass(frozen=True, slots=True)
class StatsExport:
    """One worker's window (or several merged): counts that add, samples that concatenate."""

    at: float
    window: int
    requests: int
    rate: float
    """Requests per second; rates of concurrent workers add."""
    lookups: int
    hits: int
    latencies: tuple[float, ...]
    phases: Mapping[str, int]
    top_keys: tuple[tuple[str, int, int], ...]
    """(key, count, error), largest first."""
    origins: tuple[OriginView, ...]
    purges: tuple[PurgeNote, ...]
    """Newest first."""

    def snapshot(self, top: int = 10) -> dict[str, Any]:
        recent = sorted(self.latencies)
        return {
            "window_seconds": self.window,
            "requests": self.requests,
            "requests_per_second": round(self.rate, 3),
            "hit_ratio": round(self.hits / self.lookups, 4) if self.lookups else None,
            "latency_ms": {f"p{q}": _ms(percentile(recent, q)) for q in (50, 90, 99)} | {"samples": len(recent)},
            "phases": dict(sorted(self.phases.items())),
            "top_keys": [{"key": k, "count": c, "error": e} for k, c, e in self.top_keys[:top]],
            "origins": [
                {"origin": o.origin, "health": o.health.value, "requests": o.requests, "errors": o.errors,
                 "last_error": o.last_error, "last_error_at": o.last_error_at}
                for o in self.origins
            ],
            "purges": [{"at": p.at, "client": p.client, "summary": p.summary, "outcome": p.outcome}
                       for p in self.purges],
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, for handing the export to another process."""
        return {
            "at": self.at, "window": self.window, "requests": self.requests, "rate": self.rate,
            "lookups": self.lookups, "hits": self.hits, "latencies": list(self.latencies),
            "phases": dict(self.phases), "top_keys": [list(k) for k in self.top_keys],
            "origins": [[o.origin, o.health.value, o.requests, o.errors, o.last_error, o.last_error_at]
                        for o in self.origins],
            "purges": [[p.at, p.client, p.summary, p.outcome] for p in self.purges],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatsExport:
        """Inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on a foreign shape."""
        return cls(
            at=float(data["at"]), window=int(data["window"]), requests=int(data["requests"]),
            rate=float(data["rate"]), lookups=int(data["lookups"]), hits=int(data["hits"]),
            latencies=tuple(map(float, data["latencies"])),
            phases={str(k): int(v) for k, v in data["phases"].items()},
            top_keys=tuple((str(k), int(c), int(e)) for k, c, e in data["top_keys"]),
            origins=tuple(OriginView(str(o), OriginHealth(h), int(r), int(e), str(le), lea)
                          for o, h, r, e, le, lea in data["origins"]),
            purges=tuple(PurgeNote(float(a), str(c), str(s), str(o)) for a, c, s, o in data["purges"]),
        )


def merge(exports: Sequence[StatsExport]) -> StatsExport:
    """The fleet view of several workers' windows: counts and rates add, latency samples pool,
    key counts add per key, an origin shows its worst health, purges are de-duplicated."""
    if not exports:
        raise ValueError("merge needs at least one export")
    if len(exports) == 1:
        return exports[0]
    phases: Counter[str] = Counter()
    keys: dict[str, list[int]] = {}
    origins: dict[str, OriginView] = {}
    for export in exports:
        phases.update(export.phases)
        for key, count, error in export.top_keys:
            slot = keys.setdefault(key, [0, 0])
            slot[0] += count
            slot[1] += error
        for o in export.origins:
            origins[o.origin] = _merge_origin(origins[o.origin], o) if o.origin in origins else o
    purges = sorted({p for e in exports for p in e.purges}, key=lambda p: p.at, reverse=True)
    return StatsExport(
        at=max(e.at for e in exports),
        window=max(e.window for e in exports),
        requests=sum(e.requests for e in exports),
        rate=sum(e.rate for e in exports),
        lookups=sum(e.lookups for e in exports),
        hits=sum(e.hits for e in exports),
        latencies=tuple(s for e in exports for s in e.latencies),
        phases=dict(phases),
        top_keys=tuple((k, c, e) for k, (c, e) in sorted(keys.items(), key=lambda kv: kv[1][0], reverse=True)),
        origins=tuple(origins[name] for name in sorted(origins)),
        purges=tuple(purges[: max(len(e.purges) for e in exports)]),
    )


def _merge_origin(a: OriginView, b: OriginView) -> OriginView:
    latest = max((a, b), key=lambda o: o.last_error_at or 0.0)
    return OriginView(
        a.origin,
        max(a.health, b.health, key=_SEVERITY.__getitem__),
        a.requests + b.requests,
        a.errors + b.errors,
        latest.last_error,
        latest.last_error_at,
    )


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)
