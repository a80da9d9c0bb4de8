"""RFC 9111 §5.2 Cache-Control syntax, §1.2.2 delta-seconds; Surrogate-Control targets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.directives import (
    DELTA_SECONDS_MAX,
    parse_cache_control,
    parse_delta_seconds,
    parse_surrogate_control,
    split_list,
)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("max-age=60", {"max-age": "60"}),
        ("no-store", {"no-store": None}),
        ("Max-Age=60, NO-STORE", {"max-age": "60", "no-store": None}),
        ("max-age=60 ,  public", {"max-age": "60", "public": None}),
        ('max-age="60"', {"max-age": "60"}),
        ('private="set-cookie, x-a", max-age=5', {"private": "set-cookie, x-a", "max-age": "5"}),
        ('ext="a \\"quoted\\" b", public', {"ext": 'a "quoted" b', "public": None}),
        (",, ,max-age=1,,", {"max-age": "1"}),
        ("", {}),
    ],
    ids=[
        "token-argument",
        "no-argument",
        "names-case-insensitive",
        "ows-around-commas",
        "quoted-argument-accepted",
        "comma-inside-quotes-does-not-split",
        "backslash-escapes",
        "empty-members-ignored",
        "empty-field",
    ],
)
def test_parse(field: str, expected: dict[str, str | None]) -> None:
    assert dict(parse_cache_control(field).values) == expected


@pytest.mark.parametrize(
    ("field", "max_age"),
    [
        ("max-age=60", 60),
        ("max-age=003600", 3600),
        ('max-age="60"', 60),
        ("max-age='60'", 0),
        ("max-age=-1", 0),
        ("max-age=1.5", 0),
        ("max-age=60a", 0),
        ("max-age=", 0),
        ("max-age", 0),
        ("max-age= 60", 0),
        ("max-age =60", None),
        ("max-age=٣", 0),
        ("max-age=2147483648", DELTA_SECONDS_MAX),
        ("max-age=99999999999999999999", DELTA_SECONDS_MAX),
        ('extension="max-age=3600", max-age=1', 1),
        ('max-age=1, extension="max-age=3600"', 1),
        ("max-age=60, max-age=60", 60),
        ("max-age=60, max-age=3600", 0),
        ("max-age=3600, max-age=60", 0),
        ("public", None),
    ],
    ids=[
        "plain",
        "leading-zeros",
        "quoted",
        "single-quotes-invalid",
        "negative-invalid",
        "fraction-invalid",
        "trailing-garbage-invalid",
        "empty-invalid",
        "missing-argument-invalid",
        "space-after-equals-invalid",
        "space-before-equals-is-another-directive",
        "non-ascii-digit-invalid",
        "overflow-2^31-kept",
        "overflow-clamped-to-2^31",
        "directive-inside-quoted-string-ignored",
        "directive-inside-quoted-string-ignored-after",
        "identical-duplicate-fine",
        "conflicting-duplicate-is-stale",
        "conflicting-duplicate-is-stale-either-order",
        "absent",
    ],
)
def test_delta_seconds(field: str, max_age: int | None) -> None:
    """§1.2.2 / §4.2.1: invalid or conflicting freshness reads as 0 (stale), never as fresh."""
    assert parse_cache_control(field).seconds("max-age") == max_age


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ('private="Set-Cookie, X-A"', ("set-cookie", "x-a")),
        ("private", ()),
        ('private="set-cookie", private', ()),
        ('private, private="set-cookie"', ()),
    ],
    ids=["qualified-lowercased", "unqualified", "conflict-means-all-fields", "conflict-either-order"],
)
def test_qualified_field_names(field: str, names: tuple[str, ...]) -> None:
    """§5.2.2.7: a conflicting qualified/unqualified private is read as the stricter, unqualified one."""
    assert parse_cache_control(field).field_names("private") == names


def test_split_list_keeps_quoted_commas() -> None:
    assert split_list('a, b="x, y" ,c') == ["a", 'b="x, y"', "c"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("max-age=60", {"max-age": "60"}),
        ("max-age=60;edgeproxy", {"max-age": "60"}),
        ("max-age=60;EdgeProxy", {"max-age": "60"}),
        ("max-age=60;other", {}),
        ("max-age=60;other, no-store;edgeproxy", {"no-store": None}),
        ('content="ESI/1.0;x";edgeproxy', {"content": "ESI/1.0;x"}),
    ],
    ids=["untargeted", "ours", "target-case-insensitive", "for-someone-else", "mixed", "semicolon-in-quotes"],
)
def test_surrogate_control_targets(field: str, expected: dict[str, str | None]) -> None:
    """Edge Architecture 1.0: ``directive;target`` applies only to the named device."""
    assert dict(parse_surrogate_control(field, "edgeproxy").values) == expected


# ---------------------------------------------------------------- properties

_NAMES = st.sampled_from(
    ["max-age", "s-maxage", "no-cache", "no-store", "private", "public", "must-revalidate",
     "stale-while-revalidate", "stale-if-error", "x-ext"]
)
_TOKEN_ARG = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_QUOTED_ARG = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


def _render(name: str, arg: str | None, quoted: bool) -> str:
    if arg is None:
        return name
    if quoted:
        return f'{name}="' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}={arg}"


@pytest.mark.fuzz
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    directives = parse_cache_control(text)
    for name in directives.values:
        directives.seconds(name)
        directives.field_names(name)
    parse_surrogate_control(text, "edgeproxy")


_ARGUMENT = st.one_of(
    st.just((None, False)),
    st.tuples(_TOKEN_ARG, st.booleans()),  # a token may be sent bare or quoted
    st.tuples(_QUOTED_ARG, st.just(True)),  # anything else needs the quoted-string form
)


@pytest.mark.fuzz
@given(st.lists(st.tuples(_NAMES, _ARGUMENT), max_size=6, unique_by=lambda d: d[0]))
def test_round_trip_of_generated_directives(directives: list[tuple[str, tuple[str | None, bool]]]) -> None:
    """Rendering distinct directives and parsing the result gives them back."""
    field = ", ".join(_render(name, arg, quoted) for name, (arg, quoted) in directives)
    assert dict(parse_cache_control(field).values) == {name: arg for name, (arg, _) in directives}


@pytest.mark.fuzz
@given(st.lists(_NAMES, min_size=1, max_size=5), st.randoms())
def test_case_insensitive(names: list[str], rnd: object) -> None:
    field = ", ".join(names)
    shuffled = "".join(c.upper() if rnd.random() < 0.5 else c for c in field)  # type: ignore[attr-defined]
    assert parse_cache_control(shuffled) == parse_cache_control(field)


@pytest.mark.fuzz
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
        lambda n: n not in {"max-age", "s-maxage"}
    ),
    st.one_of(st.none(), _TOKEN_ARG),
    st.integers(min_value=0, max_value=10**12),
)
def test_unknown_directives_do_not_change_max_age(name: str, arg: str | None, seconds: int) -> None:
    """§5.2.3: unrecognized directives are ignored; they never alter a known one."""
    field = f"{_render(name, arg, False)}, max-age={seconds}, {_render(name, arg, False)}"
    assert parse_cache_control(field).seconds("max-age") == min(seconds, DELTA_SECONDS_MAX)


@given(st.integers(min_value=0, max_value=10**30))
def test_delta_seconds_clamped(value: int) -> None:
    assert parse_delta_seconds(str(value)) == min(value, DELTA_SECONDS_MAX)
