"""Small builders for the cache core's tests: requests, origin responses, stored entries.

Times are offsets in seconds from ``T0`` so a test reads like a timeline.
"""

from __future__ import annotations

from dataclasses import replace

from edgeproxy.cache import spec
from edgeproxy.cache.directives import parse_cache_control
from edgeproxy.cache.entry import CacheEntry, pack_fields
from edgeproxy.cache.httpdate import format_http_date
from edgeproxy.cache.message import RequestHead, ResponseHead
from edgeproxy.cache.rules import CacheRules
from tests.support.keys import key_for

T0 = 1_700_000_000.0
"""The instant the origin answered (Tue, 14 Nov 2023 22:13:20 GMT)."""


def http_date(offset: float = 0.0) -> str:
    """IMF-fixdate ``offset`` seconds after T0."""
    return format_http_date(T0 + offset)


def make_request(
    method: str = "GET", target: str = "/r", *, host: str = "example.com", **fields: str
) -> RequestHead:
    """``make_request(cache_control="max-age=0", if_none_match='"a"')``: underscores become hyphens."""
    return RequestHead(method, host, target, _headers(fields))


def make_response(
    status: int = 200,
    *,
    max_age: int | None = None,
    date: float | None = 0.0,
    extra: tuple[tuple[str, str], ...] = (),
    **fields: str,
) -> ResponseHead:
    """An origin response. ``max_age`` adds ``Cache-Control: max-age=N``; ``date`` is an offset
    from T0 (None: no Date field); other keyword fields become headers; ``extra`` adds repeated
    or oddly named field lines as they are."""
    headers = _headers(fields)
    if max_age is not None:
        headers += (("cache-control", f"max-age={max_age}"),)
    if date is not None:
        headers += (("date", http_date(date)),)
    return ResponseHead(status, headers + tuple((k.lower(), v) for k, v in extra))


def decide(
    resp: ResponseHead,
    req: RequestHead | None = None,
    rules: CacheRules | None = None,
    *,
    req_cc: str = "",
    request_time: float = T0,
    response_time: float = T0,
) -> spec.StoreDecision:
    return spec.decide_store(
        req or make_request(),
        parse_cache_control(req_cc),
        resp,
        rules or CacheRules(),
        request_time=request_time,
        response_time=response_time,
    )


def lifetime(resp: ResponseHead, rules: CacheRules | None = None) -> float:
    """The freshness lifetime the core stores ``resp`` with (fails the test if not stored)."""
    decision = decide(resp, rules=rules)
    assert isinstance(decision, spec.Store), decision
    return decision.fresh_for


def entry_from(decision: spec.StoreDecision, resp: ResponseHead, *, at: float = T0, body: bytes = b"body") -> CacheEntry:
    """What the shell stores for a Store decision (as ``Edge._store`` builds it)."""
    assert isinstance(decision, spec.Store), decision
    return CacheEntry(
        key=key_for("example.com/r"),
        status=resp.status,
        fields=pack_fields(decision.headers),
        body=body,
        request_time=at,
        response_time=at,
        fresh_for=decision.fresh_for,
        initial_age=decision.initial_age,
        stale_while_revalidate=decision.stale_while_revalidate,
        stale_if_error=decision.stale_if_error,
        stale_if_disconnected=decision.stale_if_disconnected,
        must_revalidate=decision.must_revalidate,
        no_cache=decision.no_cache,
        tags=decision.tags,
        stored_at=at,
    )


def make_entry(status: int = 200, *, rules: CacheRules | None = None, **response: object) -> CacheEntry:
    """A stored entry, built the way the core stores ``make_response(status, **response)`` at T0."""
    resp = make_response(status, **response)  # type: ignore[arg-type]
    return entry_from(decide(resp, rules=rules), resp)


def stored_at(entry: CacheEntry, at: float) -> CacheEntry:
    """The same entry stored ``at`` seconds after T0 (for bans)."""
    return replace(entry, stored_at=T0 + at)


def _headers(fields: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((name.replace("_", "-").lower(), value) for name, value in fields.items())
