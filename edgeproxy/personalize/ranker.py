"""Per-request personalization of a prepared (cached) list: the API the proxy calls on a hit.

``rank`` runs inline on the event loop: no thread hop, because the whole job (user and cross
features, one batched score, argsort, a bytes join) costs tens of microseconds. It never fails a
request: no model, a passed deadline or any error yields the base body, counted by reason.

Anonymous users (no ``uid`` cookie, no ``x-user-id``) ARE ranked, with cold-start user features
and their request features (device, country, hour): the model learned what cold users click,
which beats the origin's order; the counters separate them (``users.anonymous``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np
from redis.exceptions import RedisError

from edgeproxy.cache.message import RequestHead
from edgeproxy.personalize.events import Click, EventBuffer, Impression, json_row
from edgeproxy.personalize.features import (
    Floats,
    UserContext,
    device_class,
    feature_matrix,
)
from edgeproxy.personalize.model import LoadedModel
from edgeproxy.personalize.prepared import Prepared
from edgeproxy.personalize.profiles import ProfileCache
from edgeproxy.personalize.registry import Arm, Registry
from edgeproxy.policies.cookies import parse_cookie_header
from edgeproxy.policies.model import PersonalizeSettings

log = logging.getLogger(__name__)
_USER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SHADOW_TOP_K = 10
SHADOW_TAU_CANDIDATES = 100
"""Kendall tau is quadratic: compare the shadow on the first candidates only."""


class RankOutcome(Enum):
    """How a personalized delivery ended; the value is the metrics / Server-Timing label."""

    RANKED = "ranked"
    FALLBACK_NO_MODEL = "no-model"
    FALLBACK_DEADLINE = "deadline"
    FALLBACK_ERROR = "error"


@dataclass(frozen=True, slots=True)
class RankResult:
    body: bytes
    """The reordered document, or the cached base body on any fallback."""
    outcome: RankOutcome
    model: str | None
    """``name-vN`` of the model that ranked (or was tried), None when there was none."""
    arm: Arm | None
    elapsed: float
    """Seconds spent in ``rank`` for the served order (shadow scoring excluded)."""
    impression_id: str | None = None
    """Set when this delivery was sampled into the impression log (clicks may quote it)."""


def cookie_value(header: str | None, name: str) -> str | None:
    """One cookie's value from a Cookie header (the policies' parser), unquoted."""
    value = parse_cookie_header(header).get(name)
    return value.strip('"') if value is not None else None


def _country(req: RequestHead) -> str | None:
    value = (req.header("cf-ipcountry") or req.header("x-country") or "").strip().upper()
    return value if len(value) == 2 and value.isalpha() else None


def top_k_overlap(a: Floats, b: Floats, k: int = SHADOW_TOP_K) -> float:
    """Share of the top ``k`` by ``a`` that is also in the top ``k`` by ``b``."""
    k = min(k, len(a))
    return len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k])) / k if k else 1.0


def kendall_tau(a: Floats, b: Floats) -> float:
    """Kendall's tau-a between two score vectors (1: same order, -1: reversed)."""
    n = len(a)
    if n < 2:
        return 1.0
    concordance = np.sign(a[:, None] - a[None, :]) * np.sign(b[:, None] - b[None, :])
    return float(concordance.sum() / (n * (n - 1)))


class Personalizer:
    """Holds the model registry, the profile cache and the impression log for one process."""

    def __init__(
        self,
        registry: Registry,
        profiles: ProfileCache,
        events: EventBuffer | None = None,
        impression_rate: float = 0.01,
        logged_top_k: int = 20,
        seed: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        self.profiles = profiles
        self.events = events
        self.impression_rate = impression_rate
        self.logged_top_k = logged_top_k
        self.counters: Counter[str] = Counter()
        """``outcome.<v>``, ``profile.<lookup>``, ``users.anonymous``, ``arm.<v>``, ``impressions.logged``."""
        self.shadow_stats: dict[str, float] = {"compared": 0, "errors": 0, "top_k_overlap_sum": 0.0, "kendall_tau_sum": 0.0}
        """Agreement of the shadow model with the served one; divide the sums by ``compared``."""
        self._random = random.Random(seed)
        self._clock = clock

    async def user_context(self, req: RequestHead, settings: PersonalizeSettings, now: float) -> UserContext:
        """Who is asking: id from the policy's cookie, else its header; profile bounded by a timeout."""
        user_id = cookie_value(req.header("cookie"), settings.user_cookie) or req.header(settings.user_header)
        if user_id is not None and not _USER_ID.fullmatch(user_id):
            self.counters["users.invalid-id"] += 1
            user_id = None
        profile = None
        if user_id is None:
            self.counters["users.anonymous"] += 1
        else:
            profile, lookup = await self.profiles.get(user_id, now)
            self.counters[f"profile.{lookup.value}"] += 1
        return UserContext(user_id=user_id, profile=profile, device=device_class(req.header("user-agent")), country=_country(req))

    def rank(self, prepared: Prepared, ctx: UserContext, settings: PersonalizeSettings, now: float) -> RankResult:
        """Reorder ``prepared``'s candidates for ``ctx`` within ``settings.deadline_ms``."""
        started = self._clock()
        selection = self.registry.select(settings.model, ctx.user_id)
        model = selection.model
        if model is None:
            return self._fallback(prepared, RankOutcome.FALLBACK_NO_MODEL, None, None, started)
        label = model.meta.label
        deadline = started + settings.deadline_ms / 1000.0
        if settings.deadline_ms <= 0:
            return self._fallback(prepared, RankOutcome.FALLBACK_DEADLINE, label, selection.arm, started)
        try:
            scores = model.score(prepared.rows, ctx, now, prepared.memo)
            order = np.argsort(-scores, kind="stable")
            body = prepared.body(order)
        except Exception:
            if self.counters[f"error.{label}"] == 0:
                log.exception("ranking with %s failed; serving the base order", label)
            self.counters[f"error.{label}"] += 1
            return self._fallback(prepared, RankOutcome.FALLBACK_ERROR, label, selection.arm, started)
        finished = self._clock()
        if finished > deadline:
            return self._fallback(prepared, RankOutcome.FALLBACK_DEADLINE, label, selection.arm, started)
        self.counters[f"outcome.{RankOutcome.RANKED.value}"] += 1
        self.counters[f"arm.{selection.arm.value}"] += 1
        if selection.shadow is not None and selection.shadow is not model:
            self._compare_shadow(selection.shadow, scores, prepared, ctx, now)
        impression_id = self._log_impression(prepared, order, ctx, model, now)
        return RankResult(body, RankOutcome.RANKED, label, selection.arm, finished - started, impression_id)

    def _fallback(self, prepared: Prepared, outcome: RankOutcome, label: str | None, arm: Arm | None, started: float) -> RankResult:
        self.counters[f"outcome.{outcome.value}"] += 1
        return RankResult(prepared.base, outcome, label, arm, self._clock() - started)

    def _compare_shadow(self, shadow: LoadedModel, served: Floats, prepared: Prepared, ctx: UserContext, now: float) -> None:
        try:
            other = shadow.score(prepared.rows, ctx, now, prepared.memo)
        except Exception:  # noqa: BLE001 - a broken shadow model is only counted
            self.shadow_stats["errors"] += 1
            return
        self.shadow_stats["compared"] += 1
        self.shadow_stats["top_k_overlap_sum"] += top_k_overlap(served, other)
        head = slice(0, SHADOW_TAU_CANDIDATES)
        self.shadow_stats["kendall_tau_sum"] += kendall_tau(served[head], other[head])

    def _log_impression(self, prepared: Prepared, order: np.ndarray, ctx: UserContext, model: LoadedModel, now: float) -> str | None:
        if self.events is None or ctx.user_id is None or self._random.random() >= self.impression_rate:
            return None
        top = order[: self.logged_top_k]
        rows = feature_matrix(prepared.rows[top], ctx, now, model.meta.features)
        impression = Impression(
            at=now,
            impression_id=uuid.uuid4().hex[:16],
            user_id=ctx.user_id,
            model=model.meta.label,
            items=tuple(prepared.item_ids[i] for i in top),
            features=tuple(json_row(r) for r in rows),
            feature_names=model.meta.features,
        )
        self.events.add(impression.to_event())
        self.counters["impressions.logged"] += 1
        return impression.impression_id

    def record_click(self, click: Click) -> None:
        """Queue a click from the feedback route (after ``parse_feedback`` and the rate limiter)."""
        if self.events is not None:
            self.events.add(click.to_event())
            self.counters["clicks.logged"] += 1

    async def flush_events(self) -> int:
        """Write queued impressions and clicks to the sink now."""
        return 0 if self.events is None else await self.events.flush()

    async def flush_forever(self, interval: float = 1.0) -> None:
        """Flush every ``interval`` seconds until cancelled (run it as a task for the app's life).

        A failed write loses that batch and is counted: the event log is best effort by design.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush_events()
            except (RedisError, OSError):
                self.counters["events.flush-errors"] += 1
