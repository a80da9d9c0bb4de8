"""The ranker's features: what each one means, where it comes from, and how it is computed.

Pure code (time is the ``now`` argument). Features fall in three kinds, because the scorer
treats them differently: ITEM columns are computed once when a response is cached, USER columns
once per request, and only CROSS columns (user × item) per candidate on every hit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
import xxhash

from edgeproxy.policies.device import DeviceClass
from edgeproxy.policies.device import device_class as policy_device_class

Floats = npt.NDArray[np.float64]

CATEGORY_BUCKETS = 256
"""Item categories are hashed into this many codes, so no vocabulary ties a model to a catalog."""
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "JP", "BR", "IN", "CA", "AU", "NL", "ES", "IT")
"""Country codes with their own category value; any other country shares the next one."""
SECONDS_PER_DAY = 86_400.0


class FeatureKind(Enum):
    ITEM = "item"
    USER = "user"
    CROSS = "cross"


class Device(Enum):
    """Device class from User-Agent; the value is the categorical feature code."""

    DESKTOP = 0
    MOBILE = 1
    TABLET = 2


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: FeatureKind
    categorical: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("item_price_log", FeatureKind.ITEM),
    Feature("item_popularity", FeatureKind.ITEM),
    Feature("item_category", FeatureKind.ITEM, categorical=True),
    Feature("user_known", FeatureKind.USER),
    Feature("user_activity_log", FeatureKind.USER),
    Feature("device", FeatureKind.USER, categorical=True),
    Feature("country", FeatureKind.USER, categorical=True),
    Feature("hour", FeatureKind.USER),
    Feature("cat_affinity", FeatureKind.CROSS),
    Feature("price_gap", FeatureKind.CROSS),
    Feature("item_age_days", FeatureKind.CROSS),
    Feature("age_x_recency", FeatureKind.CROSS),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.categorical)
FEATURE_KINDS: Mapping[str, FeatureKind] = {f.name: f.kind for f in FEATURES}

ITEM_COLUMNS: tuple[str, ...] = ("item_price_log", "item_popularity", "item_category", "published_at")
"""Columns of the per-item matrix kept at fill time: the ITEM features plus raw inputs of CROSS ones."""
_PRICE, _POPULARITY, _CATEGORY, _PUBLISHED = range(len(ITEM_COLUMNS))


def category_code(category: object) -> float:
    """Stable categorical code of a category name (NaN when absent or not a string)."""
    if not isinstance(category, str):
        return math.nan
    return float(xxhash.xxh32_intdigest(category.encode()) % CATEGORY_BUCKETS)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def item_row(item: object) -> tuple[float, float, float, float]:
    """One item's ITEM_COLUMNS from its JSON object; anything missing or mistyped is NaN."""
    if not isinstance(item, Mapping):
        return (math.nan,) * 4
    price = _number(item.get("price"))
    return (
        math.log1p(price) if price >= 0 else math.nan,
        _number(item.get("popularity")),
        category_code(item.get("category")),
        _number(item.get("published_at")),
    )


def item_matrix(items: Sequence[object]) -> Floats:
    """The ``(n, len(ITEM_COLUMNS))`` matrix of a candidate list, built once at cache fill."""
    return np.array([item_row(it) for it in items], dtype=np.float64).reshape(len(items), len(ITEM_COLUMNS))


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What we know about a user, as stored in Redis under ``user:<id>`` (JSON)."""

    affinities: tuple[tuple[str, float], ...] = ()
    """(category, share of the user's clicks in it) sorted by category; shares sum to at most 1."""
    price_log: float = math.nan
    """Mean log1p(price) of clicked items."""
    recency: float = 0.0
    """0..1: how strongly the user prefers recently published items."""
    activity: int = 0
    """Number of clicks the profile was built from."""

    def to_json(self) -> bytes:
        return json.dumps(
            {"affinities": dict(self.affinities), "price_log": self.price_log, "recency": self.recency, "activity": self.activity}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> UserProfile:
        """Parse a stored profile; raises ValueError naming the bad field."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("user profile must be a JSON object")  # noqa: TRY004 - bad stored data, one error type
        affinities = data.get("affinities", {})
        if not isinstance(affinities, dict) or not all(isinstance(v, int | float) for v in affinities.values()):
            raise ValueError("user profile 'affinities' must map category names to numbers")
        try:
            return cls(
                affinities=tuple(sorted((str(k), float(v)) for k, v in affinities.items())),
                price_log=float(data.get("price_log", math.nan)),
                recency=float(data.get("recency", 0.0)),
                activity=int(data.get("activity", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"user profile has a non-numeric field: {exc}") from exc


@dataclass(frozen=True, slots=True)
class UserContext:
    """Everything about the requester the ranker may use; built once per request."""

    user_id: str | None
    """None: anonymous (no cookie, no header)."""
    profile: UserProfile | None
    """None: anonymous, unknown, or the profile lookup timed out (cold start)."""
    device: Device = Device.DESKTOP
    country: str | None = None


def device_class(user_agent: str | None) -> Device:
    """The feature code of the device class the policies key on (one User-Agent classifier)."""
    return _DEVICE_CODES[policy_device_class(user_agent)]


_DEVICE_CODES = {DeviceClass.DESKTOP: Device.DESKTOP, DeviceClass.MOBILE: Device.MOBILE, DeviceClass.TABLET: Device.TABLET}


def user_features(ctx: UserContext, now: float) -> dict[str, float]:
    """USER features: constant over one request's candidates. Unknown users get cold-start values."""
    profile = ctx.profile
    country = math.nan if ctx.country is None else float(COUNTRIES.index(ctx.country) if ctx.country in COUNTRIES else len(COUNTRIES))
    return {
        "user_known": 0.0 if profile is None else 1.0,
        "user_activity_log": math.nan if profile is None else math.log1p(profile.activity),
        "device": float(ctx.device.value),
        "country": country,
        "hour": float(time.gmtime(now).tm_hour),
    }


def _affinity_lookup(profile: UserProfile | None) -> Floats:
    """Affinity by category code: NaN for a cold start, 0 for categories a known user never clicked."""
    table = np.full(CATEGORY_BUCKETS + 1, math.nan if profile is None else 0.0)
    table[CATEGORY_BUCKETS] = math.nan  # where items without a category land
    if profile is not None:
        for category, share in profile.affinities:
            table[int(category_code(category))] = share
    return table


def cross_features(items: Floats, ctx: UserContext, now: float) -> dict[str, Floats]:
    """CROSS features for every candidate, vectorized over the item matrix."""
    profile = ctx.profile
    codes = np.nan_to_num(items[:, _CATEGORY], nan=CATEGORY_BUCKETS).astype(np.intp)
    age_days = (now - items[:, _PUBLISHED]) / SECONDS_PER_DAY
    price_log = math.nan if profile is None else profile.price_log
    recency = math.nan if profile is None else profile.recency
    return {
        "cat_affinity": _affinity_lookup(profile)[codes],
        "price_gap": np.abs(items[:, _PRICE] - price_log),
        "item_age_days": age_days,
        "age_x_recency": age_days * recency,
    }


def item_features(items: Floats) -> dict[str, Floats]:
    """ITEM features: columns of the fill-time matrix."""
    return {name: items[:, i] for i, name in enumerate(ITEM_COLUMNS) if name in FEATURE_KINDS}


def feature_matrix(items: Floats, ctx: UserContext, now: float, names: Sequence[str] = FEATURE_NAMES) -> Floats:
    """The full ``(n, len(names))`` matrix, for logging, training and the LightGBM fallback path."""
    columns: dict[str, Floats | float] = {**item_features(items), **user_features(ctx, now), **cross_features(items, ctx, now)}
    out = np.empty((items.shape[0], len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        out[:, j] = columns[name]
    return out
