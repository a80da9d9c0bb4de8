"""A ranking model: LightGBM text + metadata, loaded into the fast scorer with a LightGBM fallback."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from edgeproxy.personalize.features import (
    FEATURE_KINDS,
    ITEM_COLUMNS,
    FeatureKind,
    Floats,
    UserContext,
    cross_features,
    feature_matrix,
    user_features,
)
from edgeproxy.personalize.forest import CompiledForest, UnsupportedModel


class ModelError(ValueError):
    """A model file or its metadata is unusable; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """Metadata published with every model version (``<name>-v<version>.json``)."""

    name: str
    version: int
    features: tuple[str, ...]
    """Feature names in the model's column order; each must be one the extractor produces."""
    trained_at: float = 0.0
    window: tuple[float, float] = (0.0, 0.0)
    """(first, last) event time of the training data, Unix seconds."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Offline metrics on the holdout (``ndcg@10`` …)."""

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def to_json(self) -> str:
        data = asdict(self)
        data["metrics"] = dict(self.metrics)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ModelMeta:
        try:
            data = json.loads(raw)
            return cls(
                name=str(data["name"]),
                version=int(data["version"]),
                features=tuple(str(f) for f in data["features"]),
                trained_at=float(data.get("trained_at", 0.0)),
                window=(float(data.get("window", (0, 0))[0]), float(data.get("window", (0, 0))[1])),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelError(f"model metadata is invalid ({type(exc).__name__}: {exc}); expected name, version, features") from exc

    def with_version(self, version: int) -> ModelMeta:
        return ModelMeta(self.name, version, self.features, self.trained_at, self.window, self.metrics)


def unknown_features(names: tuple[str, ...]) -> list[str]:
    """Names the feature extractor does not produce (a model needing them cannot be served)."""
    return [n for n in names if n not in FEATURE_KINDS]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A validated model ready to score candidates of a prepared list for one user."""

    meta: ModelMeta
    booster: lgb.Booster
    forest: CompiledForest | None
    """None when the dump uses something the compiled path lacks: then LightGBM scores."""
    _item_columns: Mapping[int, int]
    """model column -> ITEM_COLUMNS index, for columns fixed per cached object."""
    _user_columns: Mapping[int, str]
    _cross_columns: Mapping[int, str]

    @classmethod
    def load(cls, text: str, meta: ModelMeta) -> LoadedModel:
        """Load in-process. Only call this on text that ``validate`` accepted in a child process."""
        booster = lgb.Booster(model_str=text)
        if tuple(booster.feature_name()) != meta.features:
            raise ModelError(f"{meta.label}: model features {booster.feature_name()} differ from metadata {list(meta.features)}")
        if missing := unknown_features(meta.features):
            raise ModelError(f"{meta.label}: features {missing} are not produced by the feature extractor")
        try:
            forest: CompiledForest | None = CompiledForest(booster.dump_model())
        except UnsupportedModel:
            forest = None
        kinds = {j: FEATURE_KINDS[n] for j, n in enumerate(meta.features)}
        return cls(
            meta=meta,
            booster=booster,
            forest=forest,
            _item_columns={j: ITEM_COLUMNS.index(meta.features[j]) for j, k in kinds.items() if k is FeatureKind.ITEM},
            _user_columns={j: meta.features[j] for j, k in kinds.items() if k is FeatureKind.USER},
            _cross_columns={j: meta.features[j] for j, k in kinds.items() if k is FeatureKind.CROSS},
        )

    def score(self, rows: Floats, ctx: UserContext, now: float, memo: dict[Any, Any]) -> Floats:
        """Raw scores of the candidates ``rows`` for ``ctx``.

        On the compiled path, the item-only part is computed on the first call per cached object
        (and kept in ``memo``), the user part once, and only cross columns per candidate.
        """
        forest = self.forest
        if forest is None:
            return np.asarray(self.booster.predict(feature_matrix(rows, ctx, now, self.meta.features)), dtype=np.float64)
        n = rows.shape[0]
        item_bits = memo.get(self.meta.label)
        if item_bits is None:
            item_bits = forest.leaf_bits({j: rows[:, c] for j, c in self._item_columns.items()}, n)
            memo[self.meta.label] = item_bits
        user = user_features(ctx, now)
        user_bits = forest.leaf_bits({j: np.array([user[name]]) for j, name in self._user_columns.items()}, 1)
        cross = cross_features(rows, ctx, now)
        bits = forest.leaf_bits({j: cross[name] for j, name in self._cross_columns.items()}, n, start=item_bits & user_bits)
        return forest.scores(bits)
