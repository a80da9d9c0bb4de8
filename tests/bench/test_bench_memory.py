"""``python -m bench.memory`` end to end with tiny parameters: the results file is complete and sane.

No memory figure is asserted against the issue #7 targets here: tracemalloc numbers from a few
dozen objects are noisy, and the targets are judged on the real run (bench/results/latest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import memory

OBJECTS = 24
SIZES = (2, 1024)
BUDGET = 64 * 1024
HOLDERS = {"l1", "replay_memo", "replay_seen", "rendered_memo", "route_memo", "other"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("memory") / "memory.json"
    argv = ["--objects", str(OBJECTS), "--sizes", ",".join(map(str, SIZES)), "--cache-size", "64KB",
            "--bound-factor", "2", "--warmup", "16", "--concurrency", "4", "--max-seconds", "60", "--out", str(out)]
    assert memory.main(argv) == 0
    return json.loads(Path(out).read_text())


def test_context_and_configuration_are_recorded(results: dict) -> None:
    assert results["kind"] == "memory"
    assert {"machine", "versions", "git", "created"} <= results.keys()
    assert results["config"]["objects"] == OBJECTS and results["config"]["cache_size"] == BUDGET
    assert results["targets"] == {"overhead_bytes": 1024, "bound_ratio": 1.05}
    assert results["control"]["requests"] == OBJECTS and results["control"]["errors"] == 0


def test_overhead_legs_fill_then_hit_and_split_the_cost(results: dict) -> None:
    legs = results["overhead"]
    assert [leg["body_size"] for leg in legs] == list(SIZES)
    for leg in legs:
        assert leg["fill"] == {"misses": OBJECTS, "hits": 0, "errors": 0, "body_bytes": OBJECTS * leg["body_size"]}
        assert leg["second_pass"] == {"hits": OBJECTS, "misses": 0, "errors": 0}
        assert leg["third_pass"]["hits"] == OBJECTS
        assert leg["l1_charged"]["objects"] == OBJECTS and leg["l1_charged"]["evictions"] == 0
        assert leg["entries_held"]["l1"] == OBJECTS and leg["entries_held"]["route_memo"] == OBJECTS
        per = leg["per_object_overhead"]
        assert HOLDERS | {"total", "after_fill"} <= per.keys()
        # Even an empty body leaves an entry, a key and headers behind, real and charged.
        assert per["l1"] > 0 and leg["l1_charged"]["per_object_overhead"] > 0
        assert per["total"] > per["l1"]
        assert isinstance(leg["meets_target"], bool)


def test_bound_legs_evict_and_compute_the_ratio(results: dict) -> None:
    legs = {leg["mix"]: leg for leg in results["bound"]}
    assert set(legs) == {"2k", "mixed"}
    for leg in legs.values():
        assert leg["budget"] == BUDGET
        assert leg["requested"]["body_bytes"] >= BUDGET and leg["requested"]["errors"] == 0
        assert leg["l1_charged"]["evictions"] > 0
        assert 0 < leg["l1_charged"]["bytes"] <= BUDGET
        assert leg["ratio"] == pytest.approx(leg["retained_bytes"]["l1"] / BUDGET)
        assert HOLDERS | {"total"} <= leg["retained_bytes"].keys()
        assert leg["ratio"] > 0 and leg["ratio_total"] > 0
        assert isinstance(leg["meets_target"], bool)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        memory.main(["--sizes", "1"])
    with pytest.raises(SystemExit):
        memory.main(["--objects", "0"])
