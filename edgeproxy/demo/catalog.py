"""A deterministic demo catalog: the items the demo origin serves and the demo users click."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from functools import lru_cache

CATEGORIES: tuple[str, ...] = (
    "books", "music", "games", "garden", "kitchen", "sports", "toys", "electronics",
)
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: published_at values are spread over the year after it


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    title: str
    category: str
    price: float
    popularity: float
    """0..1, heavy-tailed: a few items are very popular."""
    published_at: int
    """Unix seconds."""

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@lru_cache(maxsize=4)
def make_catalog(n_items: int = 2000, seed: int = 7) -> tuple[Item, ...]:
    """The same catalog for the same arguments, on every machine and in every process."""
    rng = random.Random(seed)
    items = []
    for i in range(1, n_items + 1):
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        items.append(
            Item(
                id=i,
                title=f"{category.title()} item {i}",
                category=category,
                price=round(rng.lognormvariate(3.0, 0.8), 2),
                popularity=round(min(1.0, rng.paretovariate(2.5) / 10.0), 4),
                published_at=EPOCH + rng.randrange(365 * 86400),
            )
        )
    return tuple(items)


def items_in(category: str | None, n_items: int = 2000, seed: int = 7) -> list[Item]:
    """Catalog items of one category (all items for None), most popular first."""
    catalog = make_catalog(n_items, seed)
    chosen = [it for it in catalog if category is None or it.category == category]
    return sorted(chosen, key=lambda it: (-it.popularity, it.id))
