"""RFC 9111 §3 storing responses (a shared cache), §3.1 which fields are stored, §3.5
Authorization, plus edgeproxy's own refusals (Set-Cookie, error pages)."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.phases import NoCacheReason
from edgeproxy.cache.rules import CacheRules

from .factories import decide, http_date, make_request, make_response


@pytest.mark.parametrize(
    ("method", "reason"),
    [("GET", None), ("HEAD", None), ("POST", NoCacheReason.METHOD), ("PUT", NoCacheReason.METHOD),
     ("DELETE", NoCacheReason.METHOD), ("M-SEARCH", NoCacheReason.METHOD)],
)
def test_methods(method: str, reason: NoCacheReason | None) -> None:
    """§3: the request method must be understood as cacheable; HEAD misses are filled by GET."""
    decision = decide(make_response(max_age=60), make_request(method))
    assert decision == spec.NoStore(reason) if reason else isinstance(decision, spec.Store)


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414])
def test_heuristically_cacheable_status_stored_without_explicit_freshness(status: int) -> None:
    rules = CacheRules(cache_errors=True)
    assert isinstance(decide(make_response(status, last_modified=http_date(-1000)), rules=rules), spec.Store)


def test_a_provokable_error_is_never_stored_by_a_guessed_lifetime_even_with_cache_errors() -> None:
    # 501 is heuristically cacheable in RFC 9110, but a 5xx is stored only by explicit freshness.
    rules = CacheRules(cache_errors=True, default_ttl=60)
    assert isinstance(decide(make_response(501, last_modified=http_date(-1000)), rules=rules), spec.NoStore)
    assert isinstance(decide(make_response(501, max_age=60), rules=rules), spec.Store)


@pytest.mark.parametrize("status", [201, 202, 302, 303, 307, 403, 500, 502, 503, 504, 599])
def test_other_status_needs_explicit_freshness(status: int) -> None:
    rules = CacheRules(cache_errors=True)
    assert isinstance(decide(make_response(status, last_modified=http_date(-1000)), rules=rules), spec.NoStore)
    assert isinstance(decide(make_response(status, max_age=60), rules=rules), spec.Store)


@pytest.mark.parametrize(
    ("resp", "reason"),
    [
        (make_response(206, max_age=60, content_range="bytes 0-1/10"), NoCacheReason.PARTIAL),
        (make_response(304, max_age=60), NoCacheReason.STATUS),
        (make_response(101, max_age=60), NoCacheReason.STATUS),
        (make_response(599, cache_control="max-age=60, must-understand"), NoCacheReason.STATUS),
    ],
    ids=["206", "304-only-updates", "non-final", "must-understand-unknown-status"],
)
def test_never_stored(resp: object, reason: NoCacheReason) -> None:
    assert decide(resp, rules=CacheRules(cache_errors=True)) == spec.NoStore(reason)  # type: ignore[arg-type]


def test_content_range_outside_206_is_meaningless_and_stored() -> None:
    """RFC 9110 §14.4: only 206 and 416 give Content-Range a meaning; a 200 is complete."""
    decision = decide(make_response(max_age=60, content_range="bytes 0-1/10"))
    assert isinstance(decision, spec.Store) and ("content-range", "bytes 0-1/10") in decision.headers


def test_must_understand_overrides_no_store_for_known_status() -> None:
    """§5.2.2.3: a cache that understands the status code ignores no-store beside must-understand."""
    assert isinstance(decide(make_response(cache_control="max-age=60, no-store, must-understand")), spec.Store)


@pytest.mark.parametrize(
    ("resp", "req_cc", "reason"),
    [
        (make_response(cache_control="no-store"), "", NoCacheReason.NO_STORE),
        (make_response(cache_control="No-StOrE"), "", NoCacheReason.NO_STORE),
        (make_response(cache_control="max-age=60, no-store", expires=http_date(60)), "", NoCacheReason.NO_STORE),
        (make_response(max_age=60), "no-store", NoCacheReason.REQUEST_NO_STORE),
        (make_response(cache_control="private, max-age=60"), "", NoCacheReason.PRIVATE),
        (make_response(cache_control='private="", max-age=60'), "", NoCacheReason.PRIVATE),
        (make_response(max_age=60, vary="*"), "", NoCacheReason.VARY_STAR),
        (make_response(max_age=60, vary="Accept, *"), "", NoCacheReason.VARY_STAR),
        (make_response(max_age=60, extra=(("vary", ""), ("vary", "*"))), "", NoCacheReason.VARY_STAR),
    ],
    ids=["no-store", "no-store-any-case", "no-store-beats-freshness", "request-no-store", "private",
         "private-empty-list", "vary-star", "vary-star-in-list", "vary-star-second-line"],
)
def test_refused(resp: object, req_cc: str, reason: NoCacheReason) -> None:
    """§5.2.2.5 no-store, §5.2.1.5 request no-store, §5.2.2.7 private, §4.1 Vary: *."""
    assert decide(resp, req_cc=req_cc) == spec.NoStore(reason)  # type: ignore[arg-type]


def test_request_no_cache_does_not_prevent_storing() -> None:
    assert isinstance(decide(make_response(max_age=60), req_cc="no-cache"), spec.Store)


def test_qualified_private_stores_without_the_named_fields() -> None:
    """§5.2.2.7: private="field" lets a shared cache store the rest of the response."""
    decision = decide(make_response(cache_control='private="x-user, Set-Cookie", max-age=60', x_user="ann", set_cookie="a=b", x_keep="1"))
    assert isinstance(decision, spec.Store)
    names = {k for k, _ in decision.headers}
    assert "x-keep" in names and names.isdisjoint({"x-user", "set-cookie"})


def test_qualified_no_cache_fields_not_stored() -> None:
    """§5.2.2.4: fields named by no-cache="..." may not be reused without validation."""
    decision = decide(make_response(cache_control='no-cache="a, b", max-age=60', a="1", b="2", c="3"))
    assert isinstance(decision, spec.Store)
    assert [(k, v) for k, v in decision.headers if k in "abc"] == [("c", "3")]
    assert not decision.no_cache


@pytest.mark.parametrize(
    ("cache_control", "stored"),
    [("max-age=60", False), ("max-age=60, public", True), ("s-maxage=60", True),
     ("max-age=60, must-revalidate", True), ("max-age=60, proxy-revalidate", False)],
)
def test_authorization(cache_control: str, stored: bool) -> None:
    """§3.5: a response to a request with Authorization only with public, s-maxage or
    must-revalidate."""
    decision = decide(make_response(cache_control=cache_control), make_request(authorization="Basic x"))
    assert isinstance(decision, spec.Store) is stored
    if not stored:
        assert decision == spec.NoStore(NoCacheReason.AUTHORIZATION)


@pytest.mark.parametrize(
    ("mode", "stored"), [("pass", False), ("strip", True)], ids=["pass-mode-refuses", "strip-mode-removes"]
)
def test_set_cookie(mode: str, stored: bool) -> None:
    rules = CacheRules(set_cookie=mode)  # type: ignore[arg-type]
    decision = decide(make_response(max_age=60, set_cookie="sid=1"), rules=rules)
    if stored:
        assert isinstance(decision, spec.Store) and all(k != "set-cookie" for k, _ in decision.headers)
    else:
        assert decision == spec.NoStore(NoCacheReason.SET_COOKIE)


def test_fields_stored() -> None:
    """§3.1: hop-by-hop fields and those listed in Connection are not stored; the rest are,
    Content-Length included."""
    resp = make_response(
        max_age=60,
        extra=(
            ("connection", "x-a, X-B"), ("x-a", "1"), ("x-b", "2"), ("x-c", "3"), ("keep-alive", "timeout=5"),
            ("te", "trailers"), ("transfer-encoding", "chunked"), ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"), ("proxy-authentication-info", "x"), ("proxy-connection", "close"),
            ("content-length", "4"), ("content-type", "text/plain"), ("etag", '"e"'), ("set-cookie2", "x"),
        ),
    )
    decision = decide(resp)
    assert isinstance(decision, spec.Store)
    assert {k for k, _ in decision.headers} == {
        "cache-control", "date", "x-c", "content-length", "content-type", "etag", "set-cookie2"
    }


@pytest.mark.parametrize(
    ("rules", "stored"),
    [
        (CacheRules(), False),
        (CacheRules(cache_errors=True), True),
        (CacheRules(negative_ttl={503: 5}), True),
        (CacheRules(negative_ttl={404: 5}), False),
    ],
    ids=["off-by-default", "cache-errors-opt-in", "negative-ttl-for-status", "negative-ttl-other-status"],
)
def test_error_responses_stored_only_when_rules_say(rules: CacheRules, stored: bool) -> None:
    """Against cache poisoning: a 5xx with max-age is kept only where a policy opts in."""
    decision = decide(make_response(503, max_age=60), rules=rules)
    assert isinstance(decision, spec.Store) is stored
    if not stored:
        assert decision == spec.NoStore(NoCacheReason.STATUS)


@pytest.mark.parametrize(
    ("cache_control", "flags"),
    [
        ("max-age=60", (False, False)),
        ("max-age=60, must-revalidate", (True, False)),
        ("max-age=60, proxy-revalidate", (True, False)),
        ("s-maxage=60", (True, False)),
        ("max-age=60, no-cache", (False, True)),
        ('max-age=60, no-cache="x"', (False, False)),
    ],
)
def test_stale_use_flags(cache_control: str, flags: tuple[bool, bool]) -> None:
    """§5.2.2.2 must-revalidate, §5.2.2.8 proxy-revalidate, §5.2.2.10 s-maxage (implies
    proxy-revalidate), §5.2.2.4 no-cache (validate every use)."""
    decision = decide(make_response(cache_control=cache_control))
    assert isinstance(decision, spec.Store)
    assert (decision.must_revalidate, decision.no_cache) == flags


@pytest.mark.parametrize(
    ("resp", "stored"),
    [
        (make_response(cache_control="no-cache", etag='"e"'), True),
        (make_response(cache_control="no-cache", last_modified=http_date(-100)), True),
        (make_response(cache_control="no-cache"), False),
    ],
    ids=["etag", "last-modified", "no-validator"],
)
def test_no_cache_without_freshness(resp: object, stored: bool) -> None:
    """§5.2.2.4: a no-cache response is worth storing only if it can be revalidated."""
    decision = decide(resp)  # type: ignore[arg-type]
    assert isinstance(decision, spec.Store) is stored
    if stored:
        assert decision.no_cache  # type: ignore[union-attr]  # whatever its lifetime, validated on use


def test_with_date_adds_missing_date_only() -> None:
    """RFC 9110 §6.6.1: a cache stores the time of receipt when the origin sent no Date."""
    assert spec.with_date((("date", "x"),), 0) == (("date", "x"),)
    assert spec.with_date((), 784111777) == (("date", "Sun, 06 Nov 1994 08:49:37 GMT"),)
