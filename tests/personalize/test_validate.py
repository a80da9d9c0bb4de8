"""A model must pass child-process validation before it serves; bad ones never reach the parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeproxy.personalize.model import ModelMeta
from edgeproxy.personalize.registry import (
    DirectoryBackend,
    Registry,
    RegistryError,
    promote,
    publish,
)
from edgeproxy.personalize.validate import Verdict, validate, validate_async


def test_a_good_model_is_accepted(small_model: tuple[str, ModelMeta]) -> None:
    text, meta = small_model
    result = validate(text, meta)
    assert result.verdict is Verdict.ACCEPTED and "matches LightGBM" in result.reason


@pytest.mark.parametrize(
    ("damage", "reasons"),
    [
        # Truncation can make LightGBM abort the whole (child) process rather than raise.
        (lambda t: t[: len(t) // 3], ("crashed the validating process", "LightGBM cannot load")),
        (lambda t: "this is not a model\n", ("LightGBM cannot load",)),
        (lambda t: "", ("LightGBM cannot load",)),
    ],
    ids=["truncated", "corrupt", "empty"],
)
async def test_damaged_models_are_rejected_without_harming_this_process(
    small_model: tuple[str, ModelMeta], damage: object, reasons: tuple[str, ...]
) -> None:
    text, meta = small_model
    result = await validate_async(damage(text), meta)  # type: ignore[operator]
    assert result.verdict is Verdict.REJECTED
    assert any(r in result.reason for r in reasons), result.reason


def test_feature_mismatches_are_rejected(small_model: tuple[str, ModelMeta]) -> None:
    text, meta = small_model
    renamed = ModelMeta(meta.name, 1, ("not_a_feature",) + meta.features[1:])
    assert "not produced by the feature extractor" in validate(text, renamed).reason
    reordered = ModelMeta(meta.name, 1, meta.features[::-1])
    assert "differ from metadata" in validate(text, reordered).reason


async def test_a_rejected_new_version_leaves_the_current_one_serving(
    tmp_path: Path, small_model: tuple[str, ModelMeta]
) -> None:
    text, meta = small_model
    backend = DirectoryBackend(tmp_path)
    await publish(backend, text, meta)
    registry = Registry(backend)
    await registry.refresh()
    # Someone writes a truncated v2 straight into the directory and promotes it.
    await backend.write(text[: len(text) // 2], meta.with_version(2))
    await promote(backend, meta.name, 2)
    await registry.refresh(meta.name)
    current = registry.live[meta.name].current
    assert current is not None and current.meta.version == 1
    assert "demo-ranker-v2" in registry.rejected
    with pytest.raises(RegistryError, match="rejected"):
        await publish(backend, text[:100], meta)
