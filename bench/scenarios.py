"""The named benchmark scenarios: a workload plus what happens to the system during the run."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from bench.workload import Kind, Workload


class Disruption(enum.Enum):
    """Something done to the system under load, at a fixed point of the run."""

    NONE = "none"
    PURGE_STORM = "purge-storm"
    """Prefix purges through the admin API, several per second, for the whole run."""
    ORIGIN_DOWN = "origin-down"
    """The origin is killed at ``DISRUPT_AT`` of the run: hits and stale objects keep serving."""
    REDIS_DOWN = "redis-down"
    """The L2 Redis is killed at ``DISRUPT_AT`` of the run: the proxy must degrade to L1 + origin."""


DISRUPT_AT = 0.4
PURGE_EVERY_S = 0.25


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    workload: Workload
    disruption: Disruption = Disruption.NONE
    redis: bool = False
    peers: bool = True
    """Whether nginx/Varnish can serve it comparably (no personalization, no admin API, no Redis)."""

    @property
    def admin(self) -> bool:
        return self.disruption is Disruption.PURGE_STORM


# A smaller catalog for disruption runs: warm enough within a short run that stale serving shows.
_WARM_ZIPF = Workload(Kind.ZIPF, catalog=2_000, alpha=1.0)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hit-2k", "pure cache hits on 16 URLs of 2 KB JSON", Workload(Kind.FIXED, blob_size=2048)),
        Scenario("hit-2k-distinct", "hit-2k, every request with its own X-Request-Id (nothing replayed)",
                 Workload(Kind.FIXED, blob_size=2048, request_ids=True)),
        Scenario("hit-50k", "pure cache hits on 16 URLs of 50 KB JSON", Workload(Kind.FIXED, blob_size=51_200)),
        Scenario("miss", "every request a new 2 KB URL: proxy + origin cost", Workload(Kind.UNIQUE, blob_size=2048)),
        Scenario("zipf", "100k URLs, Zipf popularity, mixed sizes (median 4 KB)", Workload(Kind.ZIPF)),
        Scenario("zipf-l2", "zipf, edgeproxy's workers sharing a Redis L2 (peers as in zipf)", Workload(Kind.ZIPF),
                 redis=True),
        Scenario("personalized", "demo item lists re-ranked per user (uid cookie, 10k users)",
                 Workload(Kind.PERSONALIZED), peers=False),
        Scenario("purge-storm", "Zipf load while prefix purges arrive every 250 ms", _WARM_ZIPF,
                 Disruption.PURGE_STORM, peers=False),
        Scenario("origin-down", "Zipf load; origin killed at 40 % of the run", _WARM_ZIPF,
                 Disruption.ORIGIN_DOWN),
        Scenario("redis-down", "Zipf load with Redis L2; Redis killed at 40 % of the run", _WARM_ZIPF,
                 Disruption.REDIS_DOWN, redis=True, peers=False),
    )
}


def get_scenario(name: str, *, alpha: float | None = None) -> Scenario:
    """The scenario called ``name``, with the Zipf exponent overridden when ``alpha`` is given."""
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
    if alpha is None:
        return scenario
    return replace(scenario, workload=replace(scenario.workload, alpha=alpha))
