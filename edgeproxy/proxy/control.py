"""The proxy's side of the admin API (``edgeproxy.admin.control.AdminControl``).

Purges become bans (``edgeproxy.cache.bans``) applied here at once and, with Redis, published
on the fleet bus so every process sharing the Redis applies them too; reloads and model
rollouts travel the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edgeproxy.admin.control import (
    HealthReport,
    HealthState,
    ModelCommand,
    ModelOutcome,
    ModelResult,
    PurgeOutcome,
    PurgeRequest,
    PurgeResult,
    ReloadOutcome,
    ReloadResult,
)
from edgeproxy.admin.stats import LiveStats
from edgeproxy.cache.bans import Ban, BanList, normalize_purge_target
from edgeproxy.metrics import ProxyMetrics
from edgeproxy.policies.reload import PolicyHolder
from edgeproxy.policies.reload import ReloadOutcome as PolicyReloadOutcome
from edgeproxy.proxy.edge import keyed_url

log = logging.getLogger("edgeproxy.control")

Publish = Callable[[str, dict[str, Any]], Awaitable[object]]
"""Send a message to the fleet (``FleetBus.publish``); raises when the fleet cannot be reached."""

_RELOAD_OUTCOMES = {
    PolicyReloadOutcome.APPLIED: ReloadOutcome.RELOADED,
    PolicyReloadOutcome.UNCHANGED: ReloadOutcome.UNCHANGED,
    PolicyReloadOutcome.REJECTED: ReloadOutcome.REJECTED,
}


class EdgeControl:
    def __init__(
        self,
        *,
        bans: BanList,
        policies: PolicyHolder,
        metrics: ProxyMetrics,
        stats: LiveStats,
        publish: Publish | None = None,
        extra_stats: Callable[[], Mapping[str, Any]] = dict,
        health_checks: Callable[[], Mapping[str, str]] = dict,
        models: Callable[[ModelCommand], Awaitable[ModelResult]] | None = None,
        flush_observations: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bans = bans
        self._flush_observations = flush_observations
        """Folds the replies observed but not yet counted into the metrics and stats (read here)."""
        self.policies = policies
        self._metrics = metrics
        self._stats = stats
        self._publish = publish
        self._extra_stats = extra_stats
        self._health_checks = health_checks
        self._models = models
        self._clock = clock
        self.on_reload: Callable[[], Awaitable[None]] | None = None
        """Extra work a reload triggers (re-reading a models directory)."""
        self.stats_source: Callable[[float], dict[str, Any]] = stats.snapshot
        """What ``/stats`` reports: this worker's window, or (multi-worker) the merged fleet view."""

    def apply_ban(self, ban: Ban) -> None:
        """Record a ban here (from this admin API or from a fleet message)."""
        self.bans.add(ban)
        mode = "soft" if ban.soft else "hard"
        for kind, count in (("url", len(ban.urls)), ("prefix", len(ban.prefixes)), ("tag", len(ban.tags)),
                            ("all", int(ban.everything))):
            if count:
                self._metrics.purges[kind, mode].inc(count)

    async def purge(self, request: PurgeRequest) -> PurgeResult:
        # A URL purge also names the URL as its policy keys it (sorted query, tracking params
        # stripped…), which is what stored entries carry.
        keyed = [keyed_url(self.policies.current, normalize_purge_target(url)) for url in request.urls]
        ban = Ban.create(
            self._clock(),
            urls=[*request.urls, *keyed],
            prefixes=request.prefixes,
            tags=request.tags,
            everything=request.all,
            soft=request.soft,
        )
        self.apply_ban(ban)
        selectors = len(request.urls) + len(ban.prefixes) + len(ban.tags) + int(ban.everything)
        outcome, detail = PurgeOutcome.LOCAL, "no Redis configured: this process is the whole fleet"
        if self._publish is not None:
            try:
                await self._publish("purge", ban.to_json())
                outcome, detail = PurgeOutcome.FLEET, "published to the fleet"
            except Exception as exc:  # the bus says why; the purge still holds here
                outcome, detail = PurgeOutcome.LOCAL_ONLY, f"fleet broadcast failed ({exc}); retry the purge"
        self._stats.record_purge(self._clock(), request.client, request.summary(), outcome.value)
        log.info("purge %s by %s: %s", request.summary(), request.client or "-", outcome.value)
        return PurgeResult(outcome, selectors, detail)

    async def reload_policies(self) -> ReloadResult:
        result = self.policies.reload()
        self._metrics.set_policy_version(self.policies.current.version)
        if self.on_reload is not None:
            await self.on_reload()
        if result.outcome is PolicyReloadOutcome.APPLIED and self._publish is not None:
            try:
                await self._publish("policy-reload", {"version": result.version})
            except Exception as exc:
                log.warning("policy reload applied here but not announced to the fleet: %s", exc)
        return ReloadResult(_RELOAD_OUTCOMES[result.outcome], result.version, "\n".join(map(str, result.problems)))

    async def model_command(self, command: ModelCommand) -> ModelResult:
        if self._models is None:
            return ModelResult(ModelOutcome.REJECTED, detail="this proxy runs without a model registry")
        return await self._models(command)

    def stats(self) -> Mapping[str, Any]:
        self._flush_observations()
        snapshot = self.stats_source(self._clock())
        snapshot["policy"] = {"version": self.policies.current.version}
        snapshot.update(self._extra_stats())
        return snapshot

    def health(self) -> HealthReport:
        checks = {"policies": self.policies.current.version, **self._health_checks()}
        degraded = any(value not in ("up", "none") for key, value in checks.items() if key == "redis")
        return HealthReport(HealthState.DEGRADED if degraded else HealthState.OK, checks)

    def metrics(self) -> bytes:
        self._flush_observations()
        return self._metrics.render()
