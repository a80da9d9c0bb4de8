"""RFC 5861 §4 stale-if-error, bounded by RFC 9111 §4.2.4: never where a directive forbids
serving stale."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.directives import parse_cache_control
from edgeproxy.cache.rules import CacheRules

from .factories import T0, make_entry


@pytest.mark.parametrize(
    ("cache_control", "at", "allowed"),
    [
        ("max-age=60, stale-if-error=300", 100, True),
        ("max-age=60, stale-if-error=300", 359, True),
        ("max-age=60, stale-if-error=300", 360, False),
        ("max-age=60", 100, False),
        ("max-age=60, stale-if-error=300, must-revalidate", 100, False),
        ("max-age=60, stale-if-error=300, proxy-revalidate", 100, False),
        ("s-maxage=60, stale-if-error=300", 100, True),
        ("s-maxage=60, stale-if-error=300, proxy-revalidate", 100, False),
        ("max-age=60, stale-if-error=300, no-cache", 100, False),
        ("max-age=600, no-cache", 10, False),
        ("max-age=60, stale-if-error=300, stale-while-revalidate=10", 100, True),
    ],
    ids=[
        "inside-window",
        "window-end",
        "after-window",
        "no-window",
        "must-revalidate-forbids",
        "proxy-revalidate-forbids",
        "s-maxage-allows-the-origins-own-window",
        "explicit-proxy-revalidate-forbids",
        "no-cache-forbids",
        "no-cache-forbids-even-fresh",
        "independent-of-swr",
    ],
)
def test_stale_if_error_window(cache_control: str, at: float, allowed: bool) -> None:
    assert spec.may_serve_stale_on_error(make_entry(cache_control=cache_control), T0 + at) is allowed


def test_policy_window_applies_when_origin_sends_none() -> None:
    entry = make_entry(max_age=60, rules=CacheRules(stale_if_error=120))
    assert spec.may_serve_stale_on_error(entry, T0 + 170)
    assert not spec.may_serve_stale_on_error(entry, T0 + 180)


def test_policy_window_cannot_override_must_revalidate() -> None:
    entry = make_entry(cache_control="max-age=60, must-revalidate", rules=CacheRules(stale_if_error=120))
    assert not spec.may_serve_stale_on_error(entry, T0 + 100)


@pytest.mark.parametrize(
    ("cache_control", "req_cc", "at", "allowed"),
    [
        ("max-age=60", "stale-if-error=60", 100, True),
        ("max-age=60", "stale-if-error=30", 100, False),
        ("max-age=60, stale-if-error=60", "stale-if-error=10", 100, True),
        ("max-age=60, must-revalidate", "stale-if-error=600", 100, False),
        ("max-age=60, no-cache", "stale-if-error=600", 100, False),
        ("max-age=60", "stale-if-error=junk", 100, False),
    ],
    ids=["request-allows", "beyond-request-window", "response-window-still-applies", "must-revalidate-forbids",
         "no-cache-forbids", "invalid-is-0"],
)
def test_the_request_may_allow_a_stale_answer_to_an_error(cache_control: str, req_cc: str, at: float, allowed: bool) -> None:
    """RFC 5861 §4: as a request directive, stale-if-error applies to that request alone, and
    never where RFC 9111 forbids stale use."""
    entry = make_entry(cache_control=cache_control)
    assert spec.may_serve_stale_on_error(entry, T0 + at, parse_cache_control(req_cc)) is allowed
