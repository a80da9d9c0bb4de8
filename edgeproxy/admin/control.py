"""The contract between the admin HTTP API and the proxy it operates.

The admin app validates and authenticates; the proxy implements :class:`AdminControl` and does the
work (bans, pub/sub fan-out to the fleet, policy reload, model rollout). Every outcome is an enum
so the HTTP layer maps it to a status in one table.

``stats()`` schema (JSON object; keys the status page reads, all optional):
  ``requests_per_second``, ``hit_ratio`` (0..1 or null), ``latency_ms`` {``p50``,``p90``,``p99``},
  ``window_seconds``, ``requests``, ``phases`` {phase: count}, ``top_keys`` [{``key``,``count``}],
  ``origins`` [{``origin``,``health``,``errors``,``last_error``}], ``purges`` [{``at``,``client``,
  ``summary``,``outcome``}] — all produced by :meth:`edgeproxy.admin.stats.LiveStats.snapshot` —
  plus, from the proxy: ``redis`` {``state``}, ``policy`` {``version``}, ``models`` [{``name``,
  ``version``, ``canary``}], ``workers`` (int), ``accesslog_dropped`` (int).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """A validated purge. URLs and prefixes are absolute ``http(s)://host/path`` as the client sent
    them; matching them against stored entries (``host + path?query``) is the proxy's job."""

    urls: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    all: bool = False
    soft: bool = False
    """Soft purge: mark stale (still usable for stale-while-revalidate/-if-error) instead of deleting."""
    client: str = ""
    """Who asked (remote address), for the audit trail."""

    def summary(self) -> str:
        """Short human text for logs and the status page, e.g. ``soft tags=2 urls=1``."""
        parts = ["soft" if self.soft else "hard"]
        if self.all:
            parts.append("all")
        parts += [f"{name}={len(v)}" for name, v in
                  (("urls", self.urls), ("prefixes", self.prefixes), ("tags", self.tags)) if v]
        return " ".join(parts)


class PurgeOutcome(enum.Enum):
    FLEET = "fleet"
    """Applied here and published to every proxy sharing the Redis."""
    LOCAL = "local"
    """Applied here; no Redis configured, so this process is the whole fleet."""
    LOCAL_ONLY = "local-only"
    """Applied here but the fleet broadcast failed (Redis down): the caller must retry."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    outcome: PurgeOutcome
    selectors: int
    """How many bans were recorded (one per URL, prefix or tag; one for ``all``)."""
    detail: str = ""


class ReloadOutcome(enum.Enum):
    RELOADED = "reloaded"
    UNCHANGED = "unchanged"
    """The files hash to the active version; nothing to do."""
    REJECTED = "rejected"
    """The new files failed validation; the active policies stay in force."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    outcome: ReloadOutcome
    version: str
    """Version now in force (the old one when rejected)."""
    detail: str = ""
    """Validation errors (``file:line: message``) when rejected."""


class HealthState(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    """Serving, with a dependency down (e.g. Redis: running on L1 + origin)."""
    FAILING = "failing"
    """Cannot serve: restart or take out of rotation."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    state: HealthState
    checks: Mapping[str, str] = field(default_factory=dict)
    """Per dependency, e.g. ``{"redis": "up", "policies": "v3"}``."""


class ModelAction(enum.Enum):
    ACTIVATE = "activate"
    """Serve ``version`` to everyone."""
    CANARY = "canary"
    """Serve ``version`` to ``share`` of users, the active version to the rest."""
    ROLLBACK = "rollback"
    """Drop the canary, or return to the previously active version."""


@dataclass(frozen=True, slots=True)
class ModelCommand:
    model: str
    action: ModelAction
    version: str | None = None
    share: float | None = None
    client: str = ""


class ModelOutcome(enum.Enum):
    APPLIED = "applied"
    UNKNOWN_MODEL = "unknown-model"
    UNKNOWN_VERSION = "unknown-version"
    REJECTED = "rejected"
    """Valid request the registry refused (e.g. nothing to roll back to)."""
    UNAVAILABLE = "unavailable"
    """The registry's backend (Redis) did not answer; nothing changed, retry later."""


@dataclass(frozen=True, slots=True)
class ModelResult:
    outcome: ModelOutcome
    active_version: str | None = None
    detail: str = ""


class AdminControl(Protocol):
    """What the admin API needs from the running proxy."""

    async def purge(self, request: PurgeRequest) -> PurgeResult:
        """Record bans for the selectors and propagate them to the fleet."""
        ...

    async def reload_policies(self) -> ReloadResult:
        """Re-read the policy directory; keep the active set when the new one is invalid."""
        ...

    async def model_command(self, command: ModelCommand) -> ModelResult:
        """Activate, canary or roll back a ranking model version fleet-wide."""
        ...

    def stats(self) -> Mapping[str, Any]:
        """Live JSON counters (schema in this module's docstring)."""
        ...

    def health(self) -> HealthReport:
        """Liveness plus dependency state; must not block (report the last known Redis state)."""
        ...

    def metrics(self) -> bytes:
        """Prometheus text exposition (``ProxyMetrics.render()``)."""
        ...
