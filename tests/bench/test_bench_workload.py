"""The workload model: Zipf shape, object sizes, scans, and determinism under a seed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.workload import (
    SIZE_MAX,
    SIZE_MIN,
    Kind,
    Workload,
    object_sizes,
    scan_mix_keys,
    unique_base,
    zipf_keys,
)


def take(workload: Workload, n: int, seed: int = 1, worker: int = 0) -> list[str]:
    return [r.path for r in itertools.islice(workload.stream(seed, worker), n)]


def test_zipf_frequencies_fall_as_rank_to_the_minus_alpha() -> None:
    keys = zipf_keys(1000, 1.0, 400_000, seed=3)
    counts = np.bincount(keys, minlength=1000)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.05)
    assert counts[0] / counts[9] == pytest.approx(10.0, rel=0.1)
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(counts[:50]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)


def test_zipf_alpha_zero_is_uniform() -> None:
    counts = np.bincount(zipf_keys(10, 0.0, 100_000, seed=1), minlength=10)
    assert counts.min() / counts.max() > 0.95


def test_same_seed_same_requests_other_seed_or_worker_other_requests() -> None:
    w = Workload(Kind.ZIPF, catalog=10_000)
    assert take(w, 500) == take(w, 500)
    assert take(w, 500) != take(w, 500, seed=2)
    assert take(w, 500) != take(w, 500, worker=1)


def test_object_sizes_are_fixed_heavy_tailed_and_bounded() -> None:
    sizes = object_sizes(50_000, seed=1)
    assert np.array_equal(sizes, object_sizes(50_000, seed=1))
    assert SIZE_MIN <= sizes.min() and sizes.max() <= SIZE_MAX
    assert 3000 < np.median(sizes) < 5500
    assert sizes.mean() > np.median(sizes)  # a right tail


def test_zipf_urls_keep_their_size() -> None:
    paths = take(Workload(Kind.ZIPF, catalog=50), 2000)
    size_of: dict[str, str] = {}
    for path in paths:
        size, seed = path.split("?")[1].split("&")
        assert size_of.setdefault(seed, size) == size


def test_scan_mix_inserts_bursts_of_never_repeated_keys() -> None:
    keys = scan_mix_keys(100, 0.9, 1000, seed=1, scan_every=200, scan_length=50)
    assert len(keys) == 1000
    scans = keys[keys >= 100]
    assert len(scans) == len(set(scans.tolist())) == 200  # four bursts of 50 in 1000
    assert (keys[200:250] >= 100).all() and (keys[:200] < 100).all()


def test_fixed_workload_warms_and_replays_a_small_set() -> None:
    w = Workload(Kind.FIXED, blob_size=2048, distinct=4)
    assert set(take(w, 200)) == set(w.warmup_paths())
    assert len(w.warmup_paths()) == 4


def test_request_ids_make_every_request_distinct_on_the_same_urls() -> None:
    w = Workload(Kind.FIXED, blob_size=2048, distinct=4, request_ids=True)
    reqs = list(itertools.islice(w.stream(1, 0), 5000))
    assert {r.path for r in reqs} == set(w.warmup_paths())
    assert len({r.headers for r in reqs}) == 5000 and all(dict(r.headers)["X-Request-Id"] for r in reqs)


def test_unique_workload_never_repeats_within_or_across_workers() -> None:
    w = Workload(Kind.UNIQUE)
    a, b = take(w, 3000, worker=0), take(w, 3000, worker=1)
    assert len(set(a) | set(b)) == 6000
    assert unique_base(19, 99) + 999_999 < 2**31  # the origin's seed bound


def test_personalized_requests_carry_a_user_cookie() -> None:
    reqs = list(itertools.islice(Workload(Kind.PERSONALIZED, users=100).stream(1, 0), 500))
    assert all(r.path.startswith("/api/items?category=") for r in reqs)
    users = {dict(r.headers)["Cookie"] for r in reqs}
    assert 10 < len(users) <= 100
