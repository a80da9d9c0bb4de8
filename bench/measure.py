"""What a load generator measures, independent of which generator measured it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CacheOutcome(enum.Enum):
    """How the target says it answered, read from the RFC 9211 ``Cache-Status`` header."""

    HIT = "hit"
    MISS = "miss"
    UNKNOWN = "unknown"
    """No Cache-Status (an origin, or a cache that does not send one)."""


def classify_cache_status(value: str | None) -> CacheOutcome:
    """Outcome of the cache nearest the client.

    RFC 9211 §2: the header is a list with the cache closest to the origin first, so the *last*
    member is the one that answered us; §2.1: the ``hit`` parameter means it answered from cache
    (stale hits included), otherwise ``fwd`` says why it went forward.
    """
    if not value:
        return CacheOutcome.UNKNOWN
    member = value.rsplit(",", 1)[-1]
    params = {p.strip().split("=", 1)[0].lower() for p in member.split(";")[1:]}
    return CacheOutcome.HIT if "hit" in params else CacheOutcome.MISS


@dataclass(slots=True)
class Second:
    """Counts for one wall-clock second of a run (the over-time plots read these)."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    """Transport failures and 5xx answers: what a user would see as broken."""

    def add(self, other: Second) -> None:
        self.requests += other.requests
        self.hits += other.hits
        self.misses += other.misses
        self.errors += other.errors

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "hits": self.hits, "misses": self.misses, "errors": self.errors}


@dataclass(slots=True)
class Timeline:
    """Per-second counts, indexed by whole seconds since the run's shared start instant."""

    seconds: list[Second] = field(default_factory=list)

    def at(self, index: int) -> Second:
        while len(self.seconds) <= index:
            self.seconds.append(Second())
        return self.seconds[index]

    def merge(self, other: Timeline) -> None:
        for i, sec in enumerate(other.seconds):
            self.at(i).add(sec)

    def to_json(self) -> list[dict[str, int]]:
        return [s.to_json() for s in self.seconds]


def hit_ratio(hits: int, misses: int) -> float | None:
    """Hits over answers that carried a Cache-Status; None when the target sent none."""
    judged = hits + misses
    return hits / judged if judged else None


@dataclass(slots=True)
class LoadResult:
    """What one load generator run measured, in the form every report reads."""

    generator: str
    duration_s: float
    percentiles_ms: dict[str, float]
    cdf_ms: list[tuple[float, float]]
    """(latency ms, cumulative fraction) points: the latency CDF plot."""
    timeline: Timeline
    status_counts: dict[str, int]
    transport_errors: dict[str, int]
    """Failures without an HTTP answer, by kind (timeouts, refused or reset connections)."""
    untimed_errors: int = 0
    """Failures a generator cannot place in a second (wrk's socket errors); the rest are in
    ``timeline``."""

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.timeline.seconds)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.timeline.seconds) + self.untimed_errors

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def hit_ratio(self) -> float | None:
        return hit_ratio(sum(s.hits for s in self.timeline.seconds), sum(s.misses for s in self.timeline.seconds))
