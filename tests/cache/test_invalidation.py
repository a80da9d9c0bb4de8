"""RFC 9111 §4.4 invalidation by unsafe methods."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.message import ResponseHead

from .factories import make_request


def targets(method: str, status: int = 200, target: str = "/a/b?x=1", **fields: str) -> list[str]:
    resp = ResponseHead(status, tuple((k.replace("_", "-"), v) for k, v in fields.items()))
    return spec.invalidation_targets(make_request(method, target), resp, "example.com")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "M-SEARCH"])
def test_unsafe_methods_invalidate_target(method: str) -> None:
    """§4.4: "including methods whose safety is unknown"."""
    assert targets(method) == ["example.com/a/b?x=1"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_do_not(method: str) -> None:
    assert targets(method) == []


@pytest.mark.parametrize(("status", "invalidates"), [(200, True), (204, True), (302, True), (399, True),
                                                      (400, False), (404, False), (500, False), (100, False)])
def test_only_non_error_responses(status: int, invalidates: bool) -> None:
    assert bool(targets("POST", status)) is invalidates


@pytest.mark.parametrize(
    ("fields", "extra"),
    [
        ({"location": "/c"}, ["example.com/c"]),
        ({"location": "http://example.com/c?d=1"}, ["example.com/c?d=1"]),
        ({"location": "http://EXAMPLE.com/c"}, ["example.com/c"]),
        ({"content_location": "c"}, ["example.com/a/c"]),
        ({"content_location": "../d"}, ["example.com/d"]),
        ({"location": "/c", "content_location": "/d"}, ["example.com/c", "example.com/d"]),
        ({"location": "http://other.example/c"}, []),
        ({"location": "//other.example/c"}, []),
        ({"location": "http://example.com:8080/c"}, []),
    ],
    ids=["absolute-path", "absolute-uri-same-host", "host-case-insensitive", "relative-reference",
         "dot-segments", "both-fields", "other-host-never", "scheme-relative-other-host", "other-port-never"],
)
def test_location_and_content_location(fields: dict[str, Any], extra: list[str]) -> None:
    """§4.4: MAY invalidate Location / Content-Location, MUST NOT when their origin differs."""
    assert targets("POST", **fields) == ["example.com/a/b?x=1", *extra]
