"""Outcome enums: what the cache did with a request, and why something was not stored.

Each value renders the short string used in logs, metrics labels and the Cache-Status detail.
"""

from __future__ import annotations

from enum import Enum


class CachePhase(str, Enum):
    HIT = "hit"
    """Served a fresh stored response."""
    MISS = "miss"
    """Nothing usable stored; fetched from the origin."""
    VARY_MISS = "vary-miss"
    """A response for the URL is stored, but not for this request's Vary'd headers."""
    EXPIRED = "expired"
    """A stale stored response was validated and the origin sent a full new response."""
    REVALIDATED = "revalidated"
    """A stale stored response was validated with a 304 and served."""
    STALE = "stale"
    """Served stale because the origin failed (RFC 5861 stale-if-error)."""
    STALE_UPDATING = "stale-updating"
    """Served stale while a background refresh runs (RFC 5861 stale-while-revalidate)."""
    BYPASS = "bypass"
    """Not looked up: a recv rule or the method passes the request to the origin."""
    HIT_FOR_MISS = "hit-for-miss"
    """Recently seen as uncacheable: forwarded without collapsing."""
    ONLY_IF_CACHED = "only-if-cached"
    """RFC 9111 §5.2.1.7: nothing suitable stored; answered 504 without contacting the origin."""
    ERROR = "error"
    """The origin failed and nothing stale could be served."""


class NoCacheReason(str, Enum):
    NO_STORE = "no-store"
    PRIVATE = "private"
    AUTHORIZATION = "authorization"
    SET_COOKIE = "set-cookie"
    VARY_STAR = "vary-star"
    METHOD = "method"
    STATUS = "status"
    """Status code not cacheable (or an error status with caching of errors off)."""
    NO_FRESHNESS = "no-freshness"
    """No explicit freshness and not heuristically cacheable."""
    REQUEST_NO_STORE = "request-no-store"
    TOO_LARGE = "too-large"
    TRUNCATED = "truncated"
    STORAGE_ERROR = "storage-error"
    PARTIAL = "partial"
    """206 / Content-Range responses are not assembled or stored."""
