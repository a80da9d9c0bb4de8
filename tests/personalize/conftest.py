"""Shared fixtures: a small seeded world, a small model trained on it, and a models directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edgeproxy.demo.catalog import items_in
from edgeproxy.demo.world import START, World
from edgeproxy.personalize.features import FEATURE_NAMES
from edgeproxy.personalize.model import ModelMeta
from edgeproxy.personalize.registry import DirectoryBackend, Registry
from edgeproxy.personalize.train import join, train
from edgeproxy.policies.model import PersonalizeSettings

NOW = float(START + 86_400)


@pytest.fixture(scope="session")
def world() -> World:
    return World(n_users=300, seed=5)


@pytest.fixture(scope="session")
def small_model(world: World) -> tuple[str, ModelMeta]:
    """(LightGBM text, metadata) of a 30-tree ranker trained on the world's logs."""
    booster = train(join(world.sessions(1500), FEATURE_NAMES), FEATURE_NAMES, rounds=30, progress=False)
    return booster.model_to_string(), ModelMeta(name="demo-ranker", version=1, features=FEATURE_NAMES)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, small_model: tuple[str, ModelMeta]) -> Path:
    """A models directory holding ``small_model`` as demo-ranker v1 (treat as read-only)."""
    path = tmp_path_factory.mktemp("models")
    text, meta = small_model
    (path / f"{meta.label}.txt").write_text(text)
    (path / f"{meta.label}.json").write_text(meta.to_json())
    return path


@pytest.fixture(scope="session")
def registry(models_dir: Path) -> Registry:
    """A registry loaded (and child-validated) once; it holds no event-loop resources."""
    loaded = Registry(DirectoryBackend(models_dir))
    asyncio.run(loaded.refresh())
    assert loaded.rejected == {}
    return loaded


@pytest.fixture
def settings() -> PersonalizeSettings:
    return PersonalizeSettings(model="demo-ranker", deadline_ms=50.0)


def catalog_body(category: str = "books", limit: int = 100) -> bytes:
    """What the demo origin's ``/api/items`` returns."""
    return json.dumps({"category": category, "items": [it.as_json() for it in items_in(category)[:limit]]}).encode()
