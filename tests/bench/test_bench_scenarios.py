"""Short, bounded smoke runs of every scenario end to end (real origin, proxy, Redis, peers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import report, results
from bench.peers import Peer
from bench.runner import Generator, Leg, RunConfig, Target, run_leg
from bench.scenarios import SCENARIOS, Disruption, get_scenario

pytestmark = pytest.mark.slow


def smoke_config(name: str, generator: Generator = Generator.AUTO, duration: float = 1.0) -> RunConfig:
    scenario = get_scenario(name)
    # A request budget could end the run before a disruption is due; the duration bounds those.
    budget = 2000 if scenario.disruption is Disruption.NONE else None
    return RunConfig(
        scenario=scenario, duration=duration, connections=4, workers=1, processes=1, seed=7,
        generator=generator, cache_bytes=16 * 2**20, max_requests=budget,
    )


@pytest.fixture(scope="module")
def origin_down_leg() -> Leg:
    """Shared by the stale-serving test and the report test: one leg, two readings."""
    return run_leg(smoke_config("origin-down", duration=2.0), Target.EDGEPROXY)


def kill_time(leg: Leg) -> float:
    return next(t for t, what in leg.events if "killed" in what)


def test_hit_scenario_is_all_hits_after_warm_up() -> None:
    leg = run_leg(smoke_config("hit-2k"), Target.EDGEPROXY)
    assert leg.load.requests > 0 and leg.load.errors == 0
    assert leg.load.hit_ratio == 1.0


def test_distinct_hit_scenario_is_all_hits_with_a_request_id_each() -> None:
    leg = run_leg(smoke_config("hit-2k-distinct"), Target.EDGEPROXY)
    assert leg.load.requests > 0 and leg.load.errors == 0 and leg.load.hit_ratio == 1.0


def test_hit_scenario_with_the_builtin_client() -> None:
    leg = run_leg(smoke_config("hit-50k", Generator.BUILTIN), Target.EDGEPROXY)
    assert leg.load.generator == "builtin" and leg.load.hit_ratio == 1.0
    assert leg.load.status_counts == {"200": leg.load.requests}


def test_miss_scenario_never_hits() -> None:
    leg = run_leg(smoke_config("miss"), Target.EDGEPROXY)
    assert leg.load.requests > 0 and leg.load.hit_ratio == 0.0 and leg.load.errors == 0


def test_zipf_scenario_hits_some() -> None:
    leg = run_leg(smoke_config("zipf"), Target.EDGEPROXY)
    assert 0.0 < (leg.load.hit_ratio or 0) < 1.0


def test_zipf_l2_scenario_shares_a_redis_between_the_workers() -> None:
    leg = run_leg(dataclasses.replace(smoke_config("zipf-l2"), workers=2), Target.EDGEPROXY)
    assert leg.load.errors == 0 and 0.0 < (leg.load.hit_ratio or 0) < 1.0


def test_personalized_scenario_serves_lists() -> None:
    leg = run_leg(smoke_config("personalized"), Target.EDGEPROXY)
    assert leg.load.requests > 0 and leg.load.status_counts == {"200": leg.load.requests}


def test_purge_storm_purges_through_the_admin_api() -> None:
    leg = run_leg(smoke_config("purge-storm"), Target.EDGEPROXY)
    purges = [what for _, what in leg.events if what.startswith("purge")]
    assert purges and all(p.endswith("-> 200") for p in purges), purges
    assert leg.load.errors == 0


def test_origin_down_keeps_serving_hits_after_the_kill(origin_down_leg: Leg) -> None:
    leg = origin_down_leg
    after = leg.load.timeline.seconds[int(kill_time(leg)) + 1 :]
    assert after and sum(s.hits for s in after) > 0


def test_redis_down_never_fails_a_request() -> None:
    leg = run_leg(smoke_config("redis-down"), Target.EDGEPROXY)
    assert kill_time(leg) > 0
    assert leg.load.requests > 0 and leg.load.errors == 0


@pytest.mark.parametrize("peer", [Peer.NGINX, Peer.VARNISH])  # the relay caches nothing: tests/bench/test_bench_relay.py
def test_peer_serves_the_hit_scenario_from_cache(peer: Peer) -> None:
    if (reason := peer.missing()) is not None:
        pytest.skip(reason)
    leg = run_leg(smoke_config("hit-2k"), Target(peer.value))
    assert leg.load.errors == 0 and leg.load.hit_ratio == 1.0


def test_results_file_and_report(origin_down_leg: Leg, tmp_path: Path) -> None:
    doc = results.document(smoke_config("origin-down", duration=2.0), [origin_down_leg], "run")
    assert doc["git"]["commit"] and doc["machine"]["cpus"] and doc["versions"]["python"]
    path = results.write(doc, tmp_path)
    written = report.write_report(path, tmp_path / "report", rank_cost=tmp_path / "absent.json")
    assert {p.name for p in written} == {"report.md", "throughput.png", "latency_cdf.png", "hit_ratio.png"}
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| edgeproxy #1 |" in table and "origin killed" in table


def test_every_scenario_has_a_smoke_test() -> None:
    assert set(SCENARIOS) == {"hit-2k", "hit-2k-distinct", "hit-50k", "miss", "zipf", "zipf-l2", "personalized", "purge-storm",
                              "origin-down", "redis-down"}
