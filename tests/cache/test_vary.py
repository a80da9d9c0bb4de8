"""RFC 9111 §4.1 Vary: names, normalization, absent versus empty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.message import RequestHead
from edgeproxy.cache.vary import ABSENT, normalize, selecting_headers, vary_names

from .factories import make_request


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (None, ()),
        ("", ()),
        ("Accept-Encoding", ("accept-encoding",)),
        ("Foo, bar ,FOO", ("bar", "foo")),
        ("*", None),
        ("*, *", None),
        (", *", None),
        ("Foo, *", None),
    ],
    ids=["absent", "empty", "one", "sorted-deduplicated-lowercased", "star", "star-star", "empty-star",
         "name-star"],
)
def test_vary_names(value: str | None, names: tuple[str, ...] | None) -> None:
    assert vary_names(value) == names


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [
        ("accept-language", "en, de", "eN, De"),
        ("accept-language", "en, de", " en ,   de"),
        ("accept-language", "en, de", "en, de, en"),
        ("accept-encoding", "gzip, br", "GZIP,br"),
        ("accept-language", "en;q=0.5, de", "de, en;q=0.5"),
        ("accept-language", "fr, en;q=0.1, de;q=0.8", "en;q=0.1, fr, de;q=0.8"),
        ("foo", "1,2", " 1, 2 "),
        ("foo", "a  b", "a b"),
    ],
    ids=["lang-case", "lang-space", "lang-repeated", "encoding-case", "lang-qvalue-order", "lang-qvalue-order-3",
         "list-space", "inner-whitespace"],
)
def test_equivalent_values_select_the_same_variant(name: str, a: str, b: str) -> None:
    """§4.1: a cache MAY normalize whitespace and combine field lines before matching."""
    assert normalize(name, a) == normalize(name, b)


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [("foo", "1", "2"), ("foo", "1", None), ("foo", "", None), ("user-agent", "A", "a"),
     ("accept-encoding", "gzip;q=0", "gzip"), ("accept-language", "fr, en", "en, fr"),
     ("accept-encoding", "gzip, br", "br, gzip"), ("accept-language", "fr;q=0.5, en;q=0.5", "en;q=0.5, fr;q=0.5"),
     ("accept-language", "fr;q=x, en", "en, fr;q=x")],
    ids=["different", "present-vs-absent", "empty-vs-absent", "case-kept-for-other-fields", "qvalues-kept",
         "lang-order-kept", "encoding-order-kept", "equal-qvalues-order-kept", "malformed-qvalue-order-kept"],
)
def test_different_values_select_different_variants(name: str, a: str | None, b: str | None) -> None:
    """§4.1: an absent field only matches another absent field; §4.1 allows reordering only
    where order has no meaning, and RFC 9110 §12.5.4 says equal qvalues may be ranked by it."""
    assert normalize(name, a) != normalize(name, b)


def test_selecting_headers_combines_field_lines() -> None:
    """§4.1: "combining multiple header field lines" — two lines equal one combined line."""
    combined = make_request(foo="1, 2")
    split = RequestHead("GET", "example.com", "/r", (("foo", "1"), ("foo", "2")))
    assert selecting_headers(("foo",), combined) == selecting_headers(("foo",), split) == (("foo", "1,2"),)
    assert selecting_headers(("bar",), combined) == (("bar", ABSENT),)


@pytest.mark.fuzz
@given(st.sampled_from(["accept-language", "accept-encoding", "foo"]), st.text())
def test_normalize_is_idempotent(name: str, value: str) -> None:
    """Normalizing twice changes nothing, so stored and fresh selections always agree."""
    once = normalize(name, value)
    assert normalize(name, once) == once
