"""RFC 9111 §4.2.3 age calculation and §5.1 Age parsing."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.directives import DELTA_SECONDS_MAX

from .factories import T0, decide, make_entry, make_response


@pytest.mark.parametrize(
    ("resp", "request_time", "response_time", "expected"),
    [
        (make_response(max_age=60), T0, T0, 0),
        (make_response(max_age=60, date=-30), T0, T0, 30),
        (make_response(max_age=60, date=30), T0, T0, 0),
        (make_response(max_age=60, age="10"), T0 - 2, T0, 12),
        (make_response(max_age=60, age="10", date=-30), T0 - 2, T0, 30),
        (make_response(max_age=60, age="50", date=-30), T0 - 2, T0, 52),
        (make_response(max_age=60, age="10", date=None), T0, T0, 10),
        (make_response(max_age=60), T0 - 5, T0, 5),
        (make_response(max_age=60), T0 + 5, T0, 0),
    ],
    ids=[
        "none",
        "apparent-age-from-date",
        "date-in-future-clamped-to-zero",
        "age-plus-response-delay",
        "apparent-age-wins-when-larger",
        "corrected-age-wins-when-larger",
        "age-without-date",
        "response-delay-alone-is-not-age",
        "negative-delay-clamped",
    ],
)
def test_corrected_initial_age(resp: object, request_time: float, response_time: float, expected: float) -> None:
    """§4.2.3: max(apparent_age, age_value + response_delay)."""
    assert spec.initial_age(resp, request_time, response_time) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "extra",
    [
        (("age", "abc"),),
        (("age", "-7200"),),
        (("age", "7200.0"),),
        (("age", "7200,0"),),
        (("age", "0,7200"),),
        (("age", "0, 0"),),
        (("age", "0"), ("age", "0")),
        (("age", "0"), ("age", "7200")),
        (("age", "7200;foo=bar"),),
        (("age", ""),),
    ],
    ids=["non-numeric", "negative", "float", "list-old-first", "list-old-last", "list-zeros",
         "two-lines", "two-lines-old-last", "parameter", "empty"],
)
def test_invalid_age_means_stale(extra: tuple[tuple[str, str], ...]) -> None:
    """§5.1 / cache-tests age-parse: an Age that is not one delta-seconds is not trusted, and
    the response is treated as stale rather than as brand new."""
    decision = decide(make_response(max_age=3600, extra=extra))
    assert isinstance(decision, spec.Store)
    assert decision.initial_age == DELTA_SECONDS_MAX
    assert decision.initial_age > decision.fresh_for


def test_age_overflow_clamped() -> None:
    decision = decide(make_response(max_age=60, age="99999999999999"))
    assert isinstance(decision, spec.Store) and decision.initial_age == DELTA_SECONDS_MAX


def test_age_with_surrounding_whitespace_is_fine() -> None:
    decision = decide(make_response(max_age=60, age=" 7 "))
    assert isinstance(decision, spec.Store) and decision.initial_age == 7


@pytest.mark.parametrize(("now", "expected"), [(T0, 20), (T0 + 40, 60), (T0 - 5, 20)],
                         ids=["at-store", "plus-resident-time", "clock-behind-clamped"])
def test_current_age_adds_resident_time(now: float, expected: float) -> None:
    """§4.2.3: current_age = corrected_initial_age + resident_time."""
    entry = make_entry(max_age=60, age="20")
    assert spec.current_age(entry, now) == expected


def test_origin_age_field_not_stored() -> None:
    """§5.1: we send our own Age; storing the origin's would repeat the field on hits."""
    decision = decide(make_response(max_age=60, age="5"))
    assert isinstance(decision, spec.Store)
    assert all(k != "age" for k, _ in decision.headers)


def test_remaining_ttl() -> None:
    entry = make_entry(max_age=60, age="20")
    assert spec.remaining_ttl(entry, T0 + 10) == 30
    assert spec.remaining_ttl(entry, T0 + 50) == -10
