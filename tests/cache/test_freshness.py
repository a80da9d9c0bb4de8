"""RFC 9111 §4.2.1 freshness lifetime, §4.2.2 heuristics, §5.3 Expires; RFC 9213 targeted fields."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.phases import NoCacheReason

from .factories import decide, http_date, lifetime, make_response


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (make_response(max_age=60), 60),
        (make_response(cache_control="max-age=60, s-maxage=5"), 5),
        (make_response(cache_control="s-maxage=5, max-age=60"), 5),
        (make_response(max_age=60, extra=(("cache-control", "s-maxage=5"),)), 5),
        (make_response(max_age=60, expires=http_date(3600)), 60),
        (make_response(max_age=0, expires=http_date(3600)), 0),
        (make_response(max_age=60, expires="0"), 60),
        (make_response(expires=http_date(300)), 300),
        (make_response(expires=http_date(300), date=100), 200),
        (make_response(expires=http_date(-60)), 0),
        (make_response(expires=http_date(0)), 0),
        (make_response(expires="0"), 0),
        (make_response(expires="Thu, 01 Jan 1970 00:00:00 GMT"), 0),
        (make_response(expires=http_date(300), date=None), 300),
        (make_response(expires=http_date(300), extra=(("date", "garbage"),), date=None), 300),
        (make_response(extra=(("expires", http_date(300)), ("expires", http_date(600))), date=0), 0),
        (make_response(cache_control="max-age=2147483649"), 2147483648),
    ],
    ids=[
        "max-age",
        "s-maxage-wins-for-shared-cache",
        "s-maxage-wins-in-any-order",
        "s-maxage-wins-across-field-lines",
        "max-age-beats-expires",
        "max-age-0-beats-future-expires",
        "max-age-beats-invalid-expires",
        "expires-minus-date",
        "expires-minus-date-not-response-time",
        "expires-in-past-is-stale",
        "expires-equal-date-is-stale",
        "invalid-expires-0-is-stale",
        "expires-epoch-is-stale",
        "missing-date-uses-response-time",
        "invalid-date-uses-response-time",
        "two-expires-lines-are-stale",
        "delta-seconds-overflow-clamped",
    ],
)
def test_explicit_lifetime(resp: object, expected: float) -> None:
    assert lifetime(resp) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (make_response(last_modified=http_date(-1000)), 100),
        (make_response(last_modified=http_date(-1000), date=None), 100),
        (make_response(last_modified=http_date(-10**8)), spec.HEURISTIC_MAX),
        (make_response(404, last_modified=http_date(-1000)), 100),
        (make_response(400, last_modified=http_date(-1000), cache_control="max-age=60"), None),
        (make_response(301, last_modified=http_date(-1000)), 100),
        (make_response(302, last_modified=http_date(-1000)), None),
        (make_response(201, last_modified=http_date(-1000)), None),
        (make_response(299, cache_control="public", last_modified=http_date(-1000)), 100),
        (make_response(last_modified=http_date(10)), None),
        (make_response(last_modified="yesterday"), None),
        (make_response(last_modified=http_date(-1000), expires="0"), 0),
    ],
    ids=[
        "ten-percent-of-date-minus-last-modified",
        "missing-date-uses-response-time",
        "capped",
        "404-is-heuristically-cacheable",
        "400-never-stored-by-default-a-client-can-provoke-it",
        "301-heuristically-cacheable",
        "302-needs-explicit-freshness",
        "201-needs-explicit-freshness",
        "public-allows-heuristic-for-any-status",
        "last-modified-after-date-gives-nothing",
        "invalid-last-modified-gives-nothing",
        "no-heuristic-beside-explicit-expires",
    ],
)
def test_heuristic_lifetime(resp: object, expected: float | None) -> None:
    """§4.2.2: heuristics only without explicit freshness, for heuristically cacheable statuses
    (RFC 9110 §15.1) or responses marked public."""
    decision = decide(resp)  # type: ignore[arg-type]
    if expected is None:
        assert isinstance(decision, spec.NoStore)
    else:
        assert isinstance(decision, spec.Store) and decision.fresh_for == expected
        assert decision.heuristic == (expected != 0)


def test_no_freshness_at_all_is_not_stored() -> None:
    assert decide(make_response()) == spec.NoStore(NoCacheReason.NO_FRESHNESS)


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (make_response(max_age=600, cdn_cache_control="max-age=5"), 5),
        (make_response(max_age=5, cdn_cache_control="max-age=600"), 600),
        (make_response(cache_control="no-store", cdn_cache_control="max-age=600"), 600),
        (make_response(expires=http_date(600), cdn_cache_control="public"), None),
        (make_response(max_age=600, surrogate_control="max-age=5"), 5),
        (make_response(max_age=600, surrogate_control="max-age=5;edgeproxy"), 5),
        (make_response(max_age=600, surrogate_control="max-age=5;other"), 600),
        (make_response(cache_control="no-store", surrogate_control="max-age=600;edgeproxy"), 600),
        (make_response(cdn_cache_control="max-age=600", surrogate_control="max-age=5"), 5),
        (make_response(max_age=600, cdn_cache_control=""), 600),
        (make_response(surrogate_control="max-age=0", expires=http_date(1000)), 0),
    ],
    ids=[
        "cdn-cache-control-shorter",
        "cdn-cache-control-longer",
        "cdn-cache-control-overrides-no-store",
        "targeted-field-ignores-expires",
        "surrogate-control-untargeted",
        "surrogate-control-for-us",
        "surrogate-control-for-someone-else-ignored",
        "surrogate-control-overrides-no-store",
        "surrogate-control-before-cdn-cache-control",
        "empty-targeted-field-ignored",
        "surrogate-max-age-0-ignores-expires",
    ],
)
def test_targeted_fields_replace_cache_control(resp: object, expected: float | None) -> None:
    """RFC 9213 §2.2: the first non-empty targeted field decides, and Cache-Control and
    Expires are then ignored."""
    decision = decide(resp)  # type: ignore[arg-type]
    if expected is None:
        assert decision == spec.NoStore(NoCacheReason.NO_FRESHNESS)
    else:
        assert isinstance(decision, spec.Store) and decision.fresh_for == expected


@pytest.mark.parametrize(
    "resp",
    [
        make_response(max_age=600, cdn_cache_control="no-store"),
        make_response(max_age=600, surrogate_control="no-store"),
        make_response(max_age=600, cdn_cache_control="private"),
    ],
    ids=["cdn-no-store", "surrogate-no-store", "cdn-private"],
)
def test_targeted_no_store_and_private(resp: object) -> None:
    assert isinstance(decide(resp), spec.NoStore)  # type: ignore[arg-type]


def test_surrogate_fields_never_stored() -> None:
    decision = decide(make_response(max_age=60, surrogate_control="max-age=5", surrogate_key="a b", cache_tag="c"))
    assert isinstance(decision, spec.Store)
    assert {k for k, _ in decision.headers}.isdisjoint(spec.SURROGATE_HEADERS)
    assert decision.tags == {"a", "b", "c"}
