"""Multi-worker metrics: two worker processes' samples are summed in one exposition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).parent


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_are_summed_and_a_dead_workers_gauges_drop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    stale = tmp_path / "prom" / "counter_99999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"left over from a previous run")
    out = subprocess.run(
        [sys.executable, str(HERE / "mp_fleet.py"), str(tmp_path / "prom")],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(out.stdout)
    before, after = parse(result["before"]), parse(result["after"])

    hits = ("edgeproxy_requests_total", frozenset({("phase", "hit"), ("status_class", "2xx")}))
    misses = ("edgeproxy_requests_total", frozenset({("phase", "miss"), ("status_class", "2xx")}))
    assert before[hits] == 7 and before[misses] == 2
    assert before["edgeproxy_request_duration_seconds_count", frozenset({("phase", "hit")})] == 7
    assert before["edgeproxy_l1_bytes", frozenset()] == 1500
    assert before["edgeproxy_l1_evictions_total", frozenset()] == 4
    assert before["edgeproxy_l2_circuit_state", frozenset()] == 2, "the fleet view shows the worst worker"

    assert after[hits] == 7, "a dead worker's counters still count"
    assert after["edgeproxy_l1_bytes", frozenset()] == 1000, "a dead worker's L1 no longer exists"
    assert after["edgeproxy_l2_circuit_state", frozenset()] == 0
    assert not stale.exists(), "enable_multiprocess starts from an empty directory"
