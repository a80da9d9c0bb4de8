"""The records the request driver exchanges with the server layer: a parsed request in, a reply out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from edgeproxy.cache.entry import CacheEntry
from edgeproxy.cache.message import RequestHead
from edgeproxy.cache.phases import CachePhase
from edgeproxy.cache.record import record
from edgeproxy.cache.status import CacheStatus


@record
class Incoming:
    """A parsed client request: the head the core reasons about plus what only I/O needs."""

    head: RequestHead
    client: str
    scheme: str = "http"
    body: AsyncIterator[bytes] | None = None


@record
class Reuse:
    """How long the very same request gets the very same reply (byte for byte, but for its
    Server-Timing duration): until ``until`` (wall clock), and while ``current()`` holds."""

    until: float
    current: Callable[[], bool]


@dataclass(slots=True)
class Reply:
    """What to send back. Exactly one of ``body`` and ``stream`` carries the payload."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    phase: CachePhase = CachePhase.MISS
    key_hash: bytes | None = None
    ttl: float | None = None
    origin_time: float | None = None
    detail: str | None = None
    collapsed: bool = False
    entry: CacheEntry | None = None
    """The stored object this reply was served from (personalization starts from it)."""
    cache_status: CacheStatus | None = None
    origin: str | None = None
    """The origin URL asked, when one was."""
    origin_error: str | None = None
    """UpstreamFailure kind when the origin could not answer (metrics, origin health)."""
    timings: dict[str, float] = field(default_factory=dict)
    reuse: Reuse | None = None
    """Set by the hit path when this reply may be replayed to an identical request."""
    fields: str | None = None
    """The header block already rendered (``server.render_fields``), in place of ``headers``:
    the hit path renders an object's block once per second of its age, not once per request."""
