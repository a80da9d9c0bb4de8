"""Fleet view of live stats: exports merge exactly, and workers share them through files."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edgeproxy.admin.stats import LiveStats, OriginOutcome, StatsExport, merge
from edgeproxy.admin.statsboard import StatsBoard

T0 = 1_800_000_000.0
ORIGIN = "http://origin:8000"


def worker(hits: int, misses: int, ms: float, origin_error: bool) -> LiveStats:
    stats = LiveStats(window=60)
    for i in range(hits):
        stats.record_request(T0 + i % 10, "hit", ms / 1000, key="shop.test/hot")
    for i in range(misses):
        stats.record_request(T0 + i % 10, "miss", ms / 1000, key=f"shop.test/cold{i}")
    stats.record_origin(T0 + 5, ORIGIN, OriginOutcome.ERROR if origin_error else OriginOutcome.OK, "timeout")
    return stats


def test_merged_counts_rates_ratio_and_percentiles_are_those_of_the_pooled_traffic() -> None:
    a, b = worker(30, 10, ms=1.0, origin_error=False), worker(10, 30, ms=9.0, origin_error=True)
    a.record_purge(T0 + 3, "127.0.0.1", "hard tags=1", "fleet")
    snap = merge([a.export(T0 + 9), b.export(T0 + 9)]).snapshot()
    assert snap["requests"] == 80
    assert snap["requests_per_second"] == 8.0
    assert snap["hit_ratio"] == 0.5
    assert snap["latency_ms"] == {"p50": 1.0, "p90": 9.0, "p99": 9.0, "samples": 80}
    assert snap["phases"] == {"hit": 40, "miss": 40}
    assert snap["top_keys"][0] == {"key": "shop.test/hot", "count": 40, "error": 0}
    [origin] = snap["origins"]
    assert origin == {
        "origin": ORIGIN, "health": "degraded", "requests": 2, "errors": 1,
        "last_error": "timeout", "last_error_at": T0 + 5,
    }
    assert [p["summary"] for p in snap["purges"]] == ["hard tags=1"]


def test_merging_one_export_is_identity_and_none_is_an_error() -> None:
    export = worker(3, 1, ms=2.0, origin_error=False).export(T0 + 9)
    assert merge([export]) is export
    with pytest.raises(ValueError, match="at least one"):
        merge([])


def test_export_survives_a_json_round_trip() -> None:
    stats = worker(5, 2, ms=3.0, origin_error=True)
    stats.record_purge(T0, "10.0.0.1", "soft urls=2", "local-only")
    export = stats.export(T0 + 9)
    assert StatsExport.from_json(json.loads(json.dumps(export.to_json()))) == export


def test_board_merges_fresh_peers_and_ignores_stale_or_broken_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    me, peer, dead = StatsBoard(tmp_path, pid=1), StatsBoard(tmp_path, pid=2), StatsBoard(tmp_path, pid=3)
    local = worker(4, 0, ms=1.0, origin_error=False)
    peer.publish(worker(0, 4, ms=1.0, origin_error=False).export(T0 + 9))
    dead.publish(worker(100, 0, ms=1.0, origin_error=False).export(T0 - 60))
    (tmp_path / "livestats_4.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="edgeproxy.admin.statsboard"):
        snap = me.fleet_snapshot(local, now=T0 + 9)
    assert snap["requests"] == 8 and snap["hit_ratio"] == 0.5
    assert "livestats_4.json" in caplog.text


def test_a_file_written_by_another_process_is_read(tmp_path: Path) -> None:
    script = (
        "import sys; from edgeproxy.admin.stats import LiveStats; from edgeproxy.admin.statsboard import StatsBoard\n"
        "s = LiveStats(); [s.record_request(float(sys.argv[2]), 'hit', 0.001) for _ in range(5)]\n"
        "StatsBoard(sys.argv[1]).publish(s.export(float(sys.argv[2])))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path), str(T0)], check=True, timeout=60)
    snap = StatsBoard(tmp_path).fleet_snapshot(LiveStats(), now=T0 + 1)
    assert snap["requests"] == 5 and snap["phases"] == {"hit": 5}


async def test_publishing_task_writes_until_cancelled_then_removes_its_file(tmp_path: Path) -> None:
    board = StatsBoard(tmp_path, pid=7)
    task = asyncio.create_task(board.publish_forever(worker(2, 0, 1.0, False), clock=lambda: T0 + 9, interval=0.01))
    for _ in range(200):
        if (tmp_path / "livestats_7.json").exists():
            break
        await asyncio.sleep(0.01)
    assert StatsBoard(tmp_path, pid=8).fleet_snapshot(LiveStats(), now=T0 + 9)["requests"] == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "livestats_7.json").exists()
