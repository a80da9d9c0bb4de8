"""Operator-tunable knobs the core applies when deciding storability and freshness.

A policy owns one of these; the core receives it as a plain argument and never imports policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

SetCookieMode = Literal["pass", "strip"]


@dataclass(frozen=True, slots=True)
class CacheRules:
    default_ttl: float | None = None
    """Freshness lifetime when the origin gives no explicit one (replaces the §4.2.2 heuristic)."""
    min_ttl: float | None = None
    """Clamp: explicit freshness below this is raised (never applied to no-store/private)."""
    max_ttl: float | None = None
    """Clamp: freshness above this is lowered."""
    force_ttl: float | None = None
    """Override the origin's freshness entirely (with care: it ignores no-cache/max-age, not no-store)."""
    negative_ttl: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    """Status -> TTL for error statuses (404, 5xx) the origin did not mark cacheable."""
    hit_for_miss: float = 10.0
    """How long to remember that a key was uncacheable, so its requests skip collapsing."""
    stale_while_revalidate: float | None = None
    """RFC 5861 window to use when the origin sends none."""
    stale_if_error: float | None = None
    """RFC 5861 window to use when the origin sends none."""
    stale_if_disconnected: float = 10.0
    """RFC 9111 §4.2.4: how long past freshness a stale copy may answer when the origin cannot be
    reached at all (refused, reset, timed out); like Varnish's default grace. 0 turns it off."""
    max_object_size: int = 8 * 1024 * 1024
    """Bodies above this are streamed through and not stored."""
    set_cookie: SetCookieMode = "pass"
    """Response with Set-Cookie: ``pass`` = do not store; ``strip`` = remove Set-Cookie and store."""
    cache_errors: bool = False
    """Store the errors a client can provoke (400, 403, 413, 429, 431, 5xx) when they carry explicit
    freshness; off by default against poisoning. Other 4xx are stored by their freshness anyway."""
