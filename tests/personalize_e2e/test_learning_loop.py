"""The learning loop end to end: demo-world logs → ``edgeproxy train`` → a running proxy serves
the new version after a reload, with no restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.cli import main as edgeproxy
from edgeproxy.demo.world import World
from edgeproxy.personalize.events import JsonlSink
from edgeproxy.personalize.features import FEATURE_NAMES
from edgeproxy.personalize.model import ModelMeta
from edgeproxy.personalize.registry import DirectoryBackend, publish
from edgeproxy.personalize.train import join, train
from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import ITEMS, ConfigFactory, bearer, fetch, metric, metrics_text, user


async def _publish_weak_model(world: World, models: Path) -> None:
    """v1: two trees from 150 sessions, so a model trained on more data is measurably better."""
    booster = train(join(world.sessions(150, seed=1), FEATURE_NAMES), FEATURE_NAMES, rounds=2, progress=False)
    meta = ModelMeta(name="demo-ranker", version=1, features=FEATURE_NAMES)
    await publish(DirectoryBackend(models), booster.model_to_string(), meta)


async def test_a_model_trained_from_logs_serves_after_a_reload(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(n_users=300, seed=5)
    models, log = tmp_path / "models", tmp_path / "events.jsonl"
    await _publish_weak_model(world, models)
    await JsonlSink(log).write(list(world.sessions(1500, seed=9)))

    async with running_proxy(proxy_config(models=models)) as proxy:
        before = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))
        argv = ["train", "--models", str(models), "--events", str(log), "--rounds", "25"]
        assert await asyncio.to_thread(edgeproxy, argv) == 0
        out = capsys.readouterr().out
        reload = await fetch(session, f"http://127.0.0.1:{proxy.admin_port}/reload", "POST", headers=bearer())
        after = await fetch(session, proxy.url + ITEMS, headers=user("u0001"))

    assert "decision: publish" in out and "published and promoted demo-ranker-v2" in out
    assert 'ranked model=demo-ranker-v1"' in before.cache_status
    assert reload.status == 200
    assert 'ranked model=demo-ranker-v2"' in after.cache_status
    assert after.item_ids != before.item_ids
    assert sorted(after.item_ids) == sorted(before.item_ids)


MAX_TRIES_FOR_AN_IMPRESSION = 2000
"""Deliveries are sampled into the impression log at 1%: 2000 tries miss with p ≈ 2e-9."""


async def test_impressions_logged_by_the_proxy_join_with_clicks_sent_to_feedback(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    async with running_proxy(proxy_config(events_path=events)) as proxy:
        for attempt in range(MAX_TRIES_FOR_AN_IMPRESSION):
            uid = f"u{attempt % 1000 + 1:04d}"
            seen = await fetch(session, proxy.url + ITEMS, headers=user(uid))
            if "X-Edge-Impression" in seen.headers:
                break
        impression_id = seen.headers["X-Edge-Impression"]
        clicked = seen.item_ids[2]
        click = {"user": uid, "item": clicked, "impression": impression_id}
        assert (await fetch(session, proxy.url + "/_edge/feedback", "POST", json=click)).status == 202
        metrics = await metrics_text(session, proxy.admin_port)
    # Stopping the proxy flushed its event buffer.
    logged = await JsonlSink(events).read_all()
    (impression,) = [e for e in logged if e["type"] == "impression" and e["impression_id"] == impression_id]
    assert impression["user_id"] == uid and impression["model"] == "demo-ranker-v1"
    assert [int(i) for i in impression["items"]] == seen.item_ids[: len(impression["items"])]
    assert impression["feature_names"] == list(FEATURE_NAMES)
    (group,) = [g for g in join(logged, FEATURE_NAMES) if g.user_id == uid]
    assert group.X.shape == (len(impression["items"]), len(FEATURE_NAMES))
    assert group.y.tolist() == [1.0 if int(i) == clicked else 0.0 for i in impression["items"]]
    # The feedback counter is documented "by kind (impression, click)".
    assert metric(metrics, "edgeproxy_feedback_events_total", kind="click") == 1
    assert metric(metrics, "edgeproxy_feedback_events_total", kind="impression") >= 1
