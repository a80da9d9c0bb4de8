"""LiveStats: sliding windows, percentiles, heavy hitters and origin health, with time passed in."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.admin.stats import LiveStats, OriginHealth, OriginOutcome, SecondRing, SpaceSaving, percentile

T0 = 1_800_000_000.0


def test_second_ring_forgets_counts_older_than_the_window() -> None:
    ring = SecondRing(window=10)
    ring.add(T0, 5)
    ring.add(T0 + 9.5, 1)
    assert ring.total(T0 + 9.9) == 6
    assert ring.total(T0 + 10.0) == 1, "the first second left the window"
    ring.add(T0 + 20, 2)
    assert ring.total(T0 + 20) == 2, "the reused slot was reset"


def test_rate_and_hit_ratio_over_the_window_exclude_passes_from_the_ratio() -> None:
    stats = LiveStats(window=10)
    for i, phase in enumerate(["hit", "hit", "hit", "miss", "miss", "stale", "pass", "revalidated"]):
        stats.record_request(T0 + i, phase, 0.001)
    snap = stats.snapshot(T0 + 9)
    assert snap["requests"] == 8
    assert snap["requests_per_second"] == 0.8
    assert snap["hit_ratio"] == round(5 / 7, 4)
    assert snap["phases"] == {"hit": 3, "miss": 2, "pass": 1, "revalidated": 1, "stale": 1}
    later = stats.snapshot(T0 + 100)
    assert later["requests"] == 0 and later["hit_ratio"] is None and later["latency_ms"]["p50"] is None


def test_rate_just_after_start_divides_by_elapsed_seconds_not_the_window() -> None:
    stats = LiveStats(window=60)
    for _ in range(10):
        stats.record_request(T0 + 0.2, "hit", 0.001)
    for _ in range(10):
        stats.record_request(T0 + 1.2, "hit", 0.001)
    assert stats.snapshot(T0 + 1.5)["requests_per_second"] == 10.0


def test_latency_percentiles_use_nearest_rank_over_recent_samples() -> None:
    stats = LiveStats(window=60)
    for ms in range(1, 101):
        stats.record_request(T0, "hit", ms / 1000)
    assert stats.snapshot(T0)["latency_ms"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "samples": 100}
    assert percentile([1.0, 2.0], 100) == 2.0
    assert math.isnan(percentile([], 50))


def test_latency_reservoir_is_bounded() -> None:
    stats = LiveStats(latency_samples=10)
    for i in range(100):
        stats.record_request(T0, "miss", i / 1000)
    assert stats.snapshot(T0)["latency_ms"]["samples"] == 10
    assert stats.snapshot(T0)["latency_ms"]["p50"] == 94.0


def test_space_saving_keeps_heavy_hitters_within_its_capacity() -> None:
    tops = SpaceSaving(capacity=4)
    stream = ["a"] * 50 + ["b"] * 30 + [f"scan{i}" for i in range(40)] + ["a"] * 5
    for key in stream:
        tops.add(key)
    top = tops.top(2)
    assert [k for k, _, _ in top] == ["a", "b"]
    assert all(count - error <= stream.count(key) <= count for key, count, error in top)


def test_top_keys_in_the_snapshot() -> None:
    stats = LiveStats(top_keys=8)
    for key in ["/a"] * 3 + ["/b"] * 2 + ["/c"]:
        stats.record_request(T0, "hit", 0.001, key=key)
    stats.record_request(T0, "pass", 0.001)
    assert stats.snapshot(T0, top=2)["top_keys"] == [
        {"key": "/a", "count": 3, "error": 0}, {"key": "/b", "count": 2, "error": 0},
    ]


def test_origin_health_moves_up_degraded_down_and_recovers() -> None:
    stats = LiveStats(window=10, down_after=3)
    origin = "http://origin:8000"
    assert stats.origin_health(origin, T0) is OriginHealth.UNKNOWN
    stats.record_origin(T0, origin, OriginOutcome.OK)
    assert stats.origin_health(origin, T0) is OriginHealth.UP
    stats.record_origin(T0 + 1, origin, OriginOutcome.ERROR, "timeout")
    assert stats.origin_health(origin, T0 + 1) is OriginHealth.DEGRADED
    stats.record_origin(T0 + 2, origin, OriginOutcome.ERROR, "connect")
    stats.record_origin(T0 + 3, origin, OriginOutcome.ERROR, "connect")
    assert stats.origin_health(origin, T0 + 3) is OriginHealth.DOWN
    stats.record_origin(T0 + 4, origin, OriginOutcome.OK)
    assert stats.origin_health(origin, T0 + 4) is OriginHealth.DEGRADED
    assert stats.origin_health(origin, T0 + 20) is OriginHealth.UP, "errors aged out of the window"
    [row] = stats.snapshot(T0 + 4)["origins"]
    assert row == {"origin": origin, "health": "degraded", "requests": 5, "errors": 3,
                   "last_error": "connect", "last_error_at": T0 + 3}


@pytest.mark.parametrize("n", [3, 25])
def test_recent_purges_newest_first_and_bounded(n: int) -> None:
    stats = LiveStats(recent_purges=20)
    for i in range(n):
        stats.record_purge(T0 + i, "127.0.0.1", f"hard tags={i}", "fleet")
    purges = stats.snapshot(T0 + n)["purges"]
    assert len(purges) == min(n, 20)
    assert purges[0] == {"at": T0 + n - 1, "client": "127.0.0.1", "summary": f"hard tags={n - 1}", "outcome": "fleet"}


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=400), st.integers(min_value=1, max_value=8))
def test_space_saving_bounds_hold_for_any_stream(stream: list[int], capacity: int) -> None:
    tops = SpaceSaving(capacity)
    for item in stream:
        tops.add(f"k{item}")
    kept = {key: (count, error) for key, count, error in tops.top(capacity)}
    assert len(kept) == min(capacity, len(set(stream)))
    exact = Counter(f"k{item}" for item in stream)
    for key, (count, error) in kept.items():
        assert count - error <= exact[key] <= count
    for key, frequency in exact.items():
        if frequency * capacity > len(stream):  # a heavy hitter is never lost (Metwally et al.)
            assert key in kept
