"""Reading the personalization benchmark's results for the rank-cost plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import markdown, plot_rank_cost, rank_cost_series

RANK_COST = {
    "kind": "rank-cost",
    "results": {
        "100": {"rank": {"p50_us": 90.0, "p99_us": 150.0}, "max_abs_score_diff": 1e-9, "iterations": 10},
        "20": {"rank": {"p50_us": 30.0, "p99_us": 60.0}, "max_abs_score_diff": 1e-9, "iterations": 10},
    },
}


def test_rank_cost_series_sorted_by_candidates() -> None:
    assert rank_cost_series(RANK_COST) == {"rank": {"p50_us": [(20, 30.0), (100, 90.0)], "p99_us": [(20, 60.0), (100, 150.0)]}}


def test_rank_cost_rejects_other_files() -> None:
    with pytest.raises(ValueError, match="rank-cost"):
        rank_cost_series({"schema": 1, "legs": []})


def test_rank_cost_plot_written(tmp_path: Path) -> None:
    source = tmp_path / "rank-cost-x.json"
    source.write_text(json.dumps(RANK_COST))
    assert plot_rank_cost(source, tmp_path) == tmp_path / "rank_cost.png"
    assert (tmp_path / "rank_cost.png").stat().st_size > 1000
    assert plot_rank_cost(tmp_path / "missing.json", tmp_path) is None


@pytest.mark.parametrize(
    ("max_requests", "bound"),
    [(None, "30 s per leg"), (15_000, "15,000 requests (at most 30 s) per leg")],
    ids=["duration", "request-budget"],
)
def test_the_report_says_what_ended_each_leg(max_requests: int | None, bound: str) -> None:
    doc = json.loads((Path(__file__).parents[2] / "bench/results/latest/compare-miss/results.json").read_text())
    doc["config"].update(duration_s=30.0, max_requests=max_requests)
    assert bound in markdown(doc).splitlines()[2]
