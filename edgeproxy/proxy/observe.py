"""After each reply: Prometheus metrics, the live stats behind /stats, and the access log.

A reply costs one list append here (two when it went to the origin). The batch is folded into
the metrics and the stats every ``FLUSH_INTERVAL`` seconds, and before either is read (``flush``):
counting a batch per phase, status class and histogram bucket costs a few increments, where
counting each request cost a locked increment per metric (a third of a cache hit's Python time)
and each miss a locked walk of the origin duration histogram. Formatting and writing the access
log happen in its background writer.
"""

from __future__ import annotations

import asyncio
import time

from edgeproxy.accesslog import AccessLog, AccessRecord
from edgeproxy.admin.stats import LiveStats, OriginOutcome
from edgeproxy.metrics import ProxyMetrics, observe_many
from edgeproxy.proxy.reply import Incoming, Reply

FLUSH_INTERVAL = 0.01
"""Seconds between folds of the batch: short, so that a fold (about 0.7 us a reply) never
holds the loop for long; also how far /metrics of another worker may lag."""
FLUSH_SIZE = 1024
"""Replies held at most before a fold, whatever the interval."""


class Observer:
    def __init__(self, metrics: ProxyMetrics, stats: LiveStats, access_log: AccessLog | None) -> None:
        self.metrics = metrics
        self.stats = stats
        self.access_log = access_log
        self._batch: list[tuple[str, int, float, str | None]] = []
        self._origin_batch: list[tuple[float, str, float | None, str | None]] = []
        """(when, origin, seconds, error kind) per reply that asked an origin."""

    def __call__(self, inc: Incoming, reply: Reply, seconds: float) -> None:
        key = inc.head.host + inc.head.target if reply.key_hash is not None else None
        batch = self._batch
        batch.append((reply.phase.value, reply.status, seconds, key))
        if reply.origin is not None:
            self._origin_batch.append((time.time(), reply.origin, reply.origin_time, reply.origin_error))
        if len(batch) >= FLUSH_SIZE:
            self.flush()
        if reply.collapsed or self.access_log is not None:
            self._details(inc, reply, key)

    def flush(self) -> None:
        """Fold the replies seen since the last flush into the metrics and the stats."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self.metrics.record_requests([(phase, status, seconds) for phase, status, seconds, _ in batch])
        self.stats.record_requests(time.time(), [(phase, seconds, key) for phase, _, seconds, key in batch])
        origins, self._origin_batch = self._origin_batch, []
        self._record_origins(origins)

    def _record_origins(self, origins: list[tuple[float, str, float | None, str | None]]) -> None:
        """Each origin fetch's outcome into the stats (in order: they count consecutive errors)
        and the metrics, with one histogram fold per origin."""
        durations: dict[str, list[float]] = {}
        for now, origin, seconds, error in origins:
            if error is not None:
                self.metrics.origin_errors[origin, error].inc()
                self.stats.record_origin(now, origin, OriginOutcome.ERROR, error)
            else:
                if seconds is not None:
                    durations.setdefault(origin, []).append(seconds)
                self.stats.record_origin(now, origin, OriginOutcome.OK)
        for origin, amounts in durations.items():
            observe_many(self.metrics.origin_duration[origin], amounts)

    async def flush_forever(self, interval: float = FLUSH_INTERVAL) -> None:
        """Background task for each worker: ``flush`` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.flush()

    def _details(self, inc: Incoming, reply: Reply, key: str | None) -> None:
        """What only some replies carry: collapsing, the access log."""
        if reply.collapsed:
            self.metrics.collapsed.inc()
        if self.access_log is not None:
            rank = reply.timings.get("rank")
            self.access_log.log(
                AccessRecord(
                    time=time.time(),
                    method=inc.head.method,
                    host=inc.head.host,
                    path=inc.head.path,
                    status=reply.status,
                    phase=reply.phase.value,
                    client=inc.client,
                    bytes=len(reply.body),
                    key_hash=reply.key_hash.hex() if reply.key_hash is not None else None,
                    ttl=round(reply.ttl, 3) if reply.ttl is not None else None,
                    origin_ms=round(reply.origin_time * 1000, 3) if reply.origin_time is not None else None,
                    rank_ms=round(rank * 1000, 3) if rank is not None else None,
                    extras={"detail": reply.detail} if reply.detail else {},
                )
            )
