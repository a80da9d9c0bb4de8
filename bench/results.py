"""Results files: what ran, where, on which code, and what it measured, in one JSON document.

A number without its context cannot be trusted later, so each file records the machine (cores,
load average when the run began), tool versions, the git commit (and whether the tree was dirty)
and the full run configuration next to the legs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.runner import Leg, RunConfig

RESULTS_DIR = Path(__file__).with_name("results")
SCHEMA = 1


def machine_info() -> dict[str, object]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": platform.node(), "platform": platform.platform(), "cpu_model": cpu_model,
        "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
    }


def _tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else None


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("edgeproxy", "aiohttp", "numpy", "uvloop"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["wrk"] = _tool_version(["wrk", "--version"])
    found["nginx"] = _tool_version(["nginx", "-v"])
    found["varnishd"] = _tool_version(["varnishd", "-V"])
    return found


def git_commit() -> dict[str, object]:
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=5, check=False).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def summarize(legs: list[Leg], baseline: str = "edgeproxy") -> dict[str, object]:
    """Per-target medians over rounds and their ratios to ``baseline`` (the headline numbers:
    on a shared, noisy machine ratios from alternating rounds hold up better than absolutes)."""
    per_target: dict[str, dict[str, float | None]] = {}
    for target in dict.fromkeys(leg.target.value for leg in legs):
        mine = [leg.load for leg in legs if leg.target.value == target]
        p99s = [m.percentiles_ms.get("p99", float("nan")) for m in mine]
        hits = [m.hit_ratio for m in mine if m.hit_ratio is not None]
        per_target[target] = {
            "rounds": len(mine),
            "rps": statistics.median(m.rps for m in mine),
            "p50_ms": statistics.median(m.percentiles_ms.get("p50", float("nan")) for m in mine),
            "p99_ms": statistics.median(p99s),
            "errors": sum(m.errors for m in mine),
            "hit_ratio": statistics.median(hits) if hits else None,
        }
    base = per_target.get(baseline)
    ratios: dict[str, dict[str, float | None]] = {}
    if base is not None:
        for target, stats in per_target.items():
            if target != baseline:
                ratios[f"{baseline}/{target}"] = {
                    "rps": _ratio(base["rps"], stats["rps"]),
                    "p99": _ratio(base["p99_ms"], stats["p99_ms"]),
                }
    return {"targets": per_target, "ratios": ratios}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def document(config: RunConfig, legs: list[Leg], command: str) -> dict[str, Any]:
    """The results file's content (schema 1): context first, then the legs and their summary."""
    return {
        "schema": SCHEMA,
        "command": command,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "git": git_commit(),
        "config": config.to_json(),
        "legs": [leg.to_json() for leg in legs],
        "summary": summarize(legs),
    }


def write(doc: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    return write_json(doc, f"{doc['command']}-{doc['config']['scenario']}", directory)


def write_json(doc: dict[str, Any], name: str, directory: Path = RESULTS_DIR, out: Path | None = None) -> Path:
    """Write a results document to ``out``, or to ``directory/<name>-<UTC time>.json``."""
    path = out or directory / f"{name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(doc), indent=1, allow_nan=False))
    return path


def _finite(value: object) -> object:
    """NaN (a percentile of no samples) becomes null: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
