"""RFC 9111 §4.3 validation: the 304 merge (§4.3.4, §3.2), which stored response a 304
freshens, and answering clients' own preconditions from the cache (§4.3.2, RFC 9110 §13)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edgeproxy.cache import spec
from edgeproxy.cache.entry import pack_fields
from edgeproxy.cache.message import ResponseHead
from edgeproxy.cache.rules import CacheRules

from .factories import T0, decide, http_date, make_entry, make_request


def merge(stored: dict[str, str], not_modified: dict[str, str]) -> dict[str, str]:
    """Merge a 304 into a stored response holding exactly ``stored`` (beside its ETag)."""
    fields = {"etag": '"e"', **{k.replace("_", "-"): v for k, v in stored.items()}}
    entry = replace(make_entry(max_age=2), fields=pack_fields(tuple(fields.items())))
    return dict(spec.merged_headers(entry, ResponseHead(304, tuple(not_modified.items()))))


@pytest.mark.parametrize(
    "field",
    ["x-test-header", "content-foo", "cache-control", "content-location", "content-type", "expires",
     "set-cookie", "content-security-policy", "x-frame-options", "date"],
)
def test_304_updates_stored_fields(field: str) -> None:
    """§4.3.4: fields in the 304 replace the stored ones (Content-Type too: we store bytes, not
    a parse of them, so §3.2's exception for processed content does not apply)."""
    merged = merge({field.replace("-", "_"): "old"}, {field: "new"})
    assert merged[field] == "new"


@pytest.mark.parametrize(
    "field",
    ["content-length", "content-encoding", "content-range", "content-md5", "etag", "content-digest",
     "connection", "transfer-encoding"],
)
def test_304_does_not_update_framing_and_integrity_fields(field: str) -> None:
    """§3.2: Content-Length is never updated, nor fields the stored content depends upon."""
    stored = {"content_length": "4", "content_encoding": "gzip", "content_range": "bytes 0-3/4",
              "content_md5": "old", "content_digest": "old"}
    merged = merge(stored, {field: "new"})
    assert merged.get(field) != "new"


def test_304_keeps_fields_it_omits() -> None:
    assert merge({"x_test_header": "kept"}, {"date": http_date(10)})["x-test-header"] == "kept"


def test_304_replaces_every_stored_instance() -> None:
    entry = make_entry(max_age=2, extra=(("x-a", "1"), ("x-a", "2")))
    merged = spec.merged_headers(entry, ResponseHead(304, (("x-a", "3"),)))
    assert [v for k, v in merged if k == "x-a"] == ["3"]


def test_freshened_entry_takes_the_304s_lifetime_and_timing() -> None:
    """§4.3.4: after a 304 the stored response is fresh again per the merged fields."""
    entry = make_entry(max_age=2, etag='"e"', x_a="1")
    not_modified = ResponseHead(304, (("cache-control", "max-age=600"), ("date", http_date(100)), ("age", "5")))
    headers = spec.merged_headers(entry, not_modified)
    decision = decide(ResponseHead(200, headers), request_time=T0 + 99, response_time=T0 + 100)
    assert isinstance(decision, spec.Store)
    fresh = spec.freshened(entry, headers, decision, request_time=T0 + 99, response_time=T0 + 100)
    assert (fresh.fresh_for, fresh.initial_age, fresh.response_time) == (600, 6, T0 + 100)
    assert fresh.body == entry.body and fresh.header("x-a") == "1" and fresh.header("age") is None
    assert spec.decide_lookup(spec.parse_cache_control(""), fresh, T0 + 200) == spec.Fresh(fresh, 106)


def test_freshened_keeps_tags_when_304_has_none() -> None:
    entry = make_entry(max_age=2, surrogate_key="a")
    headers = spec.merged_headers(entry, ResponseHead(304, (("date", http_date(5)),)))
    decision = decide(ResponseHead(200, headers), response_time=T0 + 5)
    assert isinstance(decision, spec.Store)
    assert spec.freshened(entry, headers, decision, request_time=T0 + 5, response_time=T0 + 5).tags == {"a"}


def test_304_surrogate_control_decides_the_new_lifetime() -> None:
    """The 304's targeted fields are judged with the merge, then not stored."""
    entry = make_entry(max_age=2)
    headers = spec.merged_headers(entry, ResponseHead(304, (("surrogate-control", "max-age=900"),)))
    decision = decide(ResponseHead(200, headers))
    assert isinstance(decision, spec.Store) and decision.fresh_for == 900
    assert all(k != "surrogate-control" for k, _ in decision.headers)


@pytest.mark.parametrize(
    ("stored", "not_modified", "matches"),
    [
        ({"etag": '"a"'}, {"etag": '"a"'}, True),
        ({"etag": '"a"'}, {}, True),
        ({"etag": '"a"'}, {"etag": '"b"'}, True),
        ({"last_modified": http_date(-100)}, {"last-modified": http_date(-100)}, True),
        ({"last_modified": http_date(-100)}, {"last-modified": http_date(-200)}, True),
        ({"last_modified": http_date(-100)}, {"last-modified": http_date(-50)}, False),
    ],
    ids=["same-etag", "no-validator-in-304", "different-etag-still-answers-our-conditional",
         "same-last-modified", "older-last-modified", "newer-last-modified-is-another-representation"],
)
def test_validator_matches(stored: dict[str, Any], not_modified: dict[str, str], matches: bool) -> None:
    """§4.3.3: a 304 to the conditional built from one stored response answers for it
    (cache-tests 304-etag-update-response-ETag: the stored ETag is kept and reused)."""
    entry = make_entry(max_age=2, **stored)
    assert spec.validator_matches(entry, ResponseHead(304, tuple(not_modified.items()))) is matches


# ---------------------------------------------------------------- client preconditions

ENTRY = make_entry(max_age=600, etag='"abc"', last_modified=http_date(-1000))


@pytest.mark.parametrize(
    ("method", "fields", "not_modified"),
    [
        ("GET", {"if_none_match": '"abc"'}, True),
        ("HEAD", {"if_none_match": '"abc"'}, True),
        ("GET", {"if_none_match": 'W/"abc"'}, True),
        ("GET", {"if_none_match": '"x", "abc"'}, True),
        ("GET", {"if_none_match": '"x",W/"abc"'}, True),
        ("GET", {"if_none_match": '"a,bc", "x"'}, False),
        ("GET", {"if_none_match": "*"}, True),
        ("GET", {"if_none_match": '"other"'}, False),
        ("GET", {"if_none_match": '"other"', "if_modified_since": http_date(0)}, False),
        ("GET", {"if_none_match": '"abc"', "if_modified_since": http_date(-5000)}, True),
        ("GET", {"if_modified_since": http_date(-1000)}, True),
        ("GET", {"if_modified_since": http_date(-500)}, True),
        ("GET", {"if_modified_since": http_date(-2000)}, False),
        ("GET", {"if_modified_since": "garbage"}, False),
        ("GET", {"if_modified_since": f"{http_date(0)}, {http_date(1)}"}, False),
        ("POST", {"if_none_match": '"abc"'}, False),
        ("GET", {}, False),
    ],
    ids=[
        "inm-match", "inm-match-head", "inm-weak-comparison", "inm-list", "inm-list-no-space",
        "inm-comma-inside-tag-not-split", "inm-star", "inm-no-match", "ims-ignored-beside-inm",
        "inm-wins-over-failing-ims", "ims-equal", "ims-later", "ims-earlier", "ims-invalid-ignored",
        "ims-two-dates-ignored", "not-get-or-head", "unconditional",
    ],
)
def test_client_not_modified(method: str, fields: dict[str, str], not_modified: bool) -> None:
    """§4.3.2 / RFC 9110 §13.1.2-3, §13.2.2: If-None-Match by weak comparison first;
    If-Modified-Since only without it, only for GET/HEAD and only when valid."""
    assert spec.client_not_modified(make_request(method, **fields), ENTRY) is not_modified


def test_ims_uses_date_when_no_last_modified() -> None:
    """§4.3.2: without Last-Modified the stored Date stands in."""
    entry = make_entry(max_age=600)
    assert spec.client_not_modified(make_request(if_modified_since=http_date(0)), entry)
    assert not spec.client_not_modified(make_request(if_modified_since=http_date(-1)), entry)


def test_inm_without_stored_etag_is_not_a_match() -> None:
    assert not spec.client_not_modified(make_request(if_none_match='"abc"'), make_entry(max_age=600))


def test_only_200_answered_with_304() -> None:
    entry = make_entry(404, rules=CacheRules(cache_errors=True), max_age=600, etag='"abc"')
    assert not spec.client_not_modified(make_request(if_none_match='"abc"'), entry)


def test_an_origin_answer_meets_the_clients_validators_as_the_origin_would() -> None:
    """A fetch drops the client's validators; evaluated on the answer, If-None-Match compares
    ETags and If-Modified-Since compares Last-Modified only: an origin that sends no
    Last-Modified does not evaluate it, so its Date never stands in (unlike a stored copy's)."""
    validated = ResponseHead(200, (("etag", '"abc"'), ("last-modified", http_date(-1000)), ("date", http_date(0))))
    dated_only = ResponseHead(200, (("date", http_date(-1000)),))
    assert spec.answer_not_modified(make_request(if_none_match='W/"abc"'), validated)
    assert not spec.answer_not_modified(make_request(if_none_match='"other"'), validated)
    assert spec.answer_not_modified(make_request(if_modified_since=http_date(-1000)), validated)
    assert not spec.answer_not_modified(make_request(if_modified_since=http_date(-2000)), validated)
    assert not spec.answer_not_modified(make_request(if_modified_since=http_date(0)), dated_only)
    assert not spec.answer_not_modified(make_request(if_none_match='"abc"'), replace(validated, status=404))
