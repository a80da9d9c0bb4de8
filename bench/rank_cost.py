"""What personalization adds to a cache hit: ``Personalizer.rank`` latency vs plain LightGBM.

For 20/100/500 candidates from the demo catalog and the bundled ``demo-ranker`` (100 trees × 31
leaves), time many ``rank`` calls, rotating over users with different profiles, and compare with
the same job done with ``Booster.predict`` (feature matrix + predict + argsort + join) and with
``Booster.predict`` alone. Also checks the served scores against LightGBM's. Prints a table and
writes ``bench/results/rank-cost-<time>.json``.

    python -m bench.rank_cost [--iterations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from bench.results import git_commit, machine_info, write_json
from edgeproxy.demo.catalog import items_in
from edgeproxy.demo.world import START, World
from edgeproxy.personalize.features import feature_matrix
from edgeproxy.personalize.prepared import Prepared, prepare
from edgeproxy.personalize.profiles import MemoryProfileStore, ProfileCache
from edgeproxy.personalize.ranker import Personalizer, RankOutcome
from edgeproxy.personalize.registry import DirectoryBackend, Registry
from edgeproxy.policies.model import PersonalizeSettings

MODELS = Path(__file__).resolve().parents[1] / "edgeproxy" / "demo" / "models"
SIZES = (20, 100, 500)
NOW = float(START + 86_400)


def _percentiles(samples: list[float]) -> dict[str, float]:
    us = np.array(samples) * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p90_us": float(np.percentile(us, 90)), "p99_us": float(np.percentile(us, 99))}


def _time(job: Callable[[int], object], iterations: int) -> list[float]:
    for i in range(50):  # warm-up: first-hit memo, caches, branch predictors
        job(i)
    gc.collect()
    samples = []
    for i in range(iterations):
        started = time.perf_counter()
        job(i)
        samples.append(time.perf_counter() - started)
    return samples


def _predict(booster: lgb.Booster, matrices: list[np.ndarray], i: int) -> object:
    return booster.predict(matrices[i % len(matrices)])


def measure(iterations: int) -> dict[str, dict[str, Any]]:
    world = World()
    registry = Registry(DirectoryBackend(MODELS))
    asyncio.run(registry.refresh())
    model = registry.live["demo-ranker"].current
    if model is None or model.forest is None:
        sys.exit(f"bundled model did not load: {registry.rejected}")
    personalizer = Personalizer(registry, ProfileCache(MemoryProfileStore(world.profiles)))
    settings = PersonalizeSettings(model="demo-ranker", deadline_ms=1000.0, max_candidates=max(SIZES))
    contexts = [world.context(u, np.random.default_rng(i)) for i, u in enumerate(world.users)]
    results: dict[str, dict[str, Any]] = {}
    for size in SIZES:
        body = json.dumps({"category": None, "items": [it.as_json() for it in items_in(None)[:size]]}).encode()
        prepared = prepare(body, settings)
        assert prepared is not None and prepared.n_candidates == size

        def rank(i: int, prepared: Prepared = prepared) -> object:
            result = personalizer.rank(prepared, contexts[i % len(contexts)], settings, NOW)
            assert result.outcome is RankOutcome.RANKED
            return result

        def lightgbm_rank(i: int, prepared: Prepared = prepared) -> bytes:
            X = feature_matrix(prepared.rows, contexts[i % len(contexts)], NOW, model.meta.features)
            return prepared.body(np.argsort(-np.asarray(model.booster.predict(X)), kind="stable"))

        matrices = [feature_matrix(prepared.rows, c, NOW, model.meta.features) for c in contexts[:50]]
        diffs = [
            float(np.max(np.abs(model.score(prepared.rows, c, NOW, prepared.memo) - model.booster.predict(X))))
            for c, X in zip(contexts[:50], matrices, strict=True)
        ]
        n = iterations if size <= 100 else iterations // 3
        results[str(size)] = {
            "rank": _percentiles(_time(rank, n)),
            "lightgbm_rank": _percentiles(_time(lightgbm_rank, n)),
            "lightgbm_predict_only": _percentiles(_time(partial(_predict, model.booster, matrices), n)),
            "max_abs_score_diff": max(diffs),
            "iterations": n,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    machine = machine_info()
    results = measure(args.iterations)
    print(f"{'candidates':>10}  {'rank p50/p99 µs':>18}  {'LightGBM rank p50/p99':>22}  {'predict only p50/p99':>21}  max|diff|")
    for size, r in results.items():
        cells = [f"{r[k]['p50_us']:.0f} / {r[k]['p99_us']:.0f}" for k in ("rank", "lightgbm_rank", "lightgbm_predict_only")]
        print(f"{size:>10}  {cells[0]:>18}  {cells[1]:>22}  {cells[2]:>21}  {r['max_abs_score_diff']:.1e}")
    document = {
        "kind": "rank-cost",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "git": git_commit(),
        "model": "demo-ranker (bundled), 100 trees x 31 leaves",
        "results": results,
    }
    out = write_json(document, "rank-cost", out=args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
