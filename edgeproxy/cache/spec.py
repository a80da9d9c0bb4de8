"""Every HTTP caching rule edgeproxy applies, in one module (RFC 9111, RFC 5861, RFC 9213).

The proxy shell asks three questions and does the I/O the answers call for:

* :func:`decide_lookup` — may this stored response answer this request, and how?
* :func:`decide_store` — may this origin response be stored, and for how long?
* :func:`merged_headers` / :func:`freshened` — fold a 304 into the stored response (§4.3.4).

Plus :func:`may_serve_stale_on_error` / :func:`may_serve_stale_disconnected`,
:func:`client_not_modified` / :func:`answer_not_modified` and :func:`invalidation_targets`.
Time is always an argument; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from edgeproxy.cache.directives import (
    DELTA_SECONDS_MAX,
    Directives,
    parse_cache_control,
    parse_delta_seconds,
    parse_surrogate_control,
)
from edgeproxy.cache.entry import CacheEntry, Headers, pack_fields
from edgeproxy.cache.httpdate import format_http_date, parse_http_date
from edgeproxy.cache.message import RequestHead, ResponseHead
from edgeproxy.cache.phases import CachePhase, NoCacheReason
from edgeproxy.cache.record import record
from edgeproxy.cache.rules import CacheRules
from edgeproxy.cache.vary import vary_names

# RFC 9110 §15.1: "heuristically cacheable" status codes.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Status codes whose caching rules this cache implements (§5.2.2.3 must-understand). 206 is
# absent: partial content is never stored (ranges are served from complete stored bodies).
UNDERSTOOD = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 500, 501, 502, 503, 504})
POISONABLE = frozenset({400, 403, 413, 429, 431})
"""Client-error statuses one client can provoke for itself (a malformed or oversized request, a
WAF or rate limiter judging that client), like 5xx: storing one would serve that client's error
to everyone, so they are kept only where a policy opts in. Other 4xx (404, 410, …) are stored
like any response, by their explicit or heuristic freshness."""
HEURISTIC_FRACTION = 0.1
"""§4.2.2: "a typical setting of this fraction might be 10%"."""
HEURISTIC_MAX = 86_400.0
"""Cap for Last-Modified heuristics so a decade-old file is not cached for a year."""

SURROGATE_DEVICE = "edgeproxy"
"""Our device token for targeted Surrogate-Control directives (``max-age=60;edgeproxy``)."""
SURROGATE_CAPABILITY = ("surrogate-capability", f'{SURROGATE_DEVICE}="Surrogate/1.0"')
"""Request header announcing that token to origins (Edge Architecture 1.0 §2)."""

# §3.1: hop-by-hop fields are never stored (RFC 9110 §7.6.1, plus legacy ones).
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authenticate", "proxy-authorization", "proxy-authentication-info",
    }
)
# §3.2: a 304 does not update Content-Length, nor the fields the stored content depends upon
# (its coding, range, digests and the ETag that names it).
_NOT_UPDATED_BY_304 = HOP_BY_HOP | {
    "content-length", "content-encoding", "content-range", "content-md5", "content-digest",
    "repr-digest", "digest", "etag",
}
SURROGATE_HEADERS = frozenset({"surrogate-key", "cache-tag", "surrogate-control"})
"""Fields for this cache only: never stored, never delivered."""


def connection_options(value: str | None) -> frozenset[str]:
    """The field names a (combined) Connection value lists: hop-by-hop for this message too
    (RFC 9110 §7.6.1), so neither forwarded nor stored."""
    if not value:
        return frozenset()
    return frozenset(token for token in (part.strip().lower() for part in value.split(",")) if token)


# ---------------------------------------------------------------- lookup decisions


@dataclass(frozen=True, slots=True)
class Fresh:
    """Serve the stored response as is."""

    entry: CacheEntry
    age: float


@dataclass(frozen=True, slots=True)
class StaleWhileRevalidate:
    """RFC 5861 §3: serve the stale response now and refresh it in the background."""

    entry: CacheEntry
    age: float


@dataclass(frozen=True, slots=True)
class Revalidate:
    """Send a conditional request built from the stored validators (§4.3.1)."""

    entry: CacheEntry
    age: float
    conditional_headers: Headers
    by_request: bool = False
    """The stored response is fresh; only the request's directives (no-cache, max-age,
    min-fresh) forbid its use: RFC 9211 §2.2 ``fwd=request``, not ``stale``."""


@dataclass(frozen=True, slots=True)
class Miss:
    """Nothing stored may be used; fetch a full response."""

    phase: CachePhase
    stale: CacheEntry | None = None
    """A stale entry with no validator, kept to answer if the fetch fails (stale-if-error, or
    disconnected: :func:`may_serve_stale_disconnected`)."""
    by_request: bool = False
    """As :attr:`Revalidate.by_request`."""


@dataclass(frozen=True, slots=True)
class OnlyIfCachedMiss:
    """§5.2.1.7: the client forbade contacting the origin and nothing fits: answer 504."""


LookupDecision = Fresh | StaleWhileRevalidate | Revalidate | Miss | OnlyIfCachedMiss


def current_age(entry: CacheEntry, now: float) -> float:
    """§4.2.3: corrected initial age plus the time the response has been resident here."""
    return entry.initial_age + max(0.0, now - entry.response_time)


def decide_lookup(req_cc: Directives, entry: CacheEntry | None, now: float) -> LookupDecision:
    """How a request with ``req_cc`` request directives may use ``entry`` (§4)."""
    only_if_cached = "only-if-cached" in req_cc
    if entry is None:
        return OnlyIfCachedMiss() if only_if_cached else Miss(CachePhase.MISS)

    age = current_age(entry, now)
    fresh_for = entry.fresh_for
    # §5.2.1.1 request max-age: the client will not accept a response older than this.
    req_max_age = req_cc.seconds("max-age")
    if req_max_age is not None:
        fresh_for = min(fresh_for, float(req_max_age))
    # §5.2.1.3 min-fresh: the response must stay fresh for at least this much longer.
    min_fresh = req_cc.seconds("min-fresh")
    if min_fresh is not None:
        fresh_for -= min_fresh
    # §5.2.1.4 / §5.2.2.4: no-cache on either side means validate before every use.
    must_validate = "no-cache" in req_cc or entry.no_cache
    staleness = age - fresh_for

    if not must_validate and staleness < 0:
        return Fresh(entry, age)
    if not must_validate and not entry.must_revalidate:
        # §5.2.1.2 max-stale: the client accepts a stale response (unbounded without a value).
        if "max-stale" in req_cc:
            unbounded = req_cc.get("max-stale") is None
            if unbounded or staleness <= (req_cc.seconds("max-stale") or 0):
                return Fresh(entry, age)
        # RFC 5861 §3: within the stale-while-revalidate window.
        if staleness < entry.stale_while_revalidate and req_max_age is None and min_fresh is None:
            return StaleWhileRevalidate(entry, age)
    if only_if_cached:
        return OnlyIfCachedMiss()
    # Only the request's directives can make a response that is fresh on its own unusable.
    by_request = age < entry.fresh_for and not entry.no_cache
    conditional = conditional_headers(entry)
    if conditional:
        return Revalidate(entry, age, conditional, by_request)
    return Miss(CachePhase.EXPIRED, stale=entry, by_request=by_request)


def conditional_headers(entry: CacheEntry) -> Headers:
    """§4.3.1: every validator the stored response has; the origin evaluates If-None-Match
    first and ignores If-Modified-Since beside it (RFC 9110 §13.2.2)."""
    headers: list[tuple[str, str]] = []
    etag = entry.header("etag")
    if etag:
        headers.append(("if-none-match", etag))
    last_modified = entry.header("last-modified")
    if last_modified:
        headers.append(("if-modified-since", last_modified))
    return tuple(headers)


def may_serve_stale_on_error(entry: CacheEntry, now: float, req_cc: Directives | None = None) -> bool:
    """RFC 5861 §4: a stale response may answer an origin error within stale-if-error, the
    response's or the request's (whose "scope of application is the request it appears in"),
    unless must-revalidate/proxy-revalidate/s-maxage (§5.2.2.2) or no-cache (§5.2.2.4) forbid
    its use without validation."""
    asked = req_cc.seconds("stale-if-error") if req_cc is not None else None
    return _stale_within(entry, now, max(entry.stale_if_error, float(asked or 0)))


def may_serve_stale_disconnected(entry: CacheEntry, now: float) -> bool:
    """RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response unless it is disconnected or
    doing so is explicitly permitted". Disconnected (the origin refused, reset or timed out
    before a complete response head: no answer at all, unlike a 5xx, which is an answer) a
    stale response may be served within the policy's ``stale.if_disconnected`` window past its
    freshness (Varnish's grace), under the same prohibitions as stale-if-error."""
    return _stale_within(entry, now, entry.stale_if_disconnected)


def _stale_within(entry: CacheEntry, now: float, window: float) -> bool:
    if entry.must_revalidate or entry.no_cache:
        return False  # RFC 9111 §4.2.4: no stale response where a directive prohibits it
    return current_age(entry, now) - entry.fresh_for < window


def remaining_ttl(entry: CacheEntry, now: float) -> float:
    """Freshness left (negative when stale), as Cache-Status ``ttl`` reports it (RFC 9211 §2.4)."""
    return entry.fresh_for - current_age(entry, now)


def storage_ttl(entry: CacheEntry, now: float) -> float:
    """How long a store should keep ``entry``: freshness plus the stale windows, and with a
    validator at least ``VALIDATOR_KEEP`` past its freshness (a stale object with an ETag is
    still worth a 304, however long it was fresh)."""
    past_freshness = stale_grace(entry)
    if _has_validator(entry):
        past_freshness = max(past_freshness, VALIDATOR_KEEP)
    return entry.fresh_for + past_freshness - current_age(entry, now)


VALIDATOR_KEEP = 300.0
"""Keep objects with validators at least this long past their freshness, so that revalidation
can use them."""


def stale_grace(entry: CacheEntry) -> float:
    """How long past its freshness ``entry`` may still be served: the longest of its stale
    windows (RFC 5861 §3, §4; disconnected, RFC 9111 §4.2.4)."""
    return max(entry.stale_while_revalidate, entry.stale_if_error, entry.stale_if_disconnected)


# ---------------------------------------------------------------- storing responses


@record
class Store:
    """Store the response with this lifetime; ``headers`` are what to keep (cleaned)."""

    fresh_for: float
    initial_age: float
    stale_while_revalidate: float
    stale_if_error: float
    must_revalidate: bool
    no_cache: bool
    headers: Headers
    tags: frozenset[str]
    heuristic: bool = False
    stale_if_disconnected: float = 0.0


@dataclass(frozen=True, slots=True)
class NoStore:
    reason: NoCacheReason


StoreDecision = Store | NoStore


def decide_store(
    req: RequestHead,
    req_cc: Directives,
    resp: ResponseHead,
    rules: CacheRules,
    *,
    request_time: float,
    response_time: float,
) -> StoreDecision:
    """§3: whether a shared cache may store ``resp`` to ``req``, and the lifetime it gets.

    ``resp`` must be a response to GET: the shell fetches HEAD misses as GET, so a HEAD
    request may fill the cache, but a bodiless response to HEAD must never be passed here.
    """
    if req.method not in ("GET", "HEAD"):
        return NoStore(NoCacheReason.METHOD)
    if resp.status == 206:
        # We do not assemble ranges. Content-Range on any other status has no meaning
        # (RFC 9110 §14.4) and the response is complete, so it is stored like any other.
        return NoStore(NoCacheReason.PARTIAL)
    if resp.status < 200 or resp.status == 304:
        return NoStore(NoCacheReason.STATUS)  # §3: only final responses; a 304 only updates
    cc, targeted = caching_directives(resp)
    # §5.2.2.3: must-understand limits storage to caches that know the status code, and then
    # overrides no-store.
    must_understand = "must-understand" in cc
    if must_understand and resp.status not in UNDERSTOOD:
        return NoStore(NoCacheReason.STATUS)
    # §5.2.1.5 / §5.2.2.5: no-store on the request or the response.
    if "no-store" in req_cc:
        return NoStore(NoCacheReason.REQUEST_NO_STORE)
    if "no-store" in cc and not must_understand:
        return NoStore(NoCacheReason.NO_STORE)
    # §5.2.2.7: a shared cache must not store a private response. The qualified form
    # private="field" lets us store the response without those fields.
    private_fields = cc.field_names("private")
    if "private" in cc and not private_fields:
        return NoStore(NoCacheReason.PRIVATE)
    # §3.5: a response to a request with Authorization only with public, s-maxage or
    # must-revalidate.
    if req.header("authorization") is not None and not (
        "public" in cc or "s-maxage" in cc or "must-revalidate" in cc
    ):
        return NoStore(NoCacheReason.AUTHORIZATION)
    if vary_names(resp.header("vary")) is None:
        return NoStore(NoCacheReason.VARY_STAR)  # §4.1: Vary: * never matches, so never store

    headers = _storable_headers(resp, private_fields, cc)
    if resp.header("set-cookie") is not None and any(name == "set-cookie" for name, _ in headers):
        if rules.set_cookie != "strip":
            return NoStore(NoCacheReason.SET_COOKIE)
        headers = tuple((k, v) for k, v in headers if k != "set-cookie")

    lifetime = _lifetime(resp, cc, rules, targeted, response_time)
    if isinstance(lifetime, NoStore):
        return lifetime
    fresh_for, heuristic = lifetime
    # §5.2.2.2 / §5.2.2.8 / §5.2.2.10: no stale use without validation. s-maxage implies it only
    # where the origin does not allow stale use outright in the same directives: RFC 5861 §4 has
    # stale-if-error apply "regardless of other freshness information", and
    # `s-maxage=1, stale-while-revalidate=59` (Next.js ISR) means what it says at every CDN.
    explicit_stale = "stale-while-revalidate" in cc or "stale-if-error" in cc
    must_revalidate = "must-revalidate" in cc or "proxy-revalidate" in cc or ("s-maxage" in cc and not explicit_stale)
    no_cache = "no-cache" in cc and not cc.field_names("no-cache") and rules.force_ttl is None
    forbids_stale = must_revalidate or no_cache  # §4.2.4: no stale response when prohibited
    return Store(
        fresh_for=fresh_for,
        initial_age=initial_age(resp, request_time, response_time),
        stale_while_revalidate=0.0 if forbids_stale else _window(cc, "stale-while-revalidate", rules.stale_while_revalidate),
        stale_if_error=0.0 if forbids_stale else _window(cc, "stale-if-error", rules.stale_if_error),
        must_revalidate=must_revalidate,
        no_cache=no_cache,
        headers=headers,
        tags=surrogate_keys(resp),
        heuristic=heuristic,
        # §4.2.4 "disconnected": no origin directive for it, only the operator's window.
        stale_if_disconnected=0.0 if forbids_stale else rules.stale_if_disconnected,
    )


def caching_directives(resp: ResponseHead) -> tuple[Directives, bool]:
    """The directives this cache obeys, and whether they came from a field targeted at it.

    RFC 9213 §2.2: a cache with a target list uses the first targeted field that is present and
    non-empty, and then MUST ignore Cache-Control and Expires. Our list: Surrogate-Control
    directives for :data:`SURROGATE_DEVICE`, then CDN-Cache-Control.
    """
    for targeted in (
        parse_surrogate_control(resp.header("surrogate-control"), SURROGATE_DEVICE),
        parse_cache_control(resp.header("cdn-cache-control")),
    ):
        if targeted:
            return targeted, True
    return parse_cache_control(resp.header("cache-control")), False


def _lifetime(
    resp: ResponseHead, cc: Directives, rules: CacheRules, targeted: bool, response_time: float
) -> tuple[float, bool] | NoStore:
    """The freshness lifetime to store with (and whether it is heuristic), policy applied."""
    origin, heuristic = freshness_lifetime(resp, cc, response_time, use_expires=not targeted)
    is_error = resp.status >= 400
    if is_error and resp.status in rules.negative_ttl and (rules.force_ttl is not None or origin is None or heuristic):
        return _clamp_max(rules.negative_ttl[resp.status], rules), False
    provokable = resp.status in POISONABLE or resp.status >= 500
    if provokable and not rules.cache_errors and resp.status not in rules.negative_ttl:
        return NoStore(NoCacheReason.STATUS)  # against poisoning: errors only where a policy opts in
    if rules.force_ttl is not None:
        # Forced TTLs apply to errors only where the operator opted in (cache_errors) above.
        return rules.force_ttl, False
    if provokable and (origin is None or heuristic):
        # cache_errors stores provokable errors that carry explicit freshness, never guessed ones.
        return NoStore(NoCacheReason.NO_FRESHNESS)
    if rules.default_ttl is not None and (origin is None or heuristic) and _heuristic_allowed(resp, cc):
        # The operator's default replaces the §4.2.2 heuristic; it is a heuristic all the same.
        return _clamp_max(rules.default_ttl, rules), True
    if origin is None:
        if "no-cache" in cc and _has_validator(resp):
            return 0.0, False  # stored only to be revalidated before each use (§5.2.2.4)
        return NoStore(NoCacheReason.NO_FRESHNESS)
    if rules.min_ttl is not None and "no-cache" not in cc:
        # min_ttl raises what the origin said; never a no-cache response, which must be
        # validated on every use however long it is kept.
        origin = max(origin, rules.min_ttl)
    return _clamp_max(origin, rules), heuristic


def _clamp_max(lifetime: float, rules: CacheRules) -> float:
    return min(lifetime, rules.max_ttl) if rules.max_ttl is not None else float(lifetime)


def freshness_lifetime(
    resp: ResponseHead, cc: Directives, response_time: float, *, use_expires: bool = True
) -> tuple[float | None, bool]:
    """§4.2.1 freshness lifetime for a shared cache, from the directives this cache obeys.

    Returns (lifetime, is_heuristic); lifetime None when the response has no freshness at all.
    ``use_expires`` is False when the directives came from a targeted field (RFC 9213 §2.2).
    """
    s_maxage = cc.seconds("s-maxage")
    if s_maxage is not None:  # §4.2.1: s-maxage wins for a shared cache
        return float(s_maxage), False
    max_age = cc.seconds("max-age")
    if max_age is not None:
        return float(max_age), False
    date = _date_or(resp, response_time)
    expires_raw = resp.header("expires") if use_expires else None
    if expires_raw is not None:
        expires = parse_http_date(expires_raw, now=response_time)
        # §5.3: an invalid Expires (e.g. "0"), or two of them, means "already expired".
        return (max(0.0, expires - date) if expires is not None else 0.0), False
    if _heuristic_allowed(resp, cc):
        # §4.2.2: heuristic freshness, only when no explicit freshness was given; a fraction
        # of the time since Last-Modified, which must be earlier than Date to mean anything.
        last_modified = parse_http_date(resp.header("last-modified"), now=response_time)
        if last_modified is not None and last_modified < date:
            return min(HEURISTIC_MAX, HEURISTIC_FRACTION * (date - last_modified)), True
    return None, False


def _heuristic_allowed(resp: ResponseHead, cc: Directives) -> bool:
    """§4.2.2: heuristics only for heuristically cacheable statuses or responses marked public."""
    return resp.status in HEURISTICALLY_CACHEABLE or "public" in cc


def _date_or(resp: ResponseHead, response_time: float) -> float:
    """The Date field, or the time the response arrived when it is absent or invalid
    (RFC 9110 §6.6.1)."""
    date = parse_http_date(resp.header("date"), now=response_time)
    return response_time if date is None else date


def initial_age(resp: ResponseHead, request_time: float, response_time: float) -> float:
    """§4.2.3 corrected_initial_age."""
    date = parse_http_date(resp.header("date"), now=response_time)
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, _age_value(resp.header("age")) + response_delay)


def _age_value(raw: str | None) -> float:
    """§5.1 Age as one delta-seconds. Anything else (negative, fractional, a list, two field
    lines, parameters) is untrustworthy, and we consider the response stale rather than fresh,
    as the cache-tests.fyi age-parse suite requires."""
    if raw is None:
        return 0.0
    value = raw.strip(" \t")
    if not value.isascii() or not value.isdigit():
        return float(DELTA_SECONDS_MAX)
    return float(parse_delta_seconds(value))


def _window(cc: Directives, name: str, default: float | None) -> float:
    value = cc.seconds(name)
    return float(value) if value is not None else float(default or 0.0)


def _has_validator(message: ResponseHead | CacheEntry) -> bool:
    return message.header("etag") is not None or message.header("last-modified") is not None


def _storable_headers(resp: ResponseHead, private_fields: tuple[str, ...], cc: Directives) -> Headers:
    """§3.1: drop hop-by-hop fields and those Connection names, surrogate fields, Age (we
    generate our own, §5.1), and the fields named by ``private="..."`` / ``no-cache="..."``
    (§5.2.2.7 / §5.2.2.4: those must not be reused without validation)."""
    nominated = {*connection_options(resp.header("connection")), *private_fields, *cc.field_names("no-cache")}
    drop = _NEVER_STORED | nominated if nominated else _NEVER_STORED
    return tuple((k, v) for k, v in resp.headers if k not in drop)


_NEVER_STORED = HOP_BY_HOP | SURROGATE_HEADERS | {"age"}


def surrogate_keys(resp: ResponseHead) -> frozenset[str]:
    """Purge tags from Surrogate-Key (space-separated) and Cache-Tag (comma-separated)."""
    tags: set[str] = set()
    surrogate = resp.header("surrogate-key")
    if surrogate:
        tags.update(t for t in surrogate.replace(",", " ").split() if t)
    cache_tag = resp.header("cache-tag")
    if cache_tag:
        tags.update(t.strip() for t in cache_tag.split(",") if t.strip())
    return frozenset(tags) if tags else NO_TAGS


NO_TAGS: frozenset[str] = frozenset()
"""Shared by every object without tags (an empty frozenset per object costs ~200 bytes)."""


def with_date(headers: Headers, response_time: float) -> Headers:
    """RFC 9110 §6.6.1: a cache that stores a response lacking Date records when it arrived."""
    if any(k == "date" for k, _ in headers):
        return headers
    return (*headers, ("date", format_http_date(response_time)))


# ---------------------------------------------------------------- validation


def merged_headers(entry: CacheEntry, resp: ResponseHead) -> Headers:
    """§4.3.4 / §3.2: the stored header fields, each field the 304 carries replacing all stored
    instances of it, except the framing and integrity fields the stored content depends on.

    The 304's surrogate fields and Age are kept in the result so that :func:`decide_store`
    judges the merged response as it arrived; it strips them again before storing.
    """
    updates = {k for k, _ in resp.headers if k not in _NOT_UPDATED_BY_304}
    kept = tuple((k, v) for k, v in entry.headers if k not in updates)
    return kept + tuple((k, v) for k, v in resp.headers if k in updates)


def freshened(
    entry: CacheEntry, headers: Headers, decision: Store, *, request_time: float, response_time: float
) -> CacheEntry:
    """§4.3.4: the stored response after a successful validation: merged headers, new timing
    and the lifetime decided for the merged response."""
    return replace(
        entry,
        fields=pack_fields(decision.headers if decision.headers else headers),
        tags=decision.tags or entry.tags,
        **_timing(decision, request_time, response_time),
    )


def new_entry(
    decision: Store,
    *,
    key: str,
    status: int,
    body: bytes,
    vary: Headers,
    request_time: float,
    response_time: float,
) -> CacheEntry:
    """The entry to store for a response ``decide_store`` accepted."""
    return CacheEntry(
        key=key, status=status, fields=pack_fields(decision.headers), body=body, vary=vary, tags=decision.tags,
        **_timing(decision, request_time, response_time),
    )


def _timing(decision: Store, request_time: float, response_time: float) -> dict[str, Any]:
    """The lifetime and §4.2.3 timing fields an entry takes from a store decision."""
    return {
        "request_time": request_time,
        "response_time": response_time,
        "fresh_for": decision.fresh_for,
        "initial_age": decision.initial_age,
        "stale_while_revalidate": decision.stale_while_revalidate,
        "stale_if_error": decision.stale_if_error,
        "stale_if_disconnected": decision.stale_if_disconnected,
        "must_revalidate": decision.must_revalidate,
        "no_cache": decision.no_cache,
        "stored_at": response_time,
    }

def validator_matches(entry: CacheEntry, resp: ResponseHead) -> bool:
    """§4.3.3: does this 304 let us reuse ``entry``?

    The shell validates exactly one stored response per request (each Vary variant has its own
    key) with a conditional built from that response's validators, so a 304 answers for it.
    §4.3.4's selection by the 304's own validators exists to choose among several stored
    responses; here it would only turn a good 304 into a useless one. The 304's ETag is not
    copied over the stored one either (see ``_NOT_UPDATED_BY_304``). The one refusal: a 304
    whose Last-Modified is later than ours describes a newer representation.
    """
    new_lm = parse_http_date(resp.header("last-modified"))
    old_lm = parse_http_date(entry.header("last-modified"))
    return new_lm is None or old_lm is None or new_lm <= old_lm


# ---------------------------------------------------------------- client conditionals

_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def client_not_modified(req: RequestHead, entry: CacheEntry) -> bool:
    """RFC 9111 §4.3.2 / RFC 9110 §13.2.2: answer a client's precondition from the cache.

    If-None-Match uses weak comparison (RFC 9110 §13.1.2) and ``*`` matches any stored
    representation; If-Modified-Since is ignored when If-None-Match is present, for methods
    other than GET/HEAD and when it is not one valid date (§13.1.3), and it is compared with
    Last-Modified or, lacking that, Date (RFC 9111 §4.3.2).
    """
    return _not_modified(req, entry, date_stands_in=True)


def answer_not_modified(req: RequestHead, resp: ResponseHead) -> bool:
    """The client's precondition against an origin answer to a request sent without it (a fetch
    asks for the whole object, to store it): the 304 the origin would have sent. As the origin
    would, If-Modified-Since is compared with Last-Modified only, never with Date."""
    return _not_modified(req, resp, date_stands_in=False)


def _not_modified(req: RequestHead, message: CacheEntry | ResponseHead, *, date_stands_in: bool) -> bool:
    if req.method not in ("GET", "HEAD") or message.status != 200:
        return False
    inm = req.header("if-none-match")
    if inm is not None:
        return none_match_hits(inm, message.header("etag"))
    ims = parse_http_date(req.header("if-modified-since"))
    if ims is None:
        return False  # the common case, on every hit: no date parsed
    modified = parse_http_date(message.header("last-modified"))
    if modified is None and date_stands_in:
        modified = parse_http_date(message.header("date"))
    return modified is not None and modified <= ims


def none_match_hits(if_none_match: str, etag: str | None) -> bool:
    """RFC 9110 §13.1.2: If-None-Match with weak comparison; ``*`` matches any representation.
    Unquoted (invalid) tags are compared as sent, so a sloppy origin still gets 304s."""
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    wanted = _ENTITY_TAG.findall(if_none_match) or [t.strip() for t in if_none_match.split(",")]
    return _weak(etag.strip()) in {_weak(tag) for tag in wanted}


def _weak(etag: str) -> str:
    """The opaque-tag that weak comparison compares (RFC 9110 §8.8.3.2)."""
    return etag.removeprefix("W/")


# ---------------------------------------------------------------- ranges from stored responses


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One satisfiable byte range of a stored body; ``last`` is inclusive (RFC 9110 §14.1.1)."""

    first: int
    last: int
    size: int
    """The complete length, for Content-Range."""

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A byte range that starts past the end of the body: 416, Content-Range ``bytes */size``."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def requested_range(req: RequestHead, entry: CacheEntry) -> ByteRange | Unsatisfiable | None:
    """RFC 9110 §14.2: the one byte range of a stored complete 200 that a GET asks for.

    None means "send the whole representation", which a server may always do (§14.2): no Range,
    a unit other than bytes, a syntax error, several ranges (no multipart from the cache), or an
    If-Range that does not name exactly this representation (§13.1.5).
    """
    raw = req.header("range")
    if raw is None or req.method != "GET" or entry.status != 200:
        return None
    if_range = req.header("if-range")
    if if_range is not None and not _if_range_holds(if_range.strip(), entry):
        return None
    unit, equals, ranges = raw.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in ranges:
        return None
    first_text, dash, last_text = ranges.strip().partition("-")
    size = len(entry.body)
    if not dash or not (first_text.isdigit() or (not first_text and last_text.isdigit())):
        return None
    if last_text and not last_text.isdigit():
        return None
    if not first_text:  # suffix-range: the last N bytes (§14.1.2)
        suffix = int(last_text)
        return ByteRange(max(0, size - suffix), size - 1, size) if suffix and size else Unsatisfiable(size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid range-spec: ignore the field
    if first >= size:
        return Unsatisfiable(size)
    return ByteRange(first, min(int(last_text), size - 1) if last_text else size - 1, size)


def _if_range_holds(if_range: str, entry: CacheEntry) -> bool:
    """§13.1.5: an entity-tag must match the stored one by strong comparison; a date must equal
    the stored Last-Modified (the cache cannot tell whether it is a strong validator otherwise)."""
    if if_range.startswith(('"', "W/")):
        etag = entry.header("etag")
        return etag is not None and not if_range.startswith("W/") and not etag.startswith("W/") and etag.strip() == if_range
    date = parse_http_date(if_range)
    return date is not None and date == parse_http_date(entry.header("last-modified"))


# ---------------------------------------------------------------- invalidation


def invalidation_targets(req: RequestHead, resp: ResponseHead, request_authority: str) -> list[str]:
    """§4.4: a non-error response to an unsafe method invalidates the target URI, and the
    Location / Content-Location URIs (relative ones resolved against the target) only when
    they have the request's authority: "MUST NOT ... if the origin ... differs"."""
    if req.method in ("GET", "HEAD", "OPTIONS", "TRACE") or not 200 <= resp.status < 400:
        return []
    # The authority is kept as sent (a policy may key it case-sensitively); hosts compare
    # case-insensitively (RFC 3986 §6.2.2.1).
    authority = request_authority
    base = f"//{authority}{req.target}"
    targets = [f"{authority}{req.target}"]
    for field in ("location", "content-location"):
        value = resp.header(field)
        if not value:
            continue
        parts = urlsplit(urljoin(base, value.strip()))
        if parts.netloc.lower() == authority.lower():
            query = f"?{parts.query}" if parts.query else ""
            targets.append(f"{authority}{parts.path or '/'}{query}")
    return targets
