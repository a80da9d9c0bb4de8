"""Ranking never fails a request: a missed deadline or a broken model serves the origin's order,
says why in Cache-Status and counts it in ``edgeproxy_personalize_fallbacks_total``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.policies.loader import load_directory
from edgeproxy.policies.problems import PolicyError
from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import (
    BUNDLED_MODELS,
    ITEMS,
    ConfigFactory,
    bearer,
    fetch,
    metric,
    metrics_text,
    user,
    write_policies,
)

FALLBACKS = "edgeproxy_personalize_fallbacks_total"
SMALLEST_DEADLINE = "0.0001ms"
"""The schema refuses 0ms (a deadline must be positive); this is below any real ranking time."""


def test_a_zero_deadline_is_refused_by_the_policy_schema(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="deadline"):
        load_directory(write_policies(tmp_path, personalize={"deadline": "0ms"}))


async def test_a_missed_deadline_serves_the_base_order_and_is_counted(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base = await fetch(session, origin + ITEMS)
    policies = write_policies(tmp_path / "tight", personalize={"deadline": SMALLEST_DEADLINE})
    async with running_proxy(proxy_config(policies=policies)) as proxy:
        served = [await fetch(session, proxy.url + ITEMS, headers=user(f"u000{i}")) for i in (1, 2, 3)]
        metrics = await metrics_text(session, proxy.admin_port)
    for seen in served:
        assert seen.status == 200
        assert seen.body == base.body  # byte for byte the origin's document
        assert 'deadline model=demo-ranker-v1"' in seen.cache_status
        assert seen.headers["ETag"] != base.headers["ETag"]
        assert seen.headers["Cache-Control"].startswith("private")
    assert metric(metrics, FALLBACKS, reason="deadline") == 3


def _corrupt_models(directory: Path) -> Path:
    """demo-ranker v1 with valid metadata but a model file that is not a LightGBM model."""
    directory.mkdir()
    shutil.copy(BUNDLED_MODELS / "demo-ranker-v1.json", directory)
    (directory / "demo-ranker-v1.txt").write_text("tree\nthis is not a model\n")
    return directory


async def test_a_corrupt_model_still_starts_and_serves_the_base_order(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base = await fetch(session, origin + ITEMS)
    async with running_proxy(proxy_config(models=_corrupt_models(tmp_path / "models"))) as proxy:
        served = [await fetch(session, proxy.url + ITEMS, headers=user(u)) for u in ("u0001", "u0002")]
        metrics = await metrics_text(session, proxy.admin_port)
    for seen in served:
        assert seen.status == 200 and seen.body == base.body
        assert 'no-model model=none"' in seen.cache_status
    assert metric(metrics, FALLBACKS, reason="no-model") == 2


async def test_a_corrupt_new_version_leaves_the_current_model_serving(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_MODELS, models)
    async with running_proxy(proxy_config(models=models)) as proxy:
        before = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        meta = json.loads((models / "demo-ranker-v1.json").read_text()) | {"version": 2}
        (models / "demo-ranker-v2.json").write_text(json.dumps(meta))
        (models / "demo-ranker-v2.txt").write_text("garbage")
        (models / "rollout.json").write_text(json.dumps({"demo-ranker": {"current": 2, "history": [1]}}))
        reload = await fetch(session, f"http://127.0.0.1:{proxy.admin_port}/reload", "POST", headers=bearer())
        after = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
    assert reload.status == 200
    assert 'ranked model=demo-ranker-v1"' in before.cache_status
    assert 'ranked model=demo-ranker-v1"' in after.cache_status
    assert after.body == before.body
