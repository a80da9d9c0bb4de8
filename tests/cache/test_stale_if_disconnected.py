"""RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response unless it is disconnected or
doing so is explicitly permitted". While the origin cannot be reached, a stale response may be
served for the policy's ``stale.if_disconnected`` window past its freshness, never where a
directive forbids serving stale."""

from __future__ import annotations

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.rules import CacheRules

from .factories import T0, decide, make_entry, make_response

DEFAULT = CacheRules()
THIRTY = CacheRules(stale_if_disconnected=30)
OFF = CacheRules(stale_if_disconnected=0)


@pytest.mark.parametrize(
    ("cache_control", "rules", "at", "allowed"),
    [
        ("max-age=60", DEFAULT, 60, True),
        ("max-age=60", DEFAULT, 65, True),
        ("max-age=60", DEFAULT, 69.999, True),
        ("max-age=60", DEFAULT, 70, False),
        ("max-age=60", DEFAULT, 500, False),
        ("max-age=60", THIRTY, 89, True),
        ("max-age=60", THIRTY, 90, False),
        ("max-age=60", OFF, 60, False),
        ("max-age=60", OFF, 61, False),
        ("max-age=60, stale-if-error=300", OFF, 100, False),
        ("max-age=60, must-revalidate", DEFAULT, 61, False),
        ("max-age=60, proxy-revalidate", DEFAULT, 61, False),
        ("s-maxage=60", DEFAULT, 61, False),
        ("max-age=60, no-cache", DEFAULT, 61, False),
        ("max-age=600, no-cache", DEFAULT, 10, False),
        ("max-age=60, must-revalidate", THIRTY, 61, False),
    ],
    ids=[
        "at-expiry",
        "inside-default-window",
        "default-window-end",
        "after-default-window",
        "long-stale",
        "inside-policy-window",
        "after-policy-window",
        "off-at-expiry",
        "off",
        "off-is-not-stale-if-error",
        "must-revalidate-forbids",
        "proxy-revalidate-forbids",
        "s-maxage-forbids",
        "no-cache-forbids",
        "no-cache-forbids-even-fresh",
        "policy-window-cannot-override-must-revalidate",
    ],
)
def test_disconnected_window(cache_control: str, rules: CacheRules, at: float, allowed: bool) -> None:
    entry = make_entry(cache_control=cache_control, rules=rules)
    assert spec.may_serve_stale_disconnected(entry, T0 + at) is allowed


def test_the_window_counts_from_freshness_including_age_on_arrival() -> None:
    # §4.2.3: a response 50 s old on arrival with max-age=60 is stale 10 s after we stored it.
    entry = make_entry(max_age=60, age="50")
    assert spec.may_serve_stale_disconnected(entry, T0 + 19)
    assert not spec.may_serve_stale_disconnected(entry, T0 + 20)


def test_stale_if_error_is_a_separate_window() -> None:
    """A 5xx is an answer, not a disconnection: only stale-if-error covers it, and the
    disconnected window does not widen it."""
    entry = make_entry(max_age=60)
    assert spec.may_serve_stale_disconnected(entry, T0 + 65)
    assert not spec.may_serve_stale_on_error(entry, T0 + 65)


@pytest.mark.parametrize(
    ("cache_control", "rules", "window"),
    [
        ("max-age=60", DEFAULT, 10),
        ("max-age=60", THIRTY, 30),
        ("max-age=60", OFF, 0),
        ("max-age=60, stale-if-error=300", DEFAULT, 10),
        ("max-age=60, must-revalidate", THIRTY, 0),
        ("max-age=60, proxy-revalidate", THIRTY, 0),
        ("s-maxage=60", THIRTY, 0),
        ("max-age=60, no-cache", THIRTY, 0),
    ],
    ids=["default", "policy", "off", "independent-of-stale-if-error", "must-revalidate", "proxy-revalidate",
         "s-maxage", "no-cache"],
)
def test_stored_window_comes_from_the_policy(cache_control: str, rules: CacheRules, window: float) -> None:
    decision = decide(make_response(cache_control=cache_control), rules=rules)
    assert isinstance(decision, spec.Store)
    assert decision.stale_if_disconnected == window
    assert make_entry(cache_control=cache_control, rules=rules).stale_if_disconnected == window


def test_stores_keep_the_entry_through_the_window() -> None:
    entry = make_entry(max_age=60, rules=THIRTY)
    assert spec.stale_grace(entry) == 30
    assert spec.storage_ttl(entry, T0 + 10) == 80
    longer_error_window = make_entry(cache_control="max-age=60, stale-if-error=300", rules=THIRTY)
    assert spec.stale_grace(longer_error_window) == 300
