"""Every Prometheus metric the proxy exports, defined once, with hot-path handles pre-bound.

Multi-worker: each worker writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client multiprocess mode), and any process renders the sum over all workers, so
``/metrics`` reports the fleet member, not whichever worker answered. The supervisor calls
:func:`enable_multiprocess` before it creates :class:`ProxyMetrics` or forks workers, and
:func:`mark_worker_dead` when a worker exits.

Hot path: the proxy never calls ``.labels()`` per request. Label children are bound once and cached
in :class:`Bound` maps, so recording a request is one dict lookup plus the increment.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import math
import os
import shutil
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content-Type of :meth:`ProxyMetrics.render` output (Prometheus text format 0.0.4)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
"""Seconds. Starts at 100 µs because a cache hit is served in well under a millisecond."""

RANK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025)
"""Seconds. Personalization runs against a deadline of a few milliseconds."""

Child = TypeVar("Child")


class Bound(dict[Hashable, Child], Generic[Child]):
    """Label children bound on first use and cached, keyed by anything hashable.

    Keys may be strings, enums (their ``.value`` becomes the label) or tuples of those for
    multi-label metrics; the first use of a key pays for ``labels()``, every later use is a dict hit.
    """

    def __init__(self, bind: Callable[..., Child]) -> None:
        super().__init__()
        self._bind = bind

    def __missing__(self, key: Hashable) -> Child:
        parts = key if isinstance(key, tuple) else (key,)
        child = self[key] = self._bind(*(_label(p) for p in parts))
        return child


def _label(value: object) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


_STATUS_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe`` each amount, with one increment per bucket rather than per amount.

    prometheus_client has no bulk observe; this writes what ``observe`` writes (``_sum`` and the
    non-cumulative ``_buckets``, the first bound >= amount), through the same value objects,
    so multiprocess mode sees it too. tests/ops/test_ops_metrics_batch.py holds it to ``observe``.
    """
    bounds = histogram._upper_bounds
    buckets = histogram._buckets
    for index, n in collections.Counter([bisect_left(bounds, amount) for amount in amounts]).items():
        buckets[index].inc(n)
    histogram._sum.inc(math.fsum(amounts))


def status_class(status: int) -> str:
    """``1xx`` … ``5xx``: the status label, bounded to five values whatever the origin sends."""
    return _STATUS_CLASSES[min(status // 100, 5)]


class CircuitState(enum.IntEnum):
    """L2 circuit-breaker state as a gauge value; the fleet view takes the worst (max) worker."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, slots=True)
class StoreSample:
    """What an L1 store reports at sampling time; ``evictions`` is its running total."""

    bytes: int
    objects: int
    evictions: int


class ProxyMetrics:
    """All proxy metrics on one registry. Create one per process (after :func:`enable_multiprocess`
    when running several workers) and share it through the app state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # *_created series double the scrape size and do not exist in multiprocess mode; dropping
        # them keeps single- and multi-worker output alike.
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        requests = Counter(
            "edgeproxy_requests", "Client requests by cache phase (hit, miss, stale, pass, …) and status class.",
            ["phase", "status_class"], registry=r,
        )
        self.requests: Bound[Counter] = Bound(requests.labels)
        """``requests[phase, status_class(status)].inc()``."""
        duration = Histogram(
            "edgeproxy_request_duration_seconds", "Time from request head to response sent, by cache phase.",
            ["phase"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.request_duration: Bound[Histogram] = Bound(duration.labels)

        origin_duration = Histogram(
            "edgeproxy_origin_request_duration_seconds", "Upstream fetch time until the response head arrived.",
            ["origin"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.origin_duration: Bound[Histogram] = Bound(origin_duration.labels)
        origin_errors = Counter(
            "edgeproxy_origin_errors", "Failed upstream fetches by origin and kind (connect, timeout, reset, 5xx).",
            ["origin", "kind"], registry=r,
        )
        self.origin_errors: Bound[Counter] = Bound(origin_errors.labels)

        # Gauges are per worker; livesum drops the files of dead workers and adds the live ones.
        self.l1_bytes = Gauge("edgeproxy_l1_bytes", "Bytes held by the in-memory (L1) cache.",
                              multiprocess_mode="livesum", registry=r)
        self.l1_objects = Gauge("edgeproxy_l1_objects", "Objects held by the in-memory (L1) cache.",
                                multiprocess_mode="livesum", registry=r)
        self.l1_evictions = Counter("edgeproxy_l1_evictions", "Objects evicted from L1 to stay within its byte bound.",
                                    registry=r)

        l2_duration = Histogram(
            "edgeproxy_l2_duration_seconds", "Redis (L2) operation time by operation (get, put, delete, publish).",
            ["op"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.l2_duration: Bound[Histogram] = Bound(l2_duration.labels)
        l2_errors = Counter(
            "edgeproxy_l2_errors", "Redis (L2) failures by operation and kind (timeout, connection, circuit_open).",
            ["op", "kind"], registry=r,
        )
        self.l2_errors: Bound[Counter] = Bound(l2_errors.labels)
        self.l2_circuit = Gauge(
            "edgeproxy_l2_circuit_state", "L2 circuit breaker: 0 closed, 1 half-open, 2 open (worst worker).",
            multiprocess_mode="livemax", registry=r,
        )

        self.collapsed = Counter(
            "edgeproxy_collapsed_requests",
            "Requests that waited for another request's origin fetch instead of their own.", registry=r,
        )
        purges = Counter(
            "edgeproxy_purges", "Purges applied by selector kind (url, prefix, tag, all) and mode (hard, soft).",
            ["kind", "mode"], registry=r,
        )
        self.purges: Bound[Counter] = Bound(purges.labels)

        self._policy_version = Gauge(
            "edgeproxy_policy_version_info", "Active policy set version (value 1 on the active one).",
            ["version"], multiprocess_mode="livemax", registry=r,
        )
        self._model_version = Gauge(
            "edgeproxy_model_version_info", "Active ranking model version per model (value 1 on the active one).",
            ["model", "version"], multiprocess_mode="livemax", registry=r,
        )
        self._active_policy: str | None = None
        self._active_models: dict[str, str] = {}

        rank_duration = Histogram(
            "edgeproxy_personalize_duration_seconds", "Time to re-rank one response (features, predict, reassemble).",
            ["model"], buckets=RANK_BUCKETS, registry=r,
        )
        self.rank_duration: Bound[Histogram] = Bound(rank_duration.labels)
        fallbacks = Counter(
            "edgeproxy_personalize_fallbacks", "Responses served in base order instead of ranked, by reason "
            "(deadline, error, no-model).", ["reason"], registry=r,
        )
        self.personalize_fallbacks: Bound[Counter] = Bound(fallbacks.labels)
        feedback = Counter("edgeproxy_feedback_events", "Logged ranking feedback events by kind (impression, click).",
                           ["kind"], registry=r)
        self.feedback: Bound[Counter] = Bound(feedback.labels)

        self._store_sources: list[Callable[[], StoreSample]] = []
        self._evictions_seen = 0

    def record_request(self, phase: Hashable, status: int, seconds: float) -> None:
        """Count one finished client request and its duration."""
        self.record_requests([(phase, status, seconds)])

    def record_requests(self, batch: Sequence[tuple[Hashable, int, float]]) -> None:
        """Count finished client requests and their durations: one increment per distinct
        (phase, status class) and per histogram bucket, however many requests the batch holds."""
        for (phase, status), n in collections.Counter([(phase, status) for phase, status, _ in batch]).items():
            self.requests[phase, status_class(status)].inc(n)
        durations: dict[Hashable, list[float]] = {}
        for phase, _, seconds in batch:
            durations.setdefault(phase, []).append(seconds)
        for phase, amounts in durations.items():
            observe_many(self.request_duration[phase], amounts)

    def set_policy_version(self, version: str) -> None:
        """Mark ``version`` as this worker's active policy set (the previous one drops to 0)."""
        if self._active_policy is not None and self._active_policy != version:
            self._policy_version.labels(self._active_policy).set(0)
        self._policy_version.labels(version).set(1)
        self._active_policy = version

    def set_model_version(self, model: str, version: str) -> None:
        """Mark ``version`` as the active version of ``model`` in this worker."""
        previous = self._active_models.get(model)
        if previous is not None and previous != version:
            self._model_version.labels(model, previous).set(0)
        self._model_version.labels(model, version).set(1)
        self._active_models[model] = version

    def add_store_source(self, source: Callable[[], StoreSample]) -> None:
        """Register an L1 store to be sampled by :meth:`refresh` (gauges are read, not pushed per put)."""
        self._store_sources.append(source)

    def refresh(self) -> None:
        """Copy the registered stores' sizes into the L1 gauges and the eviction counter.

        Runs at scrape time in the rendering process and every second in each worker
        (:meth:`refresh_forever`), because in multiprocess mode the scraping process cannot call
        back into the other workers' stores.
        """
        samples = [source() for source in self._store_sources]
        if not samples:
            return
        self.l1_bytes.set(sum(s.bytes for s in samples))
        self.l1_objects.set(sum(s.objects for s in samples))
        evictions = sum(s.evictions for s in samples)
        if evictions > self._evictions_seen:
            self.l1_evictions.inc(evictions - self._evictions_seen)
        self._evictions_seen = evictions

    async def refresh_forever(self, interval: float = 1.0) -> None:
        """Background task for each worker: :meth:`refresh` every ``interval`` seconds until cancelled."""
        while True:
            self.refresh()
            await asyncio.sleep(interval)

    def render(self) -> bytes:
        """The Prometheus text exposition: all workers summed in multiprocess mode, else this registry."""
        self.refresh()
        path = os.environ.get(MULTIPROC_ENV)
        if not path:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=path)
        return generate_latest(merged)


def enable_multiprocess(path: str) -> None:
    """Switch this process (and the workers it will start) to multiprocess metrics in ``path``.

    Called by the supervisor before any :class:`ProxyMetrics` exists: it empties the directory so
    a previous run's counters are not summed in, exports ``PROMETHEUS_MULTIPROC_DIR`` for child
    processes, and re-selects prometheus_client's value class, which the library otherwise fixes
    from the environment at import time (too early when the CLI has already imported this module).
    """
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    os.environ[MULTIPROC_ENV] = path
    values.ValueClass = values.get_value_class()


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (L1 size, circuit, versions); its counters stay summed."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)
