"""A mergeable latency histogram with ~1 % relative error, in the spirit of HdrHistogram.

Each worker process records into its own histogram; the runner adds them up. Buckets are
logarithmic (``BUCKETS_PER_E`` per factor of e), so p99.9 of a 200 µs hit and of a 3 s origin
timeout are both resolved to about one percent, in a fixed 2 000-slot array.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

BUCKETS_PER_E = 100
SLOTS = 2000
"""Covers 1 µs .. e**20 µs (~485 s): far beyond any bounded benchmark."""
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


class LatencyHistogram:
    """Counts of latencies in microseconds; ``record`` is O(1), ``merge`` adds counts."""

    __slots__ = ("counts", "max_us", "total")

    def __init__(self, counts: Iterable[int] | None = None, max_us: float = 0.0) -> None:
        self.counts = list(counts) if counts is not None else [0] * SLOTS
        if len(self.counts) != SLOTS:
            raise ValueError(f"a histogram has {SLOTS} slots, got {len(self.counts)}")
        self.total = sum(self.counts)
        self.max_us = max_us

    def record(self, latency_us: float) -> None:
        self.counts[_slot(latency_us)] += 1
        self.total += 1
        self.max_us = max(self.max_us, latency_us)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, pct: float) -> float:
        """The smallest recorded value (to bucket precision) at or above ``pct`` percent of samples."""
        if self.total == 0:
            return math.nan
        rank = max(1, math.ceil(self.total * pct / 100.0))
        seen = 0
        for slot, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_upper_us(slot), self.max_us)
        return self.max_us

    def percentiles_ms(self) -> dict[str, float]:
        """The headline percentiles, keyed ``p50`` .. ``p99.9``, in milliseconds."""
        return {f"p{pct:g}": self.percentile_us(pct) / 1000.0 for pct in PERCENTILES}

    def cdf_ms(self) -> tuple[list[float], list[float]]:
        """(latency ms, cumulative fraction) points of the non-empty buckets, for plotting."""
        xs: list[float] = []
        ys: list[float] = []
        seen = 0
        for slot, count in enumerate(self.counts):
            if count:
                seen += count
                xs.append(min(_upper_us(slot), self.max_us) / 1000.0)
                ys.append(seen / self.total)
        return xs, ys

    def to_json(self) -> dict[str, object]:
        """Sparse form: only non-empty slots, so a results file stays small."""
        return {
            "buckets_per_e": BUCKETS_PER_E,
            "max_us": self.max_us,
            "counts": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LatencyHistogram:
        if data.get("buckets_per_e") != BUCKETS_PER_E:
            raise ValueError(f"histogram resolution {data.get('buckets_per_e')} != {BUCKETS_PER_E}")
        counts = [0] * SLOTS
        for slot, count in dict(data["counts"]).items():  # type: ignore[call-overload]
            counts[int(slot)] = int(count)
        return cls(counts, float(data["max_us"]))  # type: ignore[arg-type]


def _slot(latency_us: float) -> int:
    if latency_us <= 1.0:
        return 0
    return min(SLOTS - 1, int(math.log(latency_us) * BUCKETS_PER_E))


def _upper_us(slot: int) -> float:
    return math.exp((slot + 1) / BUCKETS_PER_E)
