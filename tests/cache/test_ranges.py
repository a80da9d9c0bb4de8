"""RFC 9110 §14: a single byte range of a stored complete 200 is served from it; anything the
cache cannot answer exactly (several ranges, other units, bad syntax, a stale If-Range) gets the
whole representation, which §14.2 always allows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgeproxy.cache.spec import ByteRange, Unsatisfiable, requested_range
from tests.cache.factories import http_date, make_entry, make_request

BODY = b"01234567890"  # 11 bytes


def stored(**response: object) -> object:
    return replace(make_entry(max_age=60, **response), body=BODY)


@pytest.mark.parametrize(
    ("range_field", "expected"),
    [
        ("bytes=0-1", ByteRange(0, 1, 11)),
        ("bytes=5-", ByteRange(5, 10, 11)),
        ("bytes=-3", ByteRange(8, 10, 11)),
        ("bytes=-50", ByteRange(0, 10, 11)),  # a suffix longer than the body is the whole body
        ("bytes=3-100", ByteRange(3, 10, 11)),  # last-pos past the end is clamped (§14.1.2)
        ("Bytes = 2-2", ByteRange(2, 2, 11)),
        ("bytes=11-", Unsatisfiable(11)),
        ("bytes=-0", Unsatisfiable(11)),
        ("bytes=0-1,4-5", None),  # several ranges: whole representation, no multipart
        ("bytes=5-2", None),  # invalid range-spec: the field is ignored
        ("bytes=a-b", None),
        ("items=0-1", None),
        ("bytes 0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_of_a_stored_complete_response(range_field: str, expected: object) -> None:
    assert requested_range(make_request(range=range_field), stored()) == expected


def test_content_range_values() -> None:
    assert ByteRange(0, 1, 11).content_range == "bytes 0-1/11"
    assert Unsatisfiable(11).content_range == "bytes */11"


def test_only_get_on_a_stored_200_is_served_a_range() -> None:
    assert requested_range(make_request("HEAD", range="bytes=0-1"), stored()) is None
    assert requested_range(make_request(range="bytes=0-1"), replace(stored(), status=404)) is None
    assert requested_range(make_request(), stored()) is None


@pytest.mark.parametrize(
    ("if_range", "served"),
    [
        ('"v1"', True),
        ('"v2"', False),
        ('W/"v1"', False),  # §13.1.5: weak tags never match If-Range
        (http_date(-3600), True),
        (http_date(-7200), False),
        ("not a date", False),
    ],
)
def test_if_range_must_name_exactly_the_stored_representation(if_range: str, served: bool) -> None:
    entry = stored(etag='"v1"', last_modified=http_date(-3600))
    got = requested_range(make_request(range="bytes=0-1", if_range=if_range), entry)
    assert (got == ByteRange(0, 1, 11)) is served


def test_a_weak_stored_etag_never_satisfies_if_range() -> None:
    entry = stored(etag='W/"v1"')
    assert requested_range(make_request(range="bytes=0-1", if_range='W/"v1"'), entry) is None
