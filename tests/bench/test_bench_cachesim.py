"""The hit-ratio lab: Belady on hand-computed traces, and never worse than the live policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cachesim import (
    NEVER,
    Trace,
    belady,
    capacity_bytes,
    live_policies,
    next_uses,
    read_csv_trace,
    run_all,
    simulate,
    synthetic_trace,
)


def unit_trace(keys: list[int]) -> Trace:
    return Trace("hand", np.array(keys, dtype=np.int64), np.ones(len(keys), dtype=np.int64))


def test_next_uses() -> None:
    assert next_uses([1, 2, 1, 3, 2]) == [2, 4, NEVER, NEVER, NEVER]


def test_belady_by_hand_bypasses_an_object_needed_later_than_everything_cached() -> None:
    # capacity 2: a, b admitted; c (never again) bypassed; a, b hit.
    assert belady(unit_trace([0, 1, 2, 0, 1]), 2).hits == 2
    # a b c b a c, capacity 2: a(3) b(4) admitted; c: next use 5 is farthest, so bypassed;
    # b hit, a hit, c miss: 2 hits. LRU gets 0 here.
    assert belady(unit_trace([0, 1, 2, 1, 0, 2]), 2).hits == 2
    # a b b c a, capacity 2: b is dropped after its last use, c (never again) is not admitted.
    result = belady(unit_trace([0, 1, 1, 2, 0]), 2)
    assert (result.hits, result.evictions) == (2, 0)


def test_lru_by_hand_is_flushed_by_a_cycle_one_larger_than_the_cache() -> None:
    lru = live_policies()["lru"]
    assert simulate("lru", lru, unit_trace([0, 1, 2] * 5), 2).hits == 0
    assert simulate("lru", lru, unit_trace([0, 1, 0, 1, 0]), 2).hits == 3


def test_objects_larger_than_the_cache_are_never_cached() -> None:
    trace = Trace("big", np.array([0, 0, 0]), np.array([10, 10, 10]))
    for result in run_all(trace, 5):
        assert result.hits == 0


def test_byte_hit_ratio_counts_bytes() -> None:
    trace = Trace("mixed", np.array([0, 1, 0, 1]), np.array([100, 1, 100, 1]))
    result = belady(trace, 101)
    assert result.hit_ratio == 0.5 and result.byte_hit_ratio == 101 / 202


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(st.integers(0, 12), min_size=1, max_size=300),
    capacity=st.integers(1, 10),
)
def test_belady_never_worse_than_lru_or_s3fifo_on_equal_sizes(keys: list[int], capacity: int) -> None:
    trace = unit_trace(keys)
    best = belady(trace, capacity).hits
    for name, make in live_policies().items():
        assert best >= simulate(name, make, trace, capacity).hits, name


def test_scan_resistance_shows_on_scan_mix() -> None:
    trace = synthetic_trace("scan-mix", objects=2000, length=40_000, alpha=0.9, seed=1)
    results = {r.policy: r.hit_ratio for r in run_all(trace, capacity_bytes(trace, "5%"))}
    assert results["belady"] >= results["s3-fifo"] > results["lru"]


def test_capacity_as_share_of_unique_bytes_or_absolute() -> None:
    trace = Trace("t", np.array([0, 1, 0]), np.array([1000, 3000, 1000]))
    assert trace.unique_bytes == 4000
    assert capacity_bytes(trace, "10%") == 400
    assert capacity_bytes(trace, "64KB") == 65536


def test_csv_trace_with_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("key,size\n/a,100\n/b,50\n/a,100\n")
    trace = read_csv_trace(path)
    assert trace.keys.tolist() == [0, 1, 0] and trace.sizes.tolist() == [100, 50, 100]


def test_csv_trace_rejects_a_bad_row_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("/a,100\n/b,lots\n")
    with pytest.raises(ValueError, match=r"t\.csv:2"):
        read_csv_trace(path)
