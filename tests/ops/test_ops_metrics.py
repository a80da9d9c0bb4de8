"""ProxyMetrics exposes exact counts for a scripted mix of traffic, in one process."""

from __future__ import annotations

import enum

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeproxy.metrics import CircuitState, ProxyMetrics, StoreSample, status_class


def samples(metrics: ProxyMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample in the rendered exposition, by (name, labels)."""
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[name, frozenset(labels.items())]


class Phase(enum.Enum):
    HIT = "hit"
    STALE_UPDATING = "stale-updating"


def test_a_scripted_request_mix_renders_exact_counts() -> None:
    m = ProxyMetrics()
    for phase, status, seconds in [("hit", 200, 0.0002)] * 3 + [("miss", 200, 0.03)] * 2 + [("stale", 200, 0.0003)]:
        m.record_request(phase, status, seconds)
    m.record_request("pass", 503, 0.2)
    got = samples(m)
    assert got["edgeproxy_requests_total", frozenset({("phase", "hit"), ("status_class", "2xx")})] == 3
    assert got["edgeproxy_requests_total", frozenset({("phase", "miss"), ("status_class", "2xx")})] == 2
    assert got["edgeproxy_requests_total", frozenset({("phase", "stale"), ("status_class", "2xx")})] == 1
    assert got["edgeproxy_requests_total", frozenset({("phase", "pass"), ("status_class", "5xx")})] == 1
    assert value(m, "edgeproxy_request_duration_seconds_count", phase="hit") == 3
    assert value(m, "edgeproxy_request_duration_seconds_bucket", phase="hit", le="0.00025") == 3
    assert value(m, "edgeproxy_request_duration_seconds_bucket", phase="miss", le="0.025") == 0
    assert value(m, "edgeproxy_request_duration_seconds_bucket", phase="miss", le="0.05") == 2
    assert value(m, "edgeproxy_request_duration_seconds_sum", phase="miss") == pytest.approx(0.06)


def test_enum_phases_label_by_value_and_children_are_bound_once() -> None:
    m = ProxyMetrics()
    m.record_request(Phase.STALE_UPDATING, 200, 0.001)
    m.record_request(Phase.STALE_UPDATING, 200, 0.001)
    assert value(m, "edgeproxy_requests_total", phase="stale-updating", status_class="2xx") == 2
    assert m.requests[Phase.STALE_UPDATING, "2xx"] is m.requests[Phase.STALE_UPDATING, "2xx"]
    assert len(m.requests) == 1


@pytest.mark.parametrize(
    ("status", "label"), [(200, "2xx"), (304, "3xx"), (404, "4xx"), (599, "5xx"), (42, "1xx"), (999, "5xx")]
)
def test_status_class_is_bounded(status: int, label: str) -> None:
    assert status_class(status) == label


def test_origin_l2_purge_personalization_and_feedback_metrics() -> None:
    m = ProxyMetrics()
    m.origin_duration["http://origin:8000"].observe(0.012)
    m.origin_errors["http://origin:8000", "timeout"].inc()
    m.origin_errors["http://origin:8000", "timeout"].inc()
    m.l2_duration["get"].observe(0.0004)
    m.l2_errors["get", "timeout"].inc()
    m.l2_circuit.set(CircuitState.OPEN)
    m.collapsed.inc(4)
    m.purges["tag", "soft"].inc()
    m.rank_duration["demo-ranker"].observe(0.0008)
    m.personalize_fallbacks["deadline"].inc()
    m.feedback["click"].inc(3)
    assert value(m, "edgeproxy_origin_request_duration_seconds_count", origin="http://origin:8000") == 1
    assert value(m, "edgeproxy_origin_errors_total", origin="http://origin:8000", kind="timeout") == 2
    assert value(m, "edgeproxy_l2_duration_seconds_count", op="get") == 1
    assert value(m, "edgeproxy_l2_errors_total", op="get", kind="timeout") == 1
    assert value(m, "edgeproxy_l2_circuit_state") == 2
    assert value(m, "edgeproxy_collapsed_requests_total") == 4
    assert value(m, "edgeproxy_purges_total", kind="tag", mode="soft") == 1
    assert value(m, "edgeproxy_personalize_duration_seconds_bucket", model="demo-ranker", le="0.001") == 1
    assert value(m, "edgeproxy_personalize_fallbacks_total", reason="deadline") == 1
    assert value(m, "edgeproxy_feedback_events_total", kind="click") == 3


def test_version_info_marks_only_the_active_version() -> None:
    m = ProxyMetrics()
    m.set_policy_version("a1")
    m.set_policy_version("b2")
    m.set_model_version("demo-ranker", "v1")
    m.set_model_version("demo-ranker", "v2")
    m.set_model_version("other", "v1")
    assert value(m, "edgeproxy_policy_version_info", version="a1") == 0
    assert value(m, "edgeproxy_policy_version_info", version="b2") == 1
    assert value(m, "edgeproxy_model_version_info", model="demo-ranker", version="v1") == 0
    assert value(m, "edgeproxy_model_version_info", model="demo-ranker", version="v2") == 1
    assert value(m, "edgeproxy_model_version_info", model="other", version="v1") == 1


def test_l1_gauges_are_sampled_from_stores_at_render_time() -> None:
    m = ProxyMetrics()
    state = {"bytes": 1000, "objects": 3, "evictions": 5}
    m.add_store_source(lambda: StoreSample(state["bytes"], state["objects"], state["evictions"]))
    assert value(m, "edgeproxy_l1_bytes") == 1000
    assert value(m, "edgeproxy_l1_objects") == 3
    assert value(m, "edgeproxy_l1_evictions_total") == 5
    state.update(bytes=400, objects=1, evictions=9)
    assert value(m, "edgeproxy_l1_bytes") == 400
    assert value(m, "edgeproxy_l1_evictions_total") == 9, "the counter follows the store's running total"


def test_every_metric_has_help_text() -> None:
    text = ProxyMetrics().render().decode()
    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) >= 17
    assert all(len(line.split(" ", 3)[3]) > 20 for line in helps)
