"""wrk support: its text report (with every latency unit), the script's lines, and a real run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from bench import wrk
from bench.workload import Kind, Workload

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    9.81ms   1.02s    97.12%
    Req/Sec     6.80k     1.17k    8.69k    66.67%
  Latency Distribution
     50%  812.00us
     75%    1.33ms
     90%    2.50s
     99%    1.20m
  135920 requests in 10.10s, 22.54MB read
  Socket errors: connect 0, read 3, write 0, timeout 12
  Non-2xx or 3xx responses: 7
Requests/sec:  13457.43
Transfer/sec:      2.23MB
"""


@pytest.mark.parametrize(
    ("text", "us"), [("812.00us", 812.0), ("1.33ms", 1330.0), ("2.50s", 2_500_000.0), ("1.20m", 72_000_000.0)]
)
def test_wrk_time_units(text: str, us: float) -> None:
    assert wrk.time_to_us(text) == pytest.approx(us)


def test_wrk_time_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a wrk duration"):
        wrk.time_to_us("12 parsecs")


def test_parse_wrk_text_report() -> None:
    s = wrk.parse_wrk_output(WRK_OUTPUT)
    assert (s.requests, s.duration_s, s.non_2xx_3xx) == (135920, pytest.approx(10.1), 7)
    assert s.bytes_read == int(22.54 * 1024**2)
    assert s.latency_us == {50.0: 812.0, 75.0: 1330.0, 90.0: 2_500_000.0, 99.0: 72_000_000.0}
    assert s.socket_errors == {"connect": 0, "read": 3, "write": 0, "timeout": 12}


def test_parse_wrk_output_without_totals_says_so() -> None:
    with pytest.raises(ValueError, match="did wrk run"):
        wrk.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused")


def test_script_lines_fill_timeline_percentiles_and_statuses() -> None:
    lines = WRK_OUTPUT + (
        "BENCH_PCT 50 800\nBENCH_PCT 90 2000\nBENCH_PCT 99 9000\nBENCH_PCT 99.9 40000\n"
        "BENCH_SEC 1700000000 100 90 10 0\nBENCH_SEC 1700000001 200 150 40 5\n"  # two threads
        "BENCH_SEC 1700000000 50 50 0 0\n"
        "BENCH_STATUS 200 345\nBENCH_STATUS 503 5\n"
    )
    result = wrk.to_load_result(lines)
    assert result.percentiles_ms == {"p50": 0.8, "p90": 2.0, "p99": 9.0, "p99.9": 40.0}
    assert [s.requests for s in result.timeline.seconds] == [150, 200]
    started_earlier = wrk.to_load_result(lines, start_at=1_699_999_999.5)
    assert [s.requests for s in started_earlier.timeline.seconds] == [0, 150, 200]
    assert result.requests == 350 and result.hit_ratio == pytest.approx(290 / 340)
    assert result.status_counts == {"200": 345, "503": 5}
    assert result.errors == 5 + 15  # 5xx in the timeline + socket errors
    assert result.transport_errors == {"read": 3, "timeout": 12}


def test_script_embeds_the_request_list_with_headers() -> None:
    script = wrk.render_script(Workload(Kind.PERSONALIZED, users=10), seed=1)
    assert "/api/items?category=" in script and "\tCookie: uid=u" in script
    assert "--[[" not in script.split("\n", 3)[3]  # every placeholder filled


async def _cache_like_app() -> web.AppRunner:
    """Answers like a cache: seed 0 is a miss, every other blob a hit."""

    async def blob(request: web.Request) -> web.Response:
        hit = request.query.get("seed", "0") != "0"
        return web.Response(text="x" * 100, headers={"Cache-Status": "test; hit" if hit else "test; fwd=miss"})

    app = web.Application()
    app.router.add_get("/api/blob", blob)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)")
async def test_real_wrk_run_counts_hits_from_cache_status(tmp_path: Path) -> None:
    runner = await _cache_like_app()
    port = runner.addresses[0][1]
    script = tmp_path / "w.lua"
    script.write_text(wrk.render_script(Workload(Kind.FIXED, distinct=4), seed=1))
    argv = wrk.command(f"http://127.0.0.1:{port}", script, duration=1, connections=4, threads=2)
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=15)
    finally:
        await runner.cleanup()
    result = wrk.to_load_result(stdout.decode())
    assert result.requests > 50 and result.status_counts == {"200": result.requests}
    # fixed workload: seeds 0..3 equally likely, seed 0 answers "miss"
    assert 0.6 < (result.hit_ratio or 0) < 0.9
    assert set(result.percentiles_ms) == {"p50", "p90", "p99", "p99.9"}
    latencies = [ms for ms, _ in result.cdf_ms]
    assert latencies == sorted(latencies) and latencies[0] > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)")
async def test_a_request_budget_measures_the_rate_over_the_time_it_took(tmp_path: Path) -> None:
    """wrk runs on to --duration after its threads stop at their budget; the rate must not."""
    runner = await _cache_like_app()
    port = runner.addresses[0][1]
    script = tmp_path / "w.lua"
    script.write_text(wrk.render_script(Workload(Kind.FIXED, distinct=4), seed=1, max_requests=200))
    argv = wrk.command(f"http://127.0.0.1:{port}", script, duration=4, connections=4, threads=2)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "BENCH_MAX_PER_THREAD": "100"},
        )
        stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=15)
    finally:
        await runner.cleanup()
    result = wrk.to_load_result(stdout.decode())
    # A thread stops at its budget; answers already in flight on its other connection still count.
    assert 200 <= result.requests <= 204, result
    assert wrk.parse_wrk_output(stdout.decode()).duration_s >= 3.5  # wrk's own clock ran on
    assert 0 < result.duration_s < 2.0 and result.rps > 100, (result.duration_s, result.rps)


def test_without_a_budget_span_wrk_s_own_duration_stands() -> None:
    assert wrk.budget_span_s(WRK_OUTPUT) is None
    assert wrk.budget_span_s(WRK_OUTPUT + "BENCH_SPAN 1700000000000000 1700000000250000\n") == 0.25
