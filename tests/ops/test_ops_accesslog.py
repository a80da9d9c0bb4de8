"""Access log: JSON lines with the phase, sampling, bounded backlog, flush on close."""

from __future__ import annotations

import asyncio
import io
import json
import random
from pathlib import Path

import pytest

from edgeproxy.accesslog import AccessLog, AccessRecord

T0 = 1_800_000_000.25


def record(status: int = 200, phase: str = "hit", **extras: object) -> AccessRecord:
    return AccessRecord(
        time=T0, method="GET", host="shop.test", path="/api/items?category=books", status=status,
        phase=phase, client="127.0.0.1", bytes=512, key_hash="9f" * 16, ttl=29.5, origin_ms=None,
        rank_ms=0.41, extras=extras,
    )


async def test_lines_are_json_with_every_field_and_written_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(path, sample=1.0, flush_interval=0.01)
    log.start()
    log.log(record(phase="hit", policy="api"))
    log.log(record(phase="miss"))
    await asyncio.sleep(0.1)
    assert len(path.read_text().splitlines()) == 2, "the background task wrote without waiting for close"
    log.log(record(phase="stale"))
    await log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["phase"] for line in lines] == ["hit", "miss", "stale"]
    assert lines[0] == {
        "time": "2027-01-15T08:00:00.250+00:00", "method": "GET", "host": "shop.test",
        "path": "/api/items?category=books", "status": 200, "phase": "hit", "key": "9f" * 16, "ttl": 29.5,
        "origin_ms": None, "rank_ms": 0.41, "bytes": 512, "client": "127.0.0.1", "extra": {"policy": "api"},
    }
    assert "extra" not in lines[1]
    assert log.written == 3


async def test_close_flushes_to_a_stream_without_closing_it() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, sample=1.0, flush_interval=60)
    log.start()
    log.log(record())
    await log.close()
    assert json.loads(stream.getvalue())["phase"] == "hit"
    assert not stream.closed


async def test_sampling_keeps_about_the_rate_and_always_keeps_server_errors() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, sample=0.1, rng=random.Random(1234).random)
    for _ in range(2000):
        log.log(record())
    for _ in range(20):
        log.log(record(status=503, phase="miss"))
    await log.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ok = sum(1 for line in lines if line["status"] == 200)
    assert 140 <= ok <= 260, ok
    assert sum(1 for line in lines if line["status"] == 503) == 20
    assert log.sampled_out == 2000 - ok


async def test_a_full_backlog_drops_and_counts_instead_of_growing() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, sample=1.0, max_pending=5)
    for _ in range(8):
        log.log(record())
    assert log.dropped == 3
    await log.close()
    assert len(stream.getvalue().splitlines()) == 5


@pytest.mark.parametrize("sample", [-0.1, 1.5])
def test_an_out_of_range_sample_rate_is_refused(sample: float) -> None:
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        AccessLog(io.StringIO(), sample=sample)
