"""Load generation with ``wrk``: a generated Lua script for the URL/user mix, and output parsing.

wrk's C event loop measures latency far more cheaply than any Python client, so it is the
generator of choice where installed. The script (``wrk_script.lua`` beside this file) replays a
request list drawn from the workload, counts ``Cache-Status`` hits per second in ``response()``,
and prints ``BENCH_*`` lines from ``done()``: a dense percentile grid (wrk's own text output stops
at p99) and the per-second timeline.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.measure import LoadResult, Second, Timeline
from bench.workload import UNIQUE_PER_WORKER, Kind, Workload, blob_path, unique_base

SCRIPT_TEMPLATE = Path(__file__).with_name("wrk_script.lua")
REQUEST_LIST = 100_000
"""Requests drawn from the workload for wrk to cycle through (each thread from its own offset)."""
PERCENTILE_GRID: tuple[float, ...] = (
    *range(1, 100), 99.5, 99.9, 99.95, 99.99, 100.0,
)

_TIME_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def available() -> bool:
    return shutil.which("wrk") is not None


def time_to_us(text: str) -> float:
    """A wrk duration such as ``812.00us``, ``1.25ms``, ``2.00s`` or ``1.00m`` in microseconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(us|ms|s|m|h)\s*", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _TIME_UNITS_US[match[2]]


@dataclass(frozen=True, slots=True)
class WrkSummary:
    """wrk's own text report (``--latency``): the fallback when the Lua lines are missing."""

    requests: int
    duration_s: float
    bytes_read: int
    latency_us: dict[float, float]
    """Latency Distribution: percentile → µs (wrk prints 50, 75, 90, 99)."""
    socket_errors: dict[str, int]
    non_2xx_3xx: int


def parse_wrk_output(text: str) -> WrkSummary:
    """Parse wrk 4's text report; raises ValueError naming what is missing."""
    totals = re.search(r"(\d+) requests in ([0-9.]+\w+), ([0-9.]+)(\w?B) read", text)
    if totals is None:
        raise ValueError("wrk output has no 'N requests in Ts, X read' line; did wrk run at all?\n" + text[-500:])
    latency = {
        float(m[1]): time_to_us(m[2])
        for m in re.finditer(r"^\s+([0-9.]+)%\s+([0-9.]+(?:us|ms|s|m|h))\s*$", text, re.MULTILINE)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)) if errors else {}
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkSummary(
        requests=int(totals[1]),
        duration_s=time_to_us(totals[2]) / 1e6,
        bytes_read=int(float(totals[3]) * _SIZE_UNITS[totals[4]]),
        latency_us=latency,
        socket_errors=socket_errors,
        non_2xx_3xx=int(non_2xx[1]) if non_2xx else 0,
    )


def parse_bench_lines(
    text: str, start_at: float | None = None
) -> tuple[dict[float, float], Timeline, dict[str, int]]:
    """The script's ``BENCH_PCT p µs``, ``BENCH_SEC unix_second req hits misses errors`` and
    ``BENCH_STATUS code n`` lines as (percentiles µs, timeline, status counts).

    The timeline counts seconds from ``start_at`` (wall time wrk was started), so kills and purges
    logged relative to it line up with the plots; without it, from the first answered second.
    """
    percentiles: dict[float, float] = {}
    timeline = Timeline()
    statuses: dict[str, int] = {}
    seconds = [int(line.split()[1]) for line in text.splitlines() if line.startswith("BENCH_SEC ")]
    origin = int(start_at) if start_at is not None else min(seconds, default=0)
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = rest.split()
        if kind == "BENCH_PCT":
            percentiles[float(fields[0])] = float(fields[1])
        elif kind == "BENCH_SEC":
            req, hits, misses, errors = map(int, fields[1:5])
            timeline.at(max(0, int(fields[0]) - origin)).add(Second(req, hits, misses, errors))
        elif kind == "BENCH_STATUS":
            statuses[fields[0]] = statuses.get(fields[0], 0) + int(fields[1])
    return percentiles, timeline, statuses


def budget_span_s(stdout: str) -> float | None:
    """Seconds from the first request to the last answer when every thread stopped at its request
    budget (the script's ``BENCH_SPAN first_us last_us``): wrk itself runs on to ``--duration``."""
    for line in stdout.splitlines():
        if line.startswith("BENCH_SPAN "):
            first, last = map(int, line.split()[1:3])
            return (last - first) / 1e6
    return None


def to_load_result(stdout: str, start_at: float | None = None) -> LoadResult:
    """Combine wrk's text report (totals, socket errors) with the script's lines (everything else)."""
    summary = parse_wrk_output(stdout)
    grid_us, timeline, statuses = parse_bench_lines(stdout, start_at)
    percentiles_us = grid_us or summary.latency_us
    return LoadResult(
        generator="wrk",
        duration_s=budget_span_s(stdout) or summary.duration_s,
        percentiles_ms={f"p{p:g}": percentiles_us[p] / 1000.0 for p in (50.0, 90.0, 99.0, 99.9) if p in percentiles_us},
        cdf_ms=[(us / 1000.0, p / 100.0) for p, us in sorted(percentiles_us.items())],
        timeline=timeline,
        status_counts=statuses,
        transport_errors={k: v for k, v in summary.socket_errors.items() if v},
        untimed_errors=sum(summary.socket_errors.values()),
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_script(workload: Workload, seed: int, max_requests: int | None = None) -> str:
    """The Lua script for ``workload``: its request list (no longer than a bounded run needs),
    or a unique-URL prefix for ``unique``."""
    if workload.kind is Kind.UNIQUE:
        request_lines = ""
        unique_prefix = _lua_string(blob_path(workload.blob_size, ""))
    else:
        request_lines = "\n".join(
            "\t".join((req.path, *(f"{k}: {v}" for k, v in req.headers)))
            for req in itertools.islice(workload.stream(seed, 0), min(REQUEST_LIST, max_requests or REQUEST_LIST))
        )
        unique_prefix = "nil"
    grid = ", ".join(f"{p:g}" for p in PERCENTILE_GRID)
    return (
        SCRIPT_TEMPLATE.read_text()
        .replace("--[[REQUESTS]]", request_lines)
        .replace("--[[UNIQUE_PREFIX]]", unique_prefix)
        .replace("--[[UNIQUE_BASE]]", str(unique_base(seed, 0)))
        .replace("--[[UNIQUE_STRIDE]]", str(UNIQUE_PER_WORKER))
        .replace("--[[PERCENTILES]]", grid)
    )


def command(url: str, script: Path, *, duration: float, connections: int, threads: int) -> list[str]:
    """The wrk command line: ``--latency`` for its own distribution, a timeout so a dead target
    shows up as errors rather than a hang."""
    return [
        "wrk", "--latency", f"--threads={max(1, min(threads, connections))}", f"--connections={connections}",
        f"--duration={max(1, round(duration))}s", "--timeout=10s", f"--script={script}", url,
    ]


def start(
    url: str, script: Path, *, duration: float, connections: int, threads: int, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(url, script, duration=duration, connections=connections, threads=threads),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env,
    )
