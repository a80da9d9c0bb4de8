"""RFC 9111 §4 constructing responses from caches: fresh hits, §5.2.1 request directives,
§5.2.2 response directives that forbid stale use, RFC 5861 stale-while-revalidate, and the
§4.3.1 conditional request sent to revalidate."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.directives import parse_cache_control
from edgeproxy.cache.entry import CacheEntry
from edgeproxy.cache.phases import CachePhase
from edgeproxy.cache.rules import CacheRules

from .factories import T0, http_date, make_entry


def lookup(entry: CacheEntry | None, at: float, req_cc: str = "") -> spec.LookupDecision:
    return spec.decide_lookup(parse_cache_control(req_cc), entry, T0 + at)


def kind(decision: spec.LookupDecision) -> str:
    return type(decision).__name__


def test_nothing_stored() -> None:
    assert lookup(None, 0) == spec.Miss(CachePhase.MISS)
    assert lookup(None, 0, "only-if-cached") == spec.OnlyIfCachedMiss()


@pytest.mark.parametrize(
    ("at", "expected"), [(0, "Fresh"), (59.9, "Fresh"), (60, "Miss"), (61, "Miss")],
    ids=["new", "just-fresh", "age-equals-lifetime-is-stale", "stale"],
)
def test_fresh_while_age_below_lifetime(at: float, expected: str) -> None:
    """§4.2: fresh when freshness_lifetime > current_age."""
    assert kind(lookup(make_entry(max_age=60), at)) == expected


def test_fresh_hit_reports_age() -> None:
    assert lookup(make_entry(max_age=60, age="10"), 5) == spec.Fresh(make_entry(max_age=60, age="10"), 15)


def test_age_header_beyond_lifetime_is_stale() -> None:
    assert kind(lookup(make_entry(max_age=3600, age="7200"), 0)) == "Miss"


def test_invalid_age_is_stale() -> None:
    assert kind(lookup(make_entry(max_age=3600, age="0, 0"), 0)) == "Miss"


@pytest.mark.parametrize(
    ("entry_cc", "at", "req_cc", "expected"),
    [
        ("max-age=600", 100, "max-age=200", "Fresh"),
        ("max-age=600", 100, "max-age=50", "Miss"),
        ("max-age=600", 0, "max-age=0", "Miss"),
        ("max-age=600", 100, "max-age=abc", "Miss"),
        ("max-age=600", 100, "min-fresh=400", "Fresh"),
        ("max-age=600", 100, "min-fresh=500", "Miss"),
        ("max-age=60", 100, "max-stale", "Fresh"),
        ("max-age=60", 100, "max-stale=40", "Fresh"),
        ("max-age=60", 100, "max-stale=39", "Miss"),
        ("max-age=60", 100, "max-stale=junk", "Miss"),
        ("max-age=60, must-revalidate", 100, "max-stale", "Miss"),
        ("max-age=60, proxy-revalidate", 100, "max-stale", "Miss"),
        ("s-maxage=60", 100, "max-stale", "Miss"),
        ("max-age=60, no-cache", 100, "max-stale", "Miss"),
        ("max-age=600", 0, "no-cache", "Miss"),
        ("max-age=600", 0, "No-Cache", "Miss"),
        ("max-age=600", 0, "no-store", "Fresh"),
        ("max-age=600", 0, "only-if-cached", "Fresh"),
        ("max-age=60", 100, "only-if-cached", "OnlyIfCachedMiss"),
        ("max-age=600, no-cache", 0, "only-if-cached", "OnlyIfCachedMiss"),
    ],
    ids=[
        "req-max-age-allows",
        "req-max-age-limits-age",
        "req-max-age-0-revalidates",
        "req-max-age-invalid-is-0",
        "min-fresh-satisfied",
        "min-fresh-not-satisfied",
        "max-stale-unbounded",
        "max-stale-within-bound",
        "max-stale-beyond-bound",
        "max-stale-invalid-is-0",
        "must-revalidate-beats-max-stale",
        "proxy-revalidate-beats-max-stale",
        "s-maxage-beats-max-stale",
        "response-no-cache-beats-max-stale",
        "req-no-cache-validates-fresh",
        "req-no-cache-any-case",
        "req-no-store-still-served-from-cache",
        "only-if-cached-fresh",
        "only-if-cached-stale-is-504",
        "only-if-cached-needs-validation-is-504",
    ],
)
def test_request_directives(entry_cc: str, at: float, req_cc: str, expected: str) -> None:
    """§5.2.1.1 max-age, §5.2.1.3 min-fresh, §5.2.1.2 max-stale, §5.2.1.4 no-cache,
    §5.2.1.7 only-if-cached; §5.2.2.2/§5.2.2.8/§5.2.2.10 forbid stale use."""
    assert kind(lookup(make_entry(cache_control=entry_cc), at, req_cc)) == expected


@pytest.mark.parametrize(
    ("cache_control", "at", "req_cc", "expected"),
    [
        ("max-age=60, stale-while-revalidate=30", 70, "", "StaleWhileRevalidate"),
        ("max-age=60, stale-while-revalidate=30", 89, "", "StaleWhileRevalidate"),
        ("max-age=60, stale-while-revalidate=30", 90, "", "Miss"),
        ("max-age=60, stale-while-revalidate=30, must-revalidate", 70, "", "Miss"),
        ("s-maxage=60, stale-while-revalidate=30", 70, "", "StaleWhileRevalidate"),
        ("s-maxage=60, stale-while-revalidate=30, proxy-revalidate", 70, "", "Miss"),
        ("max-age=60, stale-while-revalidate=30, no-cache", 0, "", "Miss"),
        ("max-age=60, stale-while-revalidate=30", 70, "no-cache", "Miss"),
        ("max-age=60, stale-while-revalidate=30", 70, "max-age=65", "Miss"),
        ("max-age=60, stale-while-revalidate=30", 30, "min-fresh=40", "Miss"),
    ],
    ids=["inside-window", "window-end", "after-window", "must-revalidate-forbids", "s-maxage-allows",
         "proxy-revalidate-forbids",
         "no-cache-forbids", "request-no-cache-forbids", "request-max-age-forbids", "request-min-fresh-forbids"],
)
def test_stale_while_revalidate(cache_control: str, at: float, req_cc: str, expected: str) -> None:
    """RFC 5861 §3: serve stale for the window while refreshing, never where RFC 9111 forbids
    stale use or the client asked for fresher."""
    assert kind(lookup(make_entry(cache_control=cache_control), at, req_cc)) == expected


@pytest.mark.parametrize(
    ("fields", "conditional"),
    [
        ({"etag": '"v1"'}, (("if-none-match", '"v1"'),)),
        ({"etag": 'W/"v1"'}, (("if-none-match", 'W/"v1"'),)),
        ({"last_modified": http_date(-100)}, (("if-modified-since", http_date(-100)),)),
        ({"etag": '"v1"', "last_modified": http_date(-100)},
         (("if-none-match", '"v1"'), ("if-modified-since", http_date(-100)))),
    ],
    ids=["strong-etag", "weak-etag", "last-modified", "both"],
)
def test_stale_with_validator_revalidates(fields: dict[str, Any], conditional: tuple[tuple[str, str], ...]) -> None:
    """§4.3.1: a stale response with validators is revalidated with a conditional request."""
    entry = make_entry(max_age=60, **fields)
    assert lookup(entry, 100) == spec.Revalidate(entry, 100, conditional)


def test_stale_without_validator_is_refetched_but_kept_for_errors() -> None:
    entry = make_entry(max_age=60)
    assert lookup(entry, 100) == spec.Miss(CachePhase.EXPIRED, stale=entry)


@pytest.mark.parametrize(
    ("entry_cc", "at", "req_cc", "by_request"),
    [
        ("max-age=600", 0, "no-cache", True),
        ("max-age=600", 100, "max-age=50", True),
        ("max-age=600", 100, "min-fresh=550", True),
        ("max-age=60", 100, "no-cache", False),
        ("max-age=60", 100, "", False),
        ("max-age=600, no-cache", 0, "", False),
        ("max-age=600, no-cache", 0, "no-cache", False),
    ],
    ids=["req-no-cache-on-fresh", "req-max-age-on-fresh", "req-min-fresh-on-fresh", "req-no-cache-on-stale",
         "stale", "response-no-cache", "both-no-cache"],
)
@pytest.mark.parametrize("validator", [{"etag": '"v1"'}, {}], ids=["revalidate", "refetch"])
def test_forwarding_says_whether_only_the_request_refused_a_fresh_copy(
    entry_cc: str, at: float, req_cc: str, by_request: bool, validator: dict[str, Any]
) -> None:
    """RFC 9211 §2.2: ``fwd=request`` when a fresh response was selected but the request's
    directives did not allow its use; ``fwd=stale`` when the response itself needs validating."""
    decision = lookup(make_entry(cache_control=entry_cc, **validator), at, req_cc)
    assert isinstance(decision, spec.Revalidate if validator else spec.Miss)
    assert decision.by_request is by_request


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"etag": '"v1"'}, "Revalidate"), ({}, "Miss")],
    ids=["with-validator-revalidates", "without-validator-refetches"],
)
def test_response_no_cache_validates_every_use(fields: dict[str, Any], expected: str) -> None:
    """§5.2.2.4: even a fresh no-cache response must not be used without validation."""
    assert kind(lookup(make_entry(cache_control="max-age=600, no-cache", **fields), 0)) == expected


def test_must_revalidate_fresh_is_served() -> None:
    assert kind(lookup(make_entry(cache_control="max-age=600, must-revalidate", etag='"e"'), 10)) == "Fresh"


def test_storage_ttl_covers_stale_windows_and_validators() -> None:
    """Stores keep an entry for freshness plus grace, and long enough to revalidate it."""
    assert spec.storage_ttl(make_entry(cache_control="max-age=60, stale-if-error=600"), T0) == 660
    assert spec.storage_ttl(make_entry(max_age=60, rules=CacheRules(stale_if_disconnected=0)), T0 + 10) == 50
    # The policy's disconnected window (10 s by default) is grace too, unless stale is forbidden.
    assert spec.storage_ttl(make_entry(max_age=60), T0 + 10) == 60
    assert spec.storage_ttl(make_entry(cache_control="max-age=60, must-revalidate"), T0 + 10) == 50
    # A validator keeps the object VALIDATOR_KEEP past its freshness, however long that was.
    assert spec.storage_ttl(make_entry(max_age=60, etag='"e"'), T0 + 10) == 60 + spec.VALIDATOR_KEEP - 10
    assert spec.storage_ttl(make_entry(max_age=3600, etag='"e"'), T0 + 10) == 3600 + spec.VALIDATOR_KEEP - 10
    # A longer stale window keeps it longer still.
    swr = make_entry(cache_control="max-age=60, stale-if-error=600", etag='"e"')
    assert spec.storage_ttl(swr, T0) == 660
