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
# LightGBM's kZeroThreshold is the float 1e-35f; IsZero() compares the double against it.
ZERO_THRESHOLD = float(np.float32(1e-35))
_EXPONENT_BIAS = 1023
_MANTISSA_BITS = 52

Bits = npt.NDArray[np.unsignedinteger[Any]]
"""Leaf sets: uint32 or uint64 words, one per (row, tree)."""
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
    keep_if_left: int
    """Leaf mask that survives when the split goes left (the right subtree's leaves cleared)."""
    keep_if_right: int

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
    """Rows of per-tree masks for one numerical feature, indexed by a value's threshold rank.

    Row layout: ranks ``0..m`` (``m`` thresholds), then the NaN row at ``m + 1`` (where one
    ``searchsorted`` against ``[thresholds…, inf, nan]`` sends NaN), then, only when some split
    treats zero as missing, ranks ``0..m`` again for values LightGBM's IsZero() accepts.
    """

    def __init__(self, splits: list[_Split], tree_leaves: Bits) -> None:
        thresholds = np.unique(np.array([float(s.threshold) for s in splits if isinstance(s.threshold, float)]))
        m = len(thresholds)
        self.edges = np.concatenate([thresholds, [np.inf, np.nan]])
        self.has_zero_missing = any(s.missing == "Zero" for s in splits)
        self.zero_offset = m + 2
        rows: Bits = np.tile(tree_leaves, ((2 if self.has_zero_missing else 1) * (m + 1) + 1, 1))
        for s in splits:
            j = int(np.searchsorted(thresholds, float(s.threshold)))  # type: ignore[arg-type]
            # A value of rank k (k thresholds lie strictly below it) satisfies value <= t_j iff k <= j.
            rows[: j + 1, s.tree] &= s.keep_if_left
            rows[j + 1 : m + 1, s.tree] &= s.keep_if_right
            rows[m + 1, s.tree] &= s.keep_if_left if s.goes_left(np.nan) else s.keep_if_right
            if self.has_zero_missing:
                zero = rows[self.zero_offset :, s.tree]
                if s.missing == "Zero":  # IsZero() values take the default side
                    zero &= s.keep_if_left if s.default_left else s.keep_if_right
                else:
                    zero[: j + 1] &= s.keep_if_left
                    zero[j + 1 :] &= s.keep_if_right
        self.rows = rows

    def masks(self, values: Floats) -> Bits:
        idx = np.searchsorted(self.edges, values)
        if self.has_zero_missing:
            idx = np.where(np.abs(values) <= ZERO_THRESHOLD, idx + self.zero_offset, idx)
        return self.rows[idx]


class _CategoricalTable:
    """Rows of per-tree masks for one categorical feature, indexed through category edges.

    LightGBM's CategoricalDecision sends NaN and values whose int cast is negative right, and
    otherwise truncates toward zero: category ``c`` is the interval ``[c, c + 1)``, and 0 also
    takes ``(-1, 0)``. One ``searchsorted(side="right")`` against ``[next(-1), 1, 2, …, M + 1,
    nan]`` gives index ``c + 1`` for category ``c`` and 0 / ``M + 2`` / ``M + 3`` for the rest.
    """

    def __init__(self, splits: list[_Split], tree_leaves: Bits) -> None:
        top = max(max(s.threshold) for s in splits if isinstance(s.threshold, frozenset))
        self.edges = np.concatenate([[np.nextafter(-1.0, 0.0)], np.arange(1, top + 2, dtype=np.float64), [np.nan]])
        rows: Bits = np.tile(tree_leaves, (top + 4, 1))
        category = np.arange(-1, top + 3)  # row i holds category i - 1; the ends are "other"
        for s in splits:
            assert isinstance(s.threshold, frozenset)
            left = np.isin(category, list(s.threshold))
            left[[0, -2, -1]] = False
            rows[left, s.tree] &= s.keep_if_left
            rows[~left, s.tree] &= s.keep_if_right
        self.rows = rows

    def masks(self, values: Floats) -> Bits:
        return self.rows[np.searchsorted(self.edges, values, side="right")]


class CompiledForest:
    """A LightGBM model as per-feature mask tables; ``predict`` equals the raw score.

    Leaf sets are uint32 when every tree has at most 32 leaves (the common ``num_leaves=31``),
    halving the memory every per-request operation touches; uint64 otherwise.
    """

    def __init__(self, dump: Mapping[str, Any]) -> None:
        if dump.get("num_class", 1) != 1 or dump.get("num_tree_per_iteration", 1) != 1:
            raise UnsupportedModel("multiclass models are not compiled")
        if dump.get("average_output"):
            raise UnsupportedModel("random-forest (average_output) models are not compiled")
        self.feature_names: tuple[str, ...] = tuple(dump["feature_names"])
        self.bias = 0.0
        most_leaves = max((info["num_leaves"] for info in dump["tree_info"]), default=1)
        if most_leaves > MAX_LEAVES:
            raise UnsupportedModel(f"a tree has {most_leaves} leaves (max {MAX_LEAVES})")
        self.width = 32 if most_leaves <= 32 else 64
        self.dtype: type[np.unsignedinteger[Any]] = np.uint32 if self.width == 32 else np.uint64
        leaf_values: list[list[float]] = []
        tree_leaves: list[int] = []
        splits: list[_Split] = []
        for info in dump["tree_info"]:
            root = info["tree_structure"]
            if "split_feature" not in root:
                self.bias += float(root["leaf_value"])
                continue
            values = [0.0] * self.width
            tree_leaves.append(_walk(root, len(leaf_values), values, splits, 2**self.width - 1))
            leaf_values.append(values)
        self.n_trees = len(leaf_values)
        self.leaf_values = np.array(leaf_values, dtype=np.float64).reshape(-1)
        self._leaf_offset = np.arange(self.n_trees, dtype=np.int64) * self.width - _EXPONENT_BIAS
        # Every table row starts from each tree's own leaves, so bits of absent leaves never survive.
        leaves: Bits = np.array(tree_leaves, dtype=self.dtype)
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

    def leaf_bits(self, columns: Mapping[int, Floats], n_rows: int, start: Bits | None = None) -> Bits:
        """AND of the masks of the given feature columns (and of ``start``): ``(n_rows, n_trees)``.

        A column may have length 1 (a per-request constant); it broadcasts over the rows.
        """
        if start is None:
            bits = np.full((n_rows, self.n_trees), np.iinfo(self.dtype).max, dtype=self.dtype)
        else:
            bits = np.broadcast_to(start, (n_rows, self.n_trees)).copy()
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


def _walk(node: Mapping[str, Any], tree: int, values: list[float], splits: list[_Split], full: int) -> int:
    """Record ``node``'s splits and leaf values; returns the mask of the leaves under it."""
    if "split_feature" not in node:
        if "leaf_coeff" in node:
            raise UnsupportedModel("linear trees are not compiled")
        leaf = int(node.get("leaf_index", 0))
        values[leaf] = float(node["leaf_value"])
        return 1 << leaf
    left = _walk(node["left_child"], tree, values, splits, full)
    right = _walk(node["right_child"], tree, values, splits, full)
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
            keep_if_left=~right & full,
            keep_if_right=~left & full,
        )
    )
    return left | right
