"""Cache-Status (RFC 9211) rendering: one list member describing what this cache did."""

from __future__ import annotations

from edgeproxy.cache.phases import CachePhase
from edgeproxy.cache.record import record

CACHE_NAME = "edgeproxy"

_FWD = {
    CachePhase.MISS: "uri-miss",
    CachePhase.VARY_MISS: "vary-miss",
    CachePhase.EXPIRED: "stale",
    CachePhase.REVALIDATED: "stale",
    # RFC 9211 §2.2: stale-if-error forwarded the request and then used the stale copy.
    CachePhase.STALE: "stale",
    CachePhase.BYPASS: "bypass",
    CachePhase.HIT_FOR_MISS: "bypass",
    CachePhase.ERROR: "uri-miss",
}


def forwarded_because(phase: CachePhase) -> str:
    """RFC 9211 §2.2 ``fwd``: why a request in ``phase`` went to the origin."""
    return _FWD.get(phase, "miss")


@record
class CacheStatus:
    phase: CachePhase
    fwd_status: int | None = None
    """RFC 9211 §2.3: the status the origin answered with, when we forwarded."""
    ttl: float | None = None
    """§2.4: remaining freshness in seconds (negative when stale)."""
    stored: bool = False
    collapsed: bool = False
    forward_reason: str | None = None
    """Overrides the fwd parameter, e.g. ``method`` or ``request`` (§2.2)."""
    detail: str | None = None

    def render(self, name: str = CACHE_NAME) -> str:
        parts = [name]
        # §2.1: "hit" means the request was not forwarded (stale-while-revalidate refreshes
        # in the background, so its client was answered without forwarding).
        hit = self.phase in (CachePhase.HIT, CachePhase.STALE_UPDATING)
        if hit:
            parts.append("hit")
        elif self.phase is not CachePhase.ONLY_IF_CACHED:
            parts.append(f"fwd={self.forward_reason or forwarded_because(self.phase)}")
            if self.fwd_status is not None:
                parts.append(f"fwd-status={self.fwd_status}")
        if self.ttl is not None:
            parts.append(f"ttl={int(self.ttl)}")
        if self.stored:
            parts.append("stored")
        if self.collapsed:
            parts.append("collapsed")
        detail = self.detail or (self.phase.value if self.phase not in (CachePhase.HIT, CachePhase.MISS) else None)
        if detail:
            parts.append(f'detail="{_token_safe(detail)}"')
        return "; ".join(parts)


def _token_safe(text: str) -> str:
    """The detail is an sf-string (RFC 8941 §3.3.3): printable ASCII only, and we drop the two
    characters that would need escaping rather than escape them."""
    return "".join(ch for ch in text if " " <= ch <= "~" and ch not in '"\\')
