"""The learning loop: join impressions with clicks, train a lambdarank model, evaluate, publish.

A new model is published only when its NDCG@10 on a time-based holdout (the newest events)
beats the current model's; the report also shows the popularity and random orders as floors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import lightgbm as lgb
import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from edgeproxy.personalize.events import Event
from edgeproxy.personalize.features import CATEGORICAL_FEATURES, Floats
from edgeproxy.personalize.model import ModelMeta

NDCG_K = 10
CLICK_WINDOW = 1800.0
"""A click without an impression id joins the user's latest impression of that item this recent."""
DEFAULT_PARAMS: Mapping[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [NDCG_K],
    "num_leaves": 31,
    "learning_rate": 0.08,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "lambdarank_truncation_level": 20,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 1,
    "verbose": -1,
}


@dataclass(frozen=True, slots=True)
class Group:
    """One impression as a lambdarank query group: its logged feature rows and click labels."""

    at: float
    user_id: str
    items: tuple[str, ...]
    X: Floats
    y: Floats


def join(events: Iterable[Event], feature_names: Sequence[str], window: float = CLICK_WINDOW) -> list[Group]:
    """Label each logged impression's items with the clicks that followed it, oldest first.

    Impressions logged with other feature names are skipped (their rows do not fit the model).
    """
    impressions: dict[str, Event] = {}
    clicks: list[Event] = []
    for e in events:
        if e.get("type") == "impression" and list(e.get("feature_names", ())) == list(feature_names):
            impressions[e["impression_id"]] = e
        elif e.get("type") == "click":
            clicks.append(e)
    latest: dict[tuple[str, str], list[Event]] = {}
    for imp in sorted(impressions.values(), key=lambda e: e["at"]):
        for item in imp["items"]:
            latest.setdefault((imp["user_id"], item), []).append(imp)
    clicked: set[tuple[str, str]] = set()
    for c in clicks:
        target = impressions.get(c.get("impression_id") or "")
        if target is None:
            earlier = [i for i in latest.get((c["user_id"], c["item_id"]), ()) if 0 <= c["at"] - i["at"] <= window]
            target = earlier[-1] if earlier else None
        if target is not None and c["item_id"] in target["items"]:
            clicked.add((target["impression_id"], c["item_id"]))
    groups = []
    for imp in sorted(impressions.values(), key=lambda e: e["at"]):
        X = np.array([[math.nan if v is None else v for v in row] for row in imp["features"]], dtype=np.float64)
        y = np.array([1.0 if (imp["impression_id"], it) in clicked else 0.0 for it in imp["items"]])
        groups.append(Group(imp["at"], imp["user_id"], tuple(imp["items"]), X, y))
    return groups


def split_by_time(groups: Sequence[Group], holdout: float) -> tuple[list[Group], list[Group]]:
    """Oldest ``1 - holdout`` for training, newest ``holdout`` for evaluation (no leakage from the future)."""
    ordered = sorted(groups, key=lambda g: g.at)
    cut = int(len(ordered) * (1.0 - holdout))
    return ordered[:cut], ordered[cut:]


def ndcg(scores: Floats, labels: Floats, k: int = NDCG_K) -> float:
    """NDCG@k with binary gains; ties in ``scores`` keep the served order (stable sort)."""
    order = np.argsort(-scores, kind="stable")[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((labels[order] * discounts[: len(order)]).sum())
    ideal = np.sort(labels)[::-1][:k]
    idcg = float((ideal * discounts[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


Scorer = Callable[[Group], Floats]


def mean_ndcg(groups: Sequence[Group], scorer: Scorer) -> float:
    """Mean NDCG@10 over groups with at least one click (others carry no ranking signal)."""
    values = [ndcg(scorer(g), g.y) for g in groups if g.y.any()]
    return float(np.mean(values)) if values else 0.0


def popularity_scorer(feature_names: Sequence[str]) -> Scorer:
    column = list(feature_names).index("item_popularity")
    return lambda g: np.nan_to_num(g.X[:, column], nan=-1.0)


def random_scorer(seed: int = 0) -> Scorer:
    rng = np.random.default_rng(seed)
    return lambda g: rng.random(len(g.y))


def booster_scorer(booster: lgb.Booster, feature_names: Sequence[str]) -> Scorer:
    """Scores logged rows with a model whose features are a subset of the logged ones."""
    columns = [list(feature_names).index(n) for n in booster.feature_name()]
    return lambda g: np.asarray(booster.predict(g.X[:, columns]), dtype=np.float64)


def train(
    groups: Sequence[Group],
    feature_names: Sequence[str],
    rounds: int = 100,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> lgb.Booster:
    """Fit a lambdarank model, one query group per impression (groups without clicks dropped)."""
    useful = [g for g in groups if g.y.any()]
    if not useful:
        raise ValueError("no impression has a click: nothing to learn from (log more, or raise the sample rate)")
    dataset = lgb.Dataset(
        np.vstack([g.X for g in useful]),
        np.concatenate([g.y for g in useful]),
        group=[len(g.y) for g in useful],
        feature_name=list(feature_names),
        categorical_feature=[n for n in feature_names if n in CATEGORICAL_FEATURES],
        free_raw_data=True,
    )
    with tqdm(total=rounds, desc="training", unit="tree", disable=not progress) as bar:
        return lgb.train(
            {**DEFAULT_PARAMS, **(params or {})},
            dataset,
            num_boost_round=rounds,
            callbacks=[lambda env: bar.update(1)],
        )


class Decision(Enum):
    PUBLISH = "publish"
    KEEP_CURRENT = "keep-current"


@dataclass(frozen=True, slots=True)
class TrainReport:
    candidate: ModelMeta
    text: str
    ndcg: Mapping[str, float] = field(default_factory=dict)
    """Holdout NDCG@10 by ranking: ``candidate``, ``current`` (when one exists), ``popularity``, ``random``."""
    decision: Decision = Decision.KEEP_CURRENT
    groups: tuple[int, int] = (0, 0)
    """(training, holdout) impressions."""

    def table(self) -> str:
        width = max(len(k) for k in self.ndcg)
        lines = [f"{'ranking':<{width}}  NDCG@{NDCG_K}", f"{'-' * width}  -------"]
        lines += [f"{name:<{width}}  {value:.4f}" for name, value in sorted(self.ndcg.items(), key=lambda kv: -kv[1])]
        lines.append(f"train/holdout impressions: {self.groups[0]}/{self.groups[1]}; decision: {self.decision.value}")
        return "\n".join(lines)


def train_and_evaluate(
    events: Iterable[Event],
    name: str,
    feature_names: Sequence[str],
    current: lgb.Booster | None,
    *,
    now: float,
    rounds: int = 100,
    holdout: float = 0.2,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    extra_scorers: Mapping[str, Scorer] | None = None,
) -> TrainReport:
    """Join, split by time, train, and compare on the holdout; PUBLISH only if the candidate wins."""
    groups = join(events, feature_names)
    train_groups, test_groups = split_by_time(groups, holdout)
    booster = train(train_groups, feature_names, rounds, params, progress)
    scores = {
        "candidate": mean_ndcg(test_groups, booster_scorer(booster, feature_names)),
        "popularity": mean_ndcg(test_groups, popularity_scorer(feature_names)),
        "random": mean_ndcg(test_groups, random_scorer()),
    }
    if current is not None and set(current.feature_name()) <= set(feature_names):
        scores["current"] = mean_ndcg(test_groups, booster_scorer(current, feature_names))
    for label, scorer in (extra_scorers or {}).items():
        scores[label] = mean_ndcg(test_groups, scorer)
    baseline = scores.get("current", scores["popularity"])
    decision = Decision.PUBLISH if scores["candidate"] > baseline else Decision.KEEP_CURRENT
    meta = ModelMeta(
        name=name,
        version=0,
        features=tuple(feature_names),
        trained_at=now,
        window=(groups[0].at, groups[-1].at) if groups else (0.0, 0.0),
        metrics={f"ndcg@{NDCG_K}": scores["candidate"], f"popularity_ndcg@{NDCG_K}": scores["popularity"]},
    )
    return TrainReport(meta, booster.model_to_string(), scores, decision, (len(train_groups), len(test_groups)))
