"""CacheRules: the operator's TTL knobs on top of the origin's freshness."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.rules import CacheRules

from .factories import decide, http_date, lifetime, make_response

HEURISTIC_RESPONSE = make_response(last_modified=http_date(-1000))  # heuristic lifetime 100


@pytest.mark.parametrize(
    ("resp", "rules", "expected"),
    [
        (make_response(max_age=10), CacheRules(min_ttl=60), 60),
        (make_response(max_age=600), CacheRules(min_ttl=60), 600),
        (make_response(max_age=0), CacheRules(min_ttl=60), 60),
        (make_response(max_age=600), CacheRules(max_ttl=60), 60),
        (make_response(max_age=10), CacheRules(max_ttl=60), 10),
        (make_response(max_age=10), CacheRules(min_ttl=120, max_ttl=60), 60),
        (make_response(max_age=600), CacheRules(force_ttl=5, min_ttl=60, max_ttl=30), 5),
        (make_response(cache_control="no-cache, max-age=600"), CacheRules(force_ttl=5), 5),
        (make_response(), CacheRules(default_ttl=30), 30),
        (HEURISTIC_RESPONSE, CacheRules(default_ttl=30), 30),
        (make_response(max_age=600), CacheRules(default_ttl=30), 600),
        (make_response(expires="0"), CacheRules(default_ttl=30), 0),
        (make_response(), CacheRules(default_ttl=30, max_ttl=10), 10),
        (make_response(), CacheRules(default_ttl=10, min_ttl=60), 10),
        (make_response(404, max_age=600), CacheRules(negative_ttl={404: 5}), 600),
        (make_response(404), CacheRules(negative_ttl={404: 5}), 5),
        (make_response(404, last_modified=http_date(-1000)), CacheRules(negative_ttl={404: 5}), 5),
        (make_response(404), CacheRules(negative_ttl={404: 5}, min_ttl=60), 5),
        (make_response(404), CacheRules(negative_ttl={404: 500}, max_ttl=60), 60),
    ],
    ids=[
        "min-ttl-raises",
        "min-ttl-leaves-longer",
        "min-ttl-raises-max-age-0",
        "max-ttl-lowers",
        "max-ttl-leaves-shorter",
        "max-ttl-wins-over-min-ttl",
        "force-ttl-overrides-everything",
        "force-ttl-overrides-no-cache",
        "default-ttl-without-freshness",
        "default-ttl-replaces-heuristic",
        "default-ttl-not-over-explicit",
        "default-ttl-not-over-invalid-expires",
        "default-ttl-clamped-by-max",
        "min-ttl-not-applied-to-default-ttl",
        "negative-ttl-not-over-explicit",
        "negative-ttl-without-freshness",
        "negative-ttl-replaces-heuristic",
        "min-ttl-not-applied-to-negative-ttl",
        "negative-ttl-clamped-by-max",
    ],
)
def test_ttl_rules(resp: object, rules: CacheRules, expected: float) -> None:
    assert lifetime(resp, rules) == expected  # type: ignore[arg-type]


def test_min_ttl_never_applies_to_no_cache() -> None:
    """A no-cache response is validated on every use; stretching its lifetime means nothing
    and would hide that intent."""
    decision = decide(make_response(cache_control="no-cache", etag='"e"'), rules=CacheRules(min_ttl=60))
    assert isinstance(decision, spec.Store) and decision.fresh_for == 0 and decision.no_cache


@pytest.mark.parametrize("cache_control", ["no-store", "private"])
def test_min_ttl_and_default_ttl_never_store_the_unstorable(cache_control: str) -> None:
    rules = CacheRules(min_ttl=60, default_ttl=60)
    assert isinstance(decide(make_response(cache_control=cache_control), rules=rules), spec.NoStore)


def test_default_ttl_only_for_heuristically_cacheable_status() -> None:
    assert isinstance(decide(make_response(302), rules=CacheRules(default_ttl=30)), spec.NoStore)
    assert lifetime(make_response(302, cache_control="public"), CacheRules(default_ttl=30)) == 30


@pytest.mark.parametrize(
    ("cache_control", "rules", "windows"),
    [
        ("max-age=60", CacheRules(), (0, 0)),
        ("max-age=60, stale-while-revalidate=30, stale-if-error=300", CacheRules(), (30, 300)),
        ("max-age=60", CacheRules(stale_while_revalidate=10, stale_if_error=20), (10, 20)),
        ("max-age=60, stale-while-revalidate=30", CacheRules(stale_while_revalidate=10), (30, 0)),
        ("max-age=60, stale-while-revalidate=30, must-revalidate", CacheRules(stale_if_error=20), (0, 0)),
        ("s-maxage=60, stale-if-error=300", CacheRules(), (0, 300)),
        ("s-maxage=60", CacheRules(stale_while_revalidate=10, stale_if_error=20), (0, 0)),
        ("max-age=60, stale-if-error=300, no-cache", CacheRules(), (0, 0)),
    ],
    ids=["none", "from-origin", "policy-default", "origin-beats-policy", "must-revalidate-forbids",
         "s-maxage-yields-to-the-origins-own-window", "s-maxage-forbids-policy-windows", "no-cache-forbids"],
)
def test_stale_windows(cache_control: str, rules: CacheRules, windows: tuple[float, float]) -> None:
    """RFC 5861 windows, zero where RFC 9111 §4.2.4 forbids serving stale."""
    decision = decide(make_response(cache_control=cache_control), rules=rules)
    assert isinstance(decision, spec.Store)
    assert (decision.stale_while_revalidate, decision.stale_if_error) == windows
