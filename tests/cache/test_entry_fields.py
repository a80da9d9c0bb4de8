"""A stored entry's header fields: one block in wire form, read back exactly as stored."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.entry import CacheEntry, Headers, check_fields, pack_fields

from .factories import make_entry

field_names = st.text(st.characters(blacklist_characters=":\r\n"), min_size=1, max_size=20)
field_values = st.text(st.characters(blacklist_characters="\r\n"), max_size=40)


def stored(*headers: tuple[str, str]) -> CacheEntry:
    return replace(make_entry(max_age=60), fields=pack_fields(headers))


def test_the_block_is_the_fields_in_wire_form() -> None:
    block = pack_fields((("cache-control", "max-age=60"), ("etag", '"x"')))
    assert block == 'cache-control: max-age=60\r\netag: "x"\r\n'
    assert pack_fields(()) == ""


@given(st.lists(st.tuples(field_names, field_values), max_size=8).map(tuple))
def test_headers_come_back_exactly_as_stored(headers: Headers) -> None:
    assert stored(*headers).headers == headers


def test_repeated_fields_stay_repeated_and_in_order() -> None:
    entry = stored(("vary", "accept"), ("etag", '"a"'), ("vary", "cookie"), ("x-empty", ""))
    assert entry.headers == (("vary", "accept"), ("etag", '"a"'), ("vary", "cookie"), ("x-empty", ""))


def test_values_are_kept_byte_exact() -> None:
    odd = ("x-odd", "  padded: with colon-space,\ttab and caf\xe9  ")
    assert stored(odd).headers == (odd,)
    assert stored(odd).header("x-odd") == odd[1]


def test_header_joins_repeated_values_in_order_and_matches_whole_names() -> None:
    entry = stored(("etag-x", "no"), ("link", "<a>"), ("etag", '"e"'), ("link", "<b>"))
    assert entry.header("link") == "<a>, <b>"  # RFC 9110 §5.3
    assert entry.header("etag") == '"e"'
    assert entry.header("etag-") is None
    assert entry.header("absent") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("x-a", "1\r\nx-injected: 2"), ("x-a", "bare\rcr"), ("x-a", "bare\nlf"), ("x-a: b", "c"), ("x\r\n", "c"), ("", "c")],
)
def test_a_field_that_could_not_be_read_back_exactly_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="field block"):
        pack_fields(((name, value),))


def test_a_block_is_checked_whole() -> None:
    block = pack_fields((("a", "1"), ("b", "")))
    assert check_fields(block) is block
    for bad in ("a: 1", "a: 1\r\nno separator\r\n", ": empty name\r\n", "a: 1\n"):
        with pytest.raises(ValueError, match="field block"):
            check_fields(bad)


def test_the_url_is_read_from_the_key() -> None:
    assert stored().url == "example.com/r"
