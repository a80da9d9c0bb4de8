"""The compiled scorer equals LightGBM's own predictions (raw score) to 1e-6, edge cases included."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from edgeproxy.personalize.forest import CompiledForest, UnsupportedModel

CATEGORICAL = [3, 5]


def _data(rng: np.random.Generator, n: int) -> np.ndarray:
    X = rng.normal(size=(n, 7))
    X[:, 3] = rng.integers(0, 12, n)
    X[:, 5] = rng.integers(0, 4, n)
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.25, 1] = 0.0
    X[rng.random(n) < 0.1, 3] = np.nan
    return X


def _target(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (
        X[:, 1]
        + (X[:, 3] == 2)
        + np.nan_to_num(X[:, 0], nan=2.0) * X[:, 2]
        + (X[:, 5] == 1) * X[:, 4]
        + rng.normal(size=len(X)) * 0.1
    )


def _probe(rng: np.random.Generator, n: int = 3000) -> np.ndarray:
    """Values LightGBM treats specially: NaN, zeros, tiny values, fractional/negative/unseen categories."""
    X = _data(rng, n)
    X[:, 3] = rng.integers(-3, 20, n) + rng.choice([0.0, 0.5, 0.999], n)
    X[:, 5] = rng.choice([-0.5, 0, 1, 2.7, 3, 9, 1e12, -1e12], n)
    for col in range(7):
        X[rng.random(n) < 0.08, col] = np.nan
    X[rng.random(n) < 0.1, 1] = rng.choice([1e-40, -1e-40, 1e-35, -1e-35, 0.0, -0.0])
    X[rng.random(n) < 0.05, 2] = rng.choice([np.inf, -np.inf])
    return X


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},
        {"use_missing": False},
        {"num_leaves": 63, "min_data_in_leaf": 2},
        {"objective": "binary"},
    ],
    ids=["nan-missing", "zero-as-missing", "no-missing", "64-leaf-words", "binary"],
)
def test_compiled_scores_equal_lightgbm(params: dict[str, object]) -> None:
    rng = np.random.default_rng(3)
    X = _data(rng, 4000)
    y = _target(X, rng)
    if params.get("objective") == "binary":
        y = (y > np.median(y)).astype(float)
    base = {"objective": "regression", "verbose": -1, "num_leaves": 31, "min_data_in_leaf": 5, "num_threads": 1}
    booster = lgb.train({**base, **params}, lgb.Dataset(X, y, categorical_feature=CATEGORICAL), num_boost_round=60)
    forest = CompiledForest(booster.dump_model())
    probe = _probe(rng)
    assert np.max(np.abs(forest.predict(probe) - booster.predict(probe, raw_score=True))) <= 1e-6


def test_constant_trees_become_bias() -> None:
    X = np.zeros((50, 2))
    y = np.full(50, 3.5)
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=3)
    forest = CompiledForest(booster.dump_model())
    assert forest.n_trees == 0
    np.testing.assert_allclose(forest.predict(X[:3]), booster.predict(X[:3], raw_score=True), atol=1e-9)


def test_partial_columns_combine_to_the_full_score() -> None:
    """Grouping columns (item once, user once, cross per request) gives the same leaves."""
    rng = np.random.default_rng(4)
    X = _data(rng, 2000)
    booster = lgb.train(
        {"objective": "regression", "verbose": -1}, lgb.Dataset(X, _target(X, rng), categorical_feature=CATEGORICAL), 40
    )
    forest = CompiledForest(booster.dump_model())
    probe = _probe(rng, 100)
    probe[:, 4] = 0.7  # a per-request constant column, passed once with length 1
    item = forest.leaf_bits({f: probe[:, f] for f in (0, 1, 3)}, 100)
    user = forest.leaf_bits({4: np.array([0.7])}, 1)
    bits = forest.leaf_bits({f: probe[:, f] for f in (2, 5, 6)}, 100, start=item & user)
    np.testing.assert_allclose(forest.scores(bits), booster.predict(probe, raw_score=True), atol=1e-6)


def test_multiclass_is_left_to_lightgbm() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, rng.integers(0, 3, 300)), 2
    )
    with pytest.raises(UnsupportedModel, match="multiclass"):
        CompiledForest(booster.dump_model())
