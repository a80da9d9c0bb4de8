"""Replaying a hit: for request bytes seen a moment ago, the response bytes written then.

A fresh hit's reply is a function of the request bytes and of state the edge vouches for
(:class:`~edgeproxy.proxy.reply.Reuse`): identical bytes get an identical reply until Age, ttl
or Date tick over, or until something changes (a purge, a reload, an eviction, a new object).
Within that window the server answers identical request bytes without parsing, routing or
rendering them again: they were parsed and checked by llhttp and routed when first seen, and
would be again in exactly the same way. The bytes written differ from a full answer only in the
Server-Timing duration.

Memory: a remembered reply holds its body (bodies up to ``MAX_BODY``, ``CAPACITY`` replies), the
same bytes object the L1 entry holds; every reply expires within a second, and expired ones are
swept whenever the memo is full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeproxy.cache.message import RequestHead
from edgeproxy.proxy.reply import Reply

MAX_REQUEST = 4096
"""Request heads longer than this (bytes) are not remembered."""
MAX_BODY = 64 * 1024
"""Replies with larger bodies are not remembered."""
CAPACITY = 1024
"""Distinct request byte strings remembered per worker."""


@dataclass(frozen=True, slots=True)
class Replay:
    before: bytes
    """The response head up to the Server-Timing duration."""
    after: bytes
    """The rest of the head, after the duration."""
    body: bytes
    head: RequestHead
    """The request as parsed when first seen (for metrics and the access log)."""
    reply: Reply
    """The reply as the edge gave it (for metrics and the access log)."""
    until: float
    current: Callable[[], bool]


class ReplayCache:
    """Remembers a reply only for request bytes already seen once before (a doorkeeper, as in
    TinyLFU): traffic whose requests never repeat byte for byte pays one set lookup, not a
    render and a memo entry per request."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._memo: dict[bytes, Replay] = {}
        self._seen: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._memo)

    def get(self, request: bytes, now: float) -> Replay | None:
        """What to write for ``request``, or None when it must be answered in full."""
        found = self._memo.get(request)
        if found is None:
            return None
        if now >= found.until or not found.current():
            del self._memo[request]
            return None
        return found

    def wants(self, request: bytes) -> bool:
        """Whether a reply to ``request`` is worth remembering: it was seen before (and is now)."""
        if len(request) > MAX_REQUEST:
            return False
        seen = self._seen
        if request in seen:
            return True
        if len(seen) >= self.capacity * 4:
            seen.clear()
        seen.add(request)
        return False

    def put(self, request: bytes, replay: Replay, now: float) -> None:
        if len(request) > MAX_REQUEST or len(replay.body) > MAX_BODY or now >= replay.until:
            return
        memo = self._memo
        if len(memo) >= self.capacity:
            for stale in [key for key, kept in memo.items() if now >= kept.until]:
                del memo[stale]
            if len(memo) >= self.capacity:
                memo.clear()
        memo[request] = replay
