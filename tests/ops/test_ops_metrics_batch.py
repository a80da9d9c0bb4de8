"""Replies are counted in batches; what /metrics and /stats report is exactly what per-request
counting would have reported."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edgeproxy.admin.stats import LiveStats, OriginHealth
from edgeproxy.cache.message import RequestHead
from edgeproxy.cache.phases import CachePhase
from edgeproxy.metrics import LATENCY_BUCKETS, ProxyMetrics, observe_many
from edgeproxy.proxy.observe import Observer
from edgeproxy.proxy.reply import Incoming, Reply
from tests.ops.test_ops_metrics import samples, value

durations = st.lists(
    st.one_of(st.sampled_from([0.0, *LATENCY_BUCKETS, 11.0]), st.floats(min_value=0, max_value=20)), max_size=60
)


def exposition(amounts: list[float], *, batched: bool) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    histogram = Histogram("d", "durations", buckets=LATENCY_BUCKETS, registry=registry)
    if batched:
        observe_many(histogram, amounts)
    else:
        for amount in amounts:
            histogram.observe(amount)
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@given(durations)
def test_observe_many_exports_what_observing_one_by_one_exports(amounts: list[float]) -> None:
    # Bounds themselves included: a value equal to a bound belongs to that bucket (le = "<=").
    batched, one_by_one = exposition(amounts, batched=True), exposition(amounts, batched=False)
    assert batched.keys() == one_by_one.keys()
    for name, le in batched:
        assert batched[name, le] == pytest.approx(one_by_one[name, le], rel=1e-12), (name, le)


def test_replies_are_counted_exactly_once_flushed() -> None:
    metrics, stats = ProxyMetrics(), LiveStats()
    observer = Observer(metrics, stats, access_log=None)
    inc = Incoming(RequestHead("GET", "shop.example", "/a"), client="127.0.0.1")
    hit = Reply(200, [], phase=CachePhase.HIT, key_hash=b"k" * 16)
    for _ in range(3):
        observer(inc, hit, 0.0002)
    observer(inc, Reply(502, [], phase=CachePhase.ERROR), 0.02)
    assert ("edgeproxy_requests_total", frozenset({("phase", "hit"), ("status_class", "2xx")})) not in samples(metrics)

    observer.flush()
    assert value(metrics, "edgeproxy_requests_total", phase="hit", status_class="2xx") == 3
    assert value(metrics, "edgeproxy_requests_total", phase="error", status_class="5xx") == 1
    assert value(metrics, "edgeproxy_request_duration_seconds_bucket", phase="hit", le="0.00025") == 3
    snapshot = stats.snapshot(time.time())
    assert snapshot["requests"] == 4
    assert snapshot["top_keys"][0]["key"] == "shop.example/a" and snapshot["top_keys"][0]["count"] == 3
    observer.flush()  # an empty batch changes nothing
    assert value(metrics, "edgeproxy_requests_total", phase="hit", status_class="2xx") == 3


def test_origin_fetches_are_counted_in_order_once_flushed() -> None:
    metrics, stats = ProxyMetrics(), LiveStats()
    observer = Observer(metrics, stats, access_log=None)
    inc = Incoming(RequestHead("GET", "shop.example", "/a"), client="127.0.0.1")
    origin = "http://origin:8000"
    for kind in ("timeout", "timeout", None):
        reply = Reply(200 if kind is None else 504, [], key_hash=b"k" * 16, origin=origin)
        reply.origin_time, reply.origin_error = (0.003, None) if kind is None else (None, kind)
        observer(inc, reply, 0.004)
    observer.flush()
    assert value(metrics, "edgeproxy_origin_errors_total", origin=origin, kind="timeout") == 2
    assert value(metrics, "edgeproxy_origin_request_duration_seconds_count", origin=origin) == 1
    # The success came last, so the origin is degraded (recent errors), not down.
    assert stats.origin_health(origin, time.time()) is OriginHealth.DEGRADED
