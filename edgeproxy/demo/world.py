"""A deterministic synthetic world for the learning loop: users with hidden tastes, and their clicks.

Users ``u0001``…``u1000`` each have hidden preferences (category weights, a price point, a
taste for new items, a popularity pull). What the proxy can see is a *profile* estimated from
30 past clicks: noisy, as in life. Sessions show a category list in random order; each item is
clicked with probability sigmoid(utility − 3). Ranking by the hidden utility is the oracle.

Regenerate the bundled model: ``python -m edgeproxy.demo.world --out edgeproxy/demo/models``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeproxy.demo.catalog import CATEGORIES, EPOCH, Item, make_catalog
from edgeproxy.personalize.events import Click, Event, Impression, json_row
from edgeproxy.personalize.features import (
    FEATURE_NAMES,
    Device,
    Floats,
    UserContext,
    UserProfile,
    feature_matrix,
    item_matrix,
)
from edgeproxy.personalize.registry import DirectoryBackend, publish
from edgeproxy.personalize.train import Group, TrainReport, train_and_evaluate

MODEL_NAME = "demo-ranker"
START = EPOCH + 300 * 86_400
"""The simulated log starts late in the catalog's year, so items have a spread of ages."""
SHOWN = 20
HISTORY_CLICKS = 30
COLD_SHARE = 0.1
"""Share of users without a profile (cold start)."""


@dataclass(frozen=True, slots=True)
class Taste:
    category_weights: Floats
    price_log: float
    recency: float
    popularity_pull: float


def user_ids(n_users: int = 1000) -> list[str]:
    return [f"u{i:04d}" for i in range(1, n_users + 1)]


class World:
    """Users, their hidden tastes and visible profiles, over the demo catalog; all from ``seed``."""

    def __init__(self, n_users: int = 1000, seed: int = 11) -> None:
        self.seed = seed
        self.catalog: tuple[Item, ...] = make_catalog()
        self.users = user_ids(n_users)
        rng = np.random.default_rng(seed)
        self.tastes = {
            u: Taste(
                category_weights=rng.dirichlet(np.full(len(CATEGORIES), 0.4)),
                price_log=float(rng.normal(3.2, 0.6)),
                recency=float(rng.beta(2, 2)),
                popularity_pull=float(rng.uniform(0.5, 3.0)),
            )
            for u in self.users
        }
        self._rows = item_matrix([it.as_json() for it in self.catalog])
        self._category_index = np.array([CATEGORIES.index(it.category) for it in self.catalog])
        self._by_id = {it.id: i for i, it in enumerate(self.catalog)}
        self.profiles = {u: p for u in self.users if (p := self._profile(u, rng)) is not None}

    def utility(self, user: str, item_index: np.ndarray, now: float) -> Floats:
        """The hidden utility of catalog items (by index) for ``user`` at ``now``: the oracle."""
        t = self.tastes[user]
        rows = self._rows[item_index]
        age_days = (now - rows[:, 3]) / 86_400
        return (
            16.0 * t.category_weights[self._category_index[item_index]]
            - 1.5 * np.abs(rows[:, 0] - t.price_log)
            + 2.5 * t.recency * np.exp(-np.maximum(age_days, 0) / 45.0)
            + t.popularity_pull * 4.0 * rows[:, 1]
        )

    def _profile(self, user: str, rng: np.random.Generator) -> UserProfile | None:
        """A profile estimated from past clicks drawn by the user's taste (None for cold users)."""
        if rng.random() < COLD_SHARE:
            return None
        everything = np.arange(len(self.catalog))
        weights = np.exp(self.utility(user, everything, START) / 2.0)
        past = rng.choice(everything, size=HISTORY_CLICKS, p=weights / weights.sum())
        categories = self._category_index[past]
        ages = (START - self._rows[past, 3]) / 86_400
        return UserProfile(
            affinities=tuple(sorted((CATEGORIES[c], float(np.mean(categories == c))) for c in set(categories))),
            price_log=float(np.mean(self._rows[past, 0])),
            recency=float(np.mean(ages < 45)),
            activity=HISTORY_CLICKS,
        )

    @cached_property
    def _lists(self) -> dict[str, np.ndarray]:
        """Catalog indices of each category's list (what ``/api/items?category=C`` serves)."""
        return {c: np.flatnonzero(self._category_index == i) for i, c in enumerate(CATEGORIES)}

    def context(self, user: str, rng: np.random.Generator) -> UserContext:
        return UserContext(
            user_id=user,
            profile=self.profiles.get(user),
            device=Device(int(rng.integers(0, 3))),
            country=("US", "DE", "JP", "BR")[int(rng.integers(0, 4))],
        )

    def sessions(self, n: int, seed: int | None = None, interval: float = 60.0) -> Iterator[Event]:
        """``n`` impressions (random order, top SHOWN logged) and the clicks they drew, in time order."""
        rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
        for s in range(n):
            now = START + s * interval
            user = self.users[int(rng.integers(len(self.users)))]
            taste = self.tastes[user]
            category = CATEGORIES[int(rng.choice(len(CATEGORIES), p=0.5 * taste.category_weights + 0.5 / len(CATEGORIES)))]
            shown = rng.permutation(self._lists[category])[:SHOWN]
            ctx = self.context(user, rng)
            rows = feature_matrix(self._rows[shown], ctx, now)
            impression = Impression(
                at=now,
                impression_id=f"s{s:07d}",
                user_id=user,
                model="random-order",
                items=tuple(str(self.catalog[i].id) for i in shown),
                features=tuple(json_row(r) for r in rows),
                feature_names=FEATURE_NAMES,
            )
            yield impression.to_event()
            p_click = 1.0 / (1.0 + np.exp(-(self.utility(user, shown, now) - 3.0)))
            for i, clicked in zip(shown, rng.random(len(shown)) < p_click, strict=True):
                if clicked:
                    yield Click(at=now + 5.0, user_id=user, item_id=str(self.catalog[i].id)).to_event()

    def oracle(self, group: Group) -> Floats:
        """Scores a logged impression by the hidden utility (the best any ranker could do)."""
        idx = np.array([self._by_id[int(i)] for i in group.items])
        return self.utility(group.user_id, idx, group.at)


def build_model(world: World, sessions: int, rounds: int, progress: bool = True) -> TrainReport:
    """Simulate, train on the oldest 80%, and evaluate on the newest 20% (with the oracle)."""
    events = list(world.sessions(sessions))
    return train_and_evaluate(
        events,
        MODEL_NAME,
        FEATURE_NAMES,
        current=None,
        rounds=rounds,
        progress=progress,
        extra_scorers={"oracle": world.oracle},
        now=float(START + sessions * 60),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the bundled demo-ranker on the synthetic world.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "models")
    parser.add_argument("--sessions", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    report = build_model(World(), args.sessions, args.rounds)
    print(report.table())
    for stale in args.out.glob(f"{MODEL_NAME}-v*"):
        stale.unlink()
    (args.out / "rollout.json").unlink(missing_ok=True)
    stored = asyncio.run(publish(DirectoryBackend(args.out), report.text, report.candidate))
    print(f"wrote {args.out / stored.label}.txt (+ .json)")
    return 0 if math.isfinite(report.ndcg["candidate"]) else 1


if __name__ == "__main__":
    sys.exit(main())
