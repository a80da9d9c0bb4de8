"""Reading Cache-Status (RFC 9211) and the latency histogram."""

from __future__ import annotations

import math
import random

import pytest

from bench.histogram import LatencyHistogram
from bench.measure import CacheOutcome, classify_cache_status


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        ("edgeproxy; hit", CacheOutcome.HIT),
        ("edgeproxy; hit; ttl=12", CacheOutcome.HIT),
        ("edgeproxy; fwd=miss; stored", CacheOutcome.MISS),
        ("edgeproxy; fwd=stale; fwd-status=304", CacheOutcome.MISS),
        ("origin-cache; fwd=miss, edgeproxy; hit", CacheOutcome.HIT),  # last member answered us
        ("edgeproxy; hit, cdn; fwd=uri-miss", CacheOutcome.MISS),
        ('edgeproxy; fwd=bypass; detail="hit-for-pass"', CacheOutcome.MISS),
        (None, CacheOutcome.UNKNOWN),
        ("", CacheOutcome.UNKNOWN),
    ],
)
def test_cache_status_outcome(header: str | None, outcome: CacheOutcome) -> None:
    assert classify_cache_status(header) is outcome


def test_percentiles_within_one_percent() -> None:
    h = LatencyHistogram()
    for us in range(1, 100_001):
        h.record(float(us))
    assert h.total == 100_000
    for pct, expected in ((50, 50_000), (90, 90_000), (99, 99_000), (99.9, 99_900)):
        assert h.percentile_us(pct) == pytest.approx(expected, rel=0.011)
    assert h.percentile_us(100) == 100_000


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(1)
    samples = [rng.lognormvariate(7, 1.5) for _ in range(5000)]
    whole, a, b = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i, s in enumerate(samples):
        whole.record(s)
        (a if i % 2 else b).record(s)
    a.merge(b)
    assert a.counts == whole.counts and a.total == whole.total and a.max_us == whole.max_us


def test_json_round_trip_and_cdf() -> None:
    h = LatencyHistogram()
    for us in (100, 200, 200, 5000):
        h.record(us)
    again = LatencyHistogram.from_json(h.to_json())
    assert again.counts == h.counts and again.percentiles_ms() == h.percentiles_ms()
    xs, ys = h.cdf_ms()
    assert ys == [0.25, 0.75, 1.0] and xs == sorted(xs) and xs[-1] == 5.0


def test_empty_histogram_has_no_percentiles() -> None:
    assert math.isnan(LatencyHistogram().percentile_us(50))
