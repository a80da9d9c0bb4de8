"""After each reply: Prometheus metrics, the live stats behind /stats, and the access log.

Everything here is O(1) appends and counter increments; formatting and writing happen
elsewhere (the access log's background writer, the scrape)."""

from __future__ import annotations

import time

from edgeproxy.accesslog import AccessLog, AccessRecord
from edgeproxy.admin.stats import LiveStats, OriginOutcome
from edgeproxy.metrics import ProxyMetrics
from edgeproxy.proxy.edge import Incoming, Reply


class Observer:
    def __init__(self, metrics: ProxyMetrics, stats: LiveStats, access_log: AccessLog | None) -> None:
        self.metrics = metrics
        self.stats = stats
        self.access_log = access_log

    def __call__(self, inc: Incoming, reply: Reply, seconds: float) -> None:
        now = time.time()
        phase = reply.phase.value
        self.metrics.record_request(phase, reply.status, seconds)
        key = reply.key_hash.hex() if reply.key_hash is not None else None
        self.stats.record_request(now, phase, seconds, key=inc.head.host + inc.head.target if key else None)
        if reply.collapsed:
            self.metrics.collapsed.inc()
        if reply.origin is not None:
            if reply.origin_error is not None:
                self.metrics.origin_errors[reply.origin, reply.origin_error].inc()
                self.stats.record_origin(now, reply.origin, OriginOutcome.ERROR, reply.origin_error)
            else:
                if reply.origin_time is not None:
                    self.metrics.origin_duration[reply.origin].observe(reply.origin_time)
                self.stats.record_origin(now, reply.origin, OriginOutcome.OK)
        rank = reply.timings.get("rank")
        if self.access_log is not None:
            self.access_log.log(
                AccessRecord(
                    time=now,
                    method=inc.head.method,
                    host=inc.head.host,
                    path=inc.head.path,
                    status=reply.status,
                    phase=phase,
                    client=inc.client,
                    bytes=len(reply.body),
                    key_hash=key,
                    ttl=round(reply.ttl, 3) if reply.ttl is not None else None,
                    origin_ms=round(reply.origin_time * 1000, 3) if reply.origin_time is not None else None,
                    rank_ms=round(rank * 1000, 3) if rank is not None else None,
                    extras={"detail": reply.detail} if reply.detail else {},
                )
            )
