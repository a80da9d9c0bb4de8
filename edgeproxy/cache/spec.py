"""Every HTTP caching rule edgeproxy applies, in one module (RFC 9111, RFC 5861, RFC 9213).

The proxy shell asks three questions and does the I/O the answers call for:

* :func:`decide_lookup` — may this stored response answer this request, and how?
* :func:`decide_store` — may this origin response be stored, and for how long?
* :func:`merge_not_modified` — fold a 304 into the stored response (§4.3.4).

Plus :func:`may_serve_stale_on_error` and :func:`invalidation_targets`. Time is always an
argument; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from edgeproxy.cache.directives import Directives, parse_cache_control
from edgeproxy.cache.entry import CacheEntry, Headers
from edgeproxy.cache.httpdate import format_http_date, parse_http_date
from edgeproxy.cache.message import RequestHead, ResponseHead
from edgeproxy.cache.phases import CachePhase, NoCacheReason
from edgeproxy.cache.rules import CacheRules

# RFC 9110 §15.1: "heuristically cacheable" status codes.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Statuses we are able to store at all (§3: "understood" by this cache). 206 needs range
# assembly, which we do not do, so partial content is never stored.
UNDERSTOOD = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 500, 501, 502, 503, 504})
HEURISTIC_FRACTION = 0.1
"""§4.2.2: "a typical setting of this fraction might be 10%"."""
HEURISTIC_MAX = 86_400.0
"""Cap for Last-Modified heuristics so a decade-old file is not cached for a year."""

# §3.1 / §4.3.4: fields not taken from a 304 or not stored.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authenticate", "proxy-authorization",
    }
)
_NOT_UPDATED_BY_304 = HOP_BY_HOP | {"content-length", "content-encoding", "content-range", "content-type"}
SURROGATE_HEADERS = frozenset({"surrogate-key", "cache-tag", "surrogate-control"})


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


@dataclass(frozen=True, slots=True)
class Miss:
    """Nothing stored may be used; fetch a full response."""

    phase: CachePhase
    stale: CacheEntry | None = None
    """A stale entry with no validator, kept for stale-if-error if the fetch fails."""


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
            limit = req_cc.get("max-stale")
            if limit is None or staleness <= req_cc.seconds("max-stale"):  # type: ignore[operator]
                return Fresh(entry, age)
        # RFC 5861 §3: within the stale-while-revalidate window.
        if staleness < entry.stale_while_revalidate and req_max_age is None and min_fresh is None:
            return StaleWhileRevalidate(entry, age)
    if only_if_cached:
        return OnlyIfCachedMiss()
    conditional = conditional_headers(entry)
    if conditional:
        return Revalidate(entry, age, conditional)
    return Miss(CachePhase.EXPIRED, stale=entry)


def conditional_headers(entry: CacheEntry) -> Headers:
    """§4.3.1: validators from the stored response, strong ETag preferred to Last-Modified."""
    headers: list[tuple[str, str]] = []
    etag = entry.header("etag")
    if etag:
        headers.append(("if-none-match", etag))
    last_modified = entry.header("last-modified")
    if last_modified:
        headers.append(("if-modified-since", last_modified))
    return tuple(headers)


def may_serve_stale_on_error(entry: CacheEntry, now: float) -> bool:
    """RFC 5861 §4: a stale response may answer an origin error within stale-if-error, unless
    must-revalidate/proxy-revalidate/s-maxage forbid any stale use (RFC 9111 §5.2.2.2)."""
    if entry.must_revalidate:
        return False
    return current_age(entry, now) - entry.fresh_for < entry.stale_if_error


def remaining_ttl(entry: CacheEntry, now: float) -> float:
    """Freshness left (negative when stale), as Cache-Status ``ttl`` reports it (RFC 9211 §2.4)."""
    return entry.fresh_for - current_age(entry, now)


def storage_ttl(entry: CacheEntry, now: float) -> float:
    """How long a store should keep ``entry``: freshness plus the stale windows, or long enough
    to revalidate when a validator exists (a stale object with an ETag is still worth a 304)."""
    grace = max(entry.stale_while_revalidate, entry.stale_if_error)
    keep = entry.fresh_for + grace - current_age(entry, now)
    if entry.header("etag") or entry.header("last-modified"):
        keep = max(keep, VALIDATOR_KEEP)
    return keep


VALIDATOR_KEEP = 300.0
"""Keep objects with validators at least this long past expiry so revalidation can use them."""


# ---------------------------------------------------------------- storing responses


@dataclass(frozen=True, slots=True)
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
    """§3: whether a shared cache may store ``resp`` to ``req``, and the lifetime it gets."""
    if req.method not in ("GET", "HEAD"):
        return NoStore(NoCacheReason.METHOD)
    if resp.status == 206 or resp.header("content-range"):
        return NoStore(NoCacheReason.PARTIAL)
    cc = parse_cache_control(resp.header("cache-control"))
    # §5.2.1.5 / §5.2.2.5: no-store on the request or the response.
    if "no-store" in req_cc:
        return NoStore(NoCacheReason.REQUEST_NO_STORE)
    if "no-store" in cc:
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
    vary = resp.header("vary")
    if vary and any(part.strip() == "*" for part in vary.split(",")):
        return NoStore(NoCacheReason.VARY_STAR)
    if resp.status not in UNDERSTOOD:
        return NoStore(NoCacheReason.STATUS)

    headers = _storable_headers(resp.headers, private_fields, cc)
    if any(name == "set-cookie" for name, _ in headers):
        if rules.set_cookie != "strip":
            return NoStore(NoCacheReason.SET_COOKIE)
        headers = tuple((k, v) for k, v in headers if k != "set-cookie")

    cdn_cc = parse_cache_control(resp.header("cdn-cache-control"))
    lifetime, heuristic = freshness_lifetime(resp, cc, cdn_cc, response_time)
    explicit = lifetime is not None and not heuristic
    is_error = resp.status >= 400
    if rules.force_ttl is not None:
        lifetime, heuristic = rules.force_ttl, False
    elif is_error and resp.status in rules.negative_ttl and not explicit:
        lifetime, heuristic = rules.negative_ttl[resp.status], False
    elif lifetime is None:
        if rules.default_ttl is not None and resp.status in HEURISTICALLY_CACHEABLE:
            lifetime = rules.default_ttl
        elif "no-cache" in cc and _has_validator(resp):
            lifetime = 0.0  # stored only to be revalidated (§5.2.2.4)
        else:
            return NoStore(NoCacheReason.NO_FRESHNESS)
    if is_error and not rules.cache_errors and resp.status not in rules.negative_ttl:
        # Against poisoning: error pages are not kept unless a policy opts in.
        return NoStore(NoCacheReason.STATUS)
    if rules.force_ttl is None:
        if rules.min_ttl is not None and "no-cache" not in cc:
            lifetime = max(lifetime, rules.min_ttl)
        if rules.max_ttl is not None:
            lifetime = min(lifetime, rules.max_ttl)

    swr = _window(cc, cdn_cc, "stale-while-revalidate", rules.stale_while_revalidate)
    sie = _window(cc, cdn_cc, "stale-if-error", rules.stale_if_error)
    # §5.2.2.2 / §5.2.2.8 / §5.2.2.10: no stale use without validation.
    must_revalidate = any(d in cc for d in ("must-revalidate", "proxy-revalidate", "s-maxage")) or (
        "must-revalidate" in cdn_cc
    )
    no_cache = "no-cache" in cc and not cc.field_names("no-cache") and rules.force_ttl is None
    return Store(
        fresh_for=float(lifetime),
        initial_age=initial_age(resp, request_time, response_time),
        stale_while_revalidate=0.0 if must_revalidate else swr,
        stale_if_error=0.0 if must_revalidate else sie,
        must_revalidate=must_revalidate,
        no_cache=no_cache,
        headers=headers,
        tags=surrogate_keys(resp),
        heuristic=heuristic,
    )


def freshness_lifetime(
    resp: ResponseHead, cc: Directives, cdn_cc: Directives, response_time: float
) -> tuple[float | None, bool]:
    """§4.2.1 (shared cache), with RFC 9213 CDN-Cache-Control taking precedence.

    Returns (lifetime, is_heuristic); lifetime None when the response has no freshness at all.
    """
    # RFC 9213 §2.1: a CDN cache uses CDN-Cache-Control in place of Cache-Control when present.
    if cdn_cc:
        for name in ("s-maxage", "max-age"):
            value = cdn_cc.seconds(name)
            if value is not None:
                return float(value), False
        if "no-store" in cdn_cc or "no-cache" in cdn_cc or "private" in cdn_cc:
            return 0.0, False
    s_maxage = cc.seconds("s-maxage")
    if s_maxage is not None:  # §4.2.1: s-maxage wins for a shared cache
        return float(s_maxage), False
    max_age = cc.seconds("max-age")
    if max_age is not None:
        return float(max_age), False
    expires_raw = resp.header("expires")
    if expires_raw is not None:
        expires = parse_http_date(expires_raw)
        date = parse_http_date(resp.header("date")) or response_time
        # §5.3: an invalid Expires (e.g. "0") means "already expired".
        return (max(0.0, expires - date) if expires is not None else 0.0), False
    if resp.status in HEURISTICALLY_CACHEABLE:
        # §4.2.2: heuristic freshness, only when no explicit freshness was given.
        last_modified = parse_http_date(resp.header("last-modified"))
        date = parse_http_date(resp.header("date")) or response_time
        if last_modified is not None and last_modified < date:
            return min(HEURISTIC_MAX, HEURISTIC_FRACTION * (date - last_modified)), True
    return None, False


def initial_age(resp: ResponseHead, request_time: float, response_time: float) -> float:
    """§4.2.3 corrected_initial_age."""
    date = parse_http_date(resp.header("date"))
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    age_value = _age_header(resp.header("age"))
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, age_value + response_delay)


def _age_header(raw: str | None) -> float:
    if not raw:
        return 0.0
    first = raw.split(",", 1)[0].strip()
    return float(first) if first.isdigit() else 0.0


def _window(cc: Directives, cdn_cc: Directives, name: str, default: float | None) -> float:
    for directives in (cdn_cc, cc):
        value = directives.seconds(name)
        if value is not None:
            return float(value)
    return float(default or 0.0)


def _has_validator(resp: ResponseHead) -> bool:
    return resp.header("etag") is not None or resp.header("last-modified") is not None


def _storable_headers(headers: Headers, private_fields: tuple[str, ...], cc: Directives) -> Headers:
    """Drop hop-by-hop and surrogate fields, and the fields named by ``private="..."`` and
    ``no-cache="..."`` (§5.2.2.4 / §5.2.2.7: those must not be reused without validation)."""
    drop = HOP_BY_HOP | SURROGATE_HEADERS | set(private_fields) | set(cc.field_names("no-cache"))
    return tuple((k, v) for k, v in headers if k not in drop)


def surrogate_keys(resp: ResponseHead) -> frozenset[str]:
    """Purge tags from Surrogate-Key (space-separated) and Cache-Tag (comma-separated)."""
    tags: set[str] = set()
    surrogate = resp.header("surrogate-key")
    if surrogate:
        tags.update(t for t in surrogate.replace(",", " ").split() if t)
    cache_tag = resp.header("cache-tag")
    if cache_tag:
        tags.update(t.strip() for t in cache_tag.split(",") if t.strip())
    return frozenset(tags)


def with_date(headers: Headers, response_time: float) -> Headers:
    """RFC 9110 §6.6.1: a cache that stores a response lacking Date records when it arrived."""
    if any(k == "date" for k, _ in headers):
        return headers
    return (*headers, ("date", format_http_date(response_time)))


# ---------------------------------------------------------------- validation


def merge_not_modified(
    entry: CacheEntry, resp: ResponseHead, decision: Store, *, request_time: float, response_time: float
) -> CacheEntry:
    """§4.3.4: a 304 freshens the stored response: its header fields replace the stored ones
    (except framing fields) and the entry gets new timing and lifetime."""
    updates = {k for k, _ in resp.headers if k not in _NOT_UPDATED_BY_304 and k not in SURROGATE_HEADERS}
    kept = tuple((k, v) for k, v in entry.headers if k not in updates)
    fresh = tuple((k, v) for k, v in resp.headers if k in updates)
    return replace(
        entry,
        headers=kept + fresh,
        request_time=request_time,
        response_time=response_time,
        fresh_for=decision.fresh_for,
        initial_age=decision.initial_age,
        stale_while_revalidate=decision.stale_while_revalidate,
        stale_if_error=decision.stale_if_error,
        must_revalidate=decision.must_revalidate,
        no_cache=decision.no_cache,
        tags=decision.tags or entry.tags,
        stored_at=response_time,
    )


def validator_matches(entry: CacheEntry, resp: ResponseHead) -> bool:
    """§4.3.4: a 304 updates the stored response it selects (by strong/weak ETag or by
    Last-Modified when no ETag is involved)."""
    new_etag = resp.header("etag")
    old_etag = entry.header("etag")
    if new_etag and old_etag:
        return _opaque(new_etag) == _opaque(old_etag)
    if new_etag and not old_etag:
        return False
    new_lm = resp.header("last-modified")
    old_lm = entry.header("last-modified")
    return new_lm is None or old_lm is None or new_lm == old_lm


def _opaque(etag: str) -> str:
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


# ---------------------------------------------------------------- client conditionals


def client_not_modified(req: RequestHead, entry: CacheEntry) -> bool:
    """RFC 9110 §13.2.2: answer a client's If-None-Match / If-Modified-Since from the cache.

    If-None-Match uses weak comparison (§13.1.2); If-Modified-Since is ignored when
    If-None-Match is present (§13.1.3) and only for GET/HEAD.
    """
    if req.method not in ("GET", "HEAD") or entry.status != 200:
        return False
    inm = req.header("if-none-match")
    etag = entry.header("etag")
    if inm is not None:
        if etag is None:
            return False
        if inm.strip() == "*":
            return True
        wanted = {_opaque(tag) for tag in inm.split(",") if tag.strip()}
        return _opaque(etag) in wanted
    ims = parse_http_date(req.header("if-modified-since"))
    last_modified = parse_http_date(entry.header("last-modified")) or parse_http_date(entry.header("date"))
    return ims is not None and last_modified is not None and last_modified <= ims


# ---------------------------------------------------------------- invalidation


def invalidation_targets(req: RequestHead, resp: ResponseHead, request_authority: str) -> list[str]:
    """§4.4: a non-error response to an unsafe method invalidates the target URI and the
    Location / Content-Location URIs when they share the request's origin."""
    if req.method in ("GET", "HEAD", "OPTIONS", "TRACE") or not 200 <= resp.status < 400:
        return []
    targets = [f"{request_authority}{req.target}"]
    for field in ("location", "content-location"):
        value = resp.header(field)
        if not value:
            continue
        if value.startswith("/") and not value.startswith("//"):
            targets.append(f"{request_authority}{value}")
            continue
        parts = urlsplit(value)
        if parts.netloc.lower() == request_authority:
            path = parts.path or "/"
            targets.append(f"{request_authority}{path}{'?' + parts.query if parts.query else ''}")
    return targets
