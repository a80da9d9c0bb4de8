"""Exact LightGBM scoring in numpy, compiled from ``Booster.dump_model()``.

Why: ``Booster.predict`` costs ~600 µs for 100 rows, mostly fixed per-call overhead; the ranker
has a 250 µs budget. How: every tree (≤ 64 leaves) is a 64-bit set of its leaves. Once the value
of feature ``f`` is known, each split on ``f`` rules out the leaves on the side not taken. All of
``f``'s splits, across all trees, depend on a value only through its rank among ``f``'s sorted
thresholds, so we precompute, per feature, one row per rank: for every tree, the AND of the masks
of that feature's splits. Scoring a column is then a ``searchsorted`` plus a row gather, and the
AND over all features leaves exactly one bit per tree: the leaf LightGBM would reach.

Because the AND is associative, columns can be combined in any grouping: a column constant over
the request (user features) is looked up once, and item-only columns once per cached object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_LEAVES = 64
ALL_LEAVES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
# LightGBM's kZeroThreshold is the float 1e-35f; IsZero() compares the double against it.
ZERO_THRESHOLD = float(np.float32(1e-35))
_EXPONENT_BIAS = 1023
_MANTISSA_BITS = 52

Bits = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float64]


class UnsupportedModel(ValueError):
    """The dump uses something the compiled path does not implement; score with LightGBM instead."""


@dataclass(frozen=True, slots=True)
class _Split:
    tree: int
    feature: int
    threshold: float | frozenset[int]
    """A number for ``<=`` splits; the categories that go left for ``==`` splits."""
    missing: str
    """LightGBM ``missing_type``: ``None``, ``Zero`` or ``NaN``."""
    default_left: bool
    keep_if_left: np.uint64
    """Leaf mask that survives when the split goes left (the right subtree's leaves cleared)."""
    keep_if_right: np.uint64

    def goes_left(self, value: float) -> bool:
        """LightGBM's ``NumericalDecision`` for one value (used to build the special rows)."""
        assert isinstance(self.threshold, float)
        if np.isnan(value) and self.missing != "NaN":
            value = 0.0
        if (self.missing == "Zero" and abs(value) <= ZERO_THRESHOLD) or (
            self.missing == "NaN" and np.isnan(value)
        ):
            return self.default_left
        return value <= self.threshold


class _NumericalTable:
    """Rows of per-tree masks for one numerical feature, indexed by a value's threshold rank."""

    def __init__(self, splits: list[_Split], tree_leaves: Bits) -> None:
        self.thresholds = np.unique(np.array([s.threshold for s in splits], dtype=np.float64))
        n = len(self.thresholds) + 1
        self.has_zero_missing = any(s.missing == "Zero" for s in splits)
        blocks = 2 if self.has_zero_missing else 1
        rows = np.tile(tree_leaves, (blocks * n + 1, 1))
        self.nan_row = blocks * n
        for s in splits:
            j = int(np.searchsorted(self.thresholds, s.threshold))
            # A value of rank k (k thresholds lie strictly below it) satisfies value <= t_j iff k <= j.
            rows[: j + 1, s.tree] &= s.keep_if_left
            rows[j + 1 : n, s.tree] &= s.keep_if_right
            if self.has_zero_missing:
                # Values LightGBM's IsZero() accepts: Zero-missing splits take the default side.
                zero = rows[n : 2 * n, s.tree]
                if s.missing == "Zero":
                    zero &= s.keep_if_left if s.default_left else s.keep_if_right
                else:
                    zero[: j + 1] &= s.keep_if_left
                    zero[j + 1 :] &= s.keep_if_right
            rows[self.nan_row, s.tree] &= s.keep_if_left if s.goes_left(np.nan) else s.keep_if_right
        self.rows = rows
        self.block = n

    def masks(self, values: Floats) -> Bits:
        idx = np.searchsorted(self.thresholds, values)
        if self.has_zero_missing:
            idx = np.where(np.abs(values) <= ZERO_THRESHOLD, idx + self.block, idx)
        idx = np.where(np.isnan(values), self.nan_row, idx)
        return self.rows[idx]


class _CategoricalTable:
    """Rows of per-tree masks for one categorical feature, indexed by the category number."""

    def __init__(self, splits: list[_Split], tree_leaves: Bits) -> None:
        self.max_category = max((max(s.threshold, default=0) for s in splits), default=0)  # type: ignore[type-var, arg-type]
        rows = np.tile(tree_leaves, (self.max_category + 2, 1))
        categories = np.arange(self.max_category + 2)
        for s in splits:
            assert isinstance(s.threshold, frozenset)
            left = np.isin(categories, list(s.threshold))
            rows[left, s.tree] &= s.keep_if_left
            rows[~left, s.tree] &= s.keep_if_right
        self.rows = rows
        self.other_row = self.max_category + 1

    def masks(self, values: Floats) -> Bits:
        # LightGBM CategoricalDecision: NaN and negative values go right; others are truncated
        # to int (static_cast) and go left iff in the split's category set.
        with np.errstate(invalid="ignore"):
            truncated = np.trunc(values)
            outside = np.isnan(values) | (truncated < 0) | (truncated > self.max_category)
        idx = np.where(outside, self.other_row, np.nan_to_num(truncated)).astype(np.intp)
        return self.rows[idx]


class CompiledForest:
    """A LightGBM model as per-feature mask tables; ``predict`` equals the raw score."""

    def __init__(self, dump: Mapping[str, Any]) -> None:
        if dump.get("num_class", 1) != 1 or dump.get("num_tree_per_iteration", 1) != 1:
            raise UnsupportedModel("multiclass models are not compiled")
        if dump.get("average_output"):
            raise UnsupportedModel("random-forest (average_output) models are not compiled")
        self.feature_names: tuple[str, ...] = tuple(dump["feature_names"])
        self.bias = 0.0
        leaf_values: list[list[float]] = []
        tree_leaves: list[int] = []
        splits: list[_Split] = []
        for info in dump["tree_info"]:
            root = info["tree_structure"]
            if "split_feature" not in root:
                self.bias += float(root["leaf_value"])
                continue
            if info["num_leaves"] > MAX_LEAVES:
                raise UnsupportedModel(f"tree {info['tree_index']} has {info['num_leaves']} leaves (max {MAX_LEAVES})")
            values = [0.0] * MAX_LEAVES
            tree_leaves.append(_walk(root, len(leaf_values), values, splits))
            leaf_values.append(values)
        self.n_trees = len(leaf_values)
        self.leaf_values = np.array(leaf_values, dtype=np.float64).reshape(-1)
        self._leaf_offset = np.arange(self.n_trees, dtype=np.int64) * MAX_LEAVES - _EXPONENT_BIAS
        # Every table row starts from each tree's own leaves, so bits of absent leaves never survive.
        leaves = np.array(tree_leaves, dtype=np.uint64)
        by_feature: dict[int, list[_Split]] = {}
        for s in splits:
            by_feature.setdefault(s.feature, []).append(s)
        self.tables: dict[int, _NumericalTable | _CategoricalTable] = {
            f: (_CategoricalTable if isinstance(ss[0].threshold, frozenset) else _NumericalTable)(ss, leaves)
            for f, ss in by_feature.items()
        }

    @property
    def used_features(self) -> frozenset[int]:
        """Feature indices some split reads; other columns cannot change a score."""
        return frozenset(self.tables)

    def leaf_bits(self, columns: Mapping[int, Floats], n_rows: int) -> Bits:
        """AND of the masks of the given feature columns: ``(n_rows, n_trees)``.

        A column may have length 1 (a per-request constant); it broadcasts over the rows.
        """
        bits = np.full((n_rows, self.n_trees), ALL_LEAVES, dtype=np.uint64)
        for feature, values in columns.items():
            table = self.tables.get(feature)
            if table is not None:
                bits &= table.masks(np.asarray(values, dtype=np.float64))
        return bits

    def scores(self, bits: Bits) -> Floats:
        """Raw scores from fully combined leaf bits (exactly one bit per tree)."""
        # A one-bit word 2**i converts to float64 exactly; its exponent field is i + 1023.
        exponents = bits.astype(np.float64).view(np.int64) >> _MANTISSA_BITS
        return self.leaf_values.take(exponents + self._leaf_offset).sum(axis=1) + self.bias

    def predict(self, X: Floats) -> Floats:
        """Raw scores for a full feature matrix, in the model's feature order."""
        X = np.asarray(X, dtype=np.float64)
        return self.scores(self.leaf_bits({f: X[:, f] for f in self.tables}, X.shape[0]))


def _walk(node: Mapping[str, Any], tree: int, values: list[float], splits: list[_Split]) -> int:
    """Record ``node``'s splits and leaf values; returns the mask of the leaves under it."""
    if "split_feature" not in node:
        if "leaf_coeff" in node:
            raise UnsupportedModel("linear trees are not compiled")
        leaf = int(node.get("leaf_index", 0))
        values[leaf] = float(node["leaf_value"])
        return 1 << leaf
    left = _walk(node["left_child"], tree, values, splits)
    right = _walk(node["right_child"], tree, values, splits)
    if node["decision_type"] == "==":
        threshold: float | frozenset[int] = frozenset(int(c) for c in str(node["threshold"]).split("||"))
    elif node["decision_type"] == "<=":
        threshold = float(node["threshold"])
    else:
        raise UnsupportedModel(f"unknown decision_type {node['decision_type']!r}")
    splits.append(
        _Split(
            tree=tree,
            feature=int(node["split_feature"]),
            threshold=threshold,
            missing=str(node.get("missing_type", "None")),
            default_left=bool(node.get("default_left", True)),
            keep_if_left=np.uint64(~right & (2**MAX_LEAVES - 1)),
            keep_if_right=np.uint64(~left & (2**MAX_LEAVES - 1)),
        )
    )
    return left | right
