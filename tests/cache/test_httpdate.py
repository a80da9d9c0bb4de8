"""RFC 9110 §5.6.7 HTTP-date."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.httpdate import format_http_date, parse_http_date

SUNDAY = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
NOW_2026 = 1_795_000_000.0  # Nov 2026


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", SUNDAY),
        ("Sunday, 06-Nov-94 08:49:37 GMT", SUNDAY),
        ("Sun Nov  6 08:49:37 1994", SUNDAY),
        ("SUN, 06 NOV 1994 08:49:37 gmt", SUNDAY),
        ("Sun, 06 Nov 1994 09:49:37 +0100", SUNDAY),
        ("0", None),
        ("-1", None),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:38 GMT", None),
    ],
    ids=["imf-fixdate", "rfc850", "asctime", "case-slips-tolerated", "numeric-offset-applied", "zero",
         "negative", "empty", "absent", "garbage", "two-dates-invalid"],
)
def test_parse(value: str | None, expected: float | None) -> None:
    """§5.6.7: recipients MUST accept all three formats."""
    assert parse_http_date(value) == expected


@pytest.mark.parametrize(
    ("value", "year"),
    [("Thursday, 18-Aug-50 02:01:18 GMT", 2050), ("Saturday, 18-Aug-76 02:01:18 GMT", 2076),
     ("Wednesday, 18-Aug-77 02:01:18 GMT", 1977), ("Friday, 18-Aug-69 02:01:18 GMT", 2069)],
    ids=["near-future", "fifty-years-ahead", "beyond-fifty-years-is-past", "python-default-would-say-1969"],
)
def test_rfc850_two_digit_year(value: str, year: int) -> None:
    """§5.6.7: a two-digit year more than 50 years in the future means the past century."""
    parsed = parse_http_date(value, now=NOW_2026)
    assert parsed is not None and time.gmtime(parsed).tm_year == year


def test_format_is_imf_fixdate_and_round_trips() -> None:
    assert format_http_date(SUNDAY) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date(format_http_date(SUNDAY + 0.7)) == SUNDAY


@pytest.mark.fuzz
@given(st.text(), st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)))
def test_parse_never_raises(value: str, now: float | None) -> None:
    """Dates come from origins and clients: arbitrary text gives a timestamp or None."""
    parsed = parse_http_date(value, now=now)
    assert parsed is None or isinstance(parsed, float)


@given(st.integers(min_value=0, max_value=253402300799))
def test_format_parse_round_trip(timestamp: int) -> None:
    assert parse_http_date(format_http_date(timestamp)) == timestamp


@given(st.integers(min_value=0, max_value=253402300799))
def test_imf_fixdate_is_read_directly_exactly_as_the_general_parser_reads_it(timestamp: int) -> None:
    value = format_http_date(timestamp)
    assert parse_http_date(value) == timestamp
    assert parse_http_date(" " + value) == timestamp  # not IMF-fixdate to the letter: general parser
