"""The request driver: one client request in, one reply out.

Each step asks the sans-IO core (``edgeproxy.cache.spec``) what to do and performs the I/O it
calls for; no caching rule is decided here. The server layer (``server.py``) only converts
between the wire and :class:`Incoming` / :class:`Reply`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from edgeproxy.cache import spec
from edgeproxy.cache.bans import Ban, BanList, BanVerdict
from edgeproxy.cache.directives import Directives, parse_cache_control
from edgeproxy.cache.entry import CacheEntry, Headers, StoredObject, VaryIndex, pack_fields
from edgeproxy.cache.key import key_hash, variant_key_text
from edgeproxy.cache.message import RequestHead, ResponseHead
from edgeproxy.cache.phases import CachePhase, NoCacheReason
from edgeproxy.cache.record import record
from edgeproxy.cache.status import CacheStatus, forwarded_because
from edgeproxy.cache.vary import selecting_headers, vary_names
from edgeproxy.policies.keying import RequestKey, request_key
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.model import OriginSettings, PersonalizeSettings, Policy
from edgeproxy.policies.routing import Route, RouteCache
from edgeproxy.proxy import hdrs
from edgeproxy.proxy.collapse import Collapser, Failed, Filled, Lead, Uncacheable
from edgeproxy.proxy.hitformiss import HitForMiss
from edgeproxy.proxy.personalization import BASE_ONLY_FIELDS, PersonalizeStage
from edgeproxy.proxy.reply import Incoming, Reply, Reuse
from edgeproxy.proxy.server import render_fields
from edgeproxy.proxy.upstream import Upstream, UpstreamError, UpstreamFailure, UpstreamResponse
from edgeproxy.storage.locks import FillLock, Lease
from edgeproxy.storage.tiered import Tier, TieredStore
from edgeproxy.tasks import cancel_and_wait

log = logging.getLogger("edgeproxy.edge")

# RFC 5861 §4: the origin statuses that count as "an error" for stale-if-error.
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})
# Response fields a 304 to the client carries (RFC 9110 §15.4.5).
HFM_EXEMPT = frozenset(
    {NoCacheReason.REQUEST_NO_STORE, NoCacheReason.METHOD, NoCacheReason.PARTIAL, NoCacheReason.PRIVATE}
)
"""Reasons that say something about this request (or this one user: ``private``), not about the
resource for everyone: no hit-for-miss."""
MAX_VARIANTS = 32
"""Variants stored per URL (Vary); more are served but not stored."""
FLEET_LOCK_MAX = 10.0
"""Longest a fleet fill lock is held (seconds); it expires by itself if its holder dies."""
FLEET_WAIT = 2.0
"""How long a process waits for another process's fill before fetching itself."""
NOT_MODIFIED_KEPT = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "age", "via", "cache-status",
     "set-cookie"}
)
"""What a 304 to the client carries: the RFC 9110 §15.4.5 fields, plus Age, Via, Cache-Status,
and a Set-Cookie the origin sent this client (never stored, so never on a hit's 304)."""
ORIGIN_ONLY_FIELDS = spec.SURROGATE_HEADERS | {"age"}
"""Origin fields a client never gets from us: surrogate keys/controls, and an Age we recompute."""
REFRESH_STOP_TIMEOUT = 2.0
"""How long ``close`` waits for cancelled background refreshes to end."""
RENDERED_HITS = 16_384
"""Hot objects whose rendered hit header block is kept (the memo empties when full)."""


def keyed_url(policies: PolicySet, url: str) -> str:
    """``host/path?query`` of ``url`` as the policy matching it keys it (sorted, stripped…): what
    stored entries carry in ``CacheEntry.url``, so purges and invalidations find them."""
    host, slash, target = url.partition("/")
    head = RequestHead("GET", host, slash + target)
    return request_key(policies.match(host, "GET", head.path), head).url


@record
class Fetch:
    """One planned origin fetch: for which request, under which policy and key, what the cache
    may fall back on (a stale copy) and which validators to send."""

    inc: Incoming
    policy: Policy
    rk: RequestKey
    req_cc: Directives
    phase: CachePhase
    stale: CacheEntry | None = None
    conditional: Headers = ()
    forward_reason: str | None = None
    """Cache-Status ``fwd`` when the phase's own does not say why (``request``, RFC 9211 §2.2)."""
    lease: Lease | None = None
    """The fleet fill lock held for this fetch, released by the write that stores its result."""
    variant: bytes | None = None
    """The key of the Vary variant this fetch fills, once known: requests for one variant
    collapse together, not behind a fetch of another."""

    @property
    def home(self) -> bytes:
        """What concurrent fetches collapse on: the variant's key, else the URL's."""
        return self.variant or self.rk.hash


@record
class Answer:
    """What the origin said to a fetch, with the §4.2.3 timing the core needs."""

    response: UpstreamResponse
    head: ResponseHead
    request_time: float
    response_time: float
    origin_time: float


class _RenderedHit:
    """A hot L1 object's hit header block, rendered for one (Age, ttl) pair of whole seconds.

    Called, it says whether a reply made from this block may still be replayed: nothing such a
    hit depends on has changed since the block was rendered (the policy set, the bans, the
    ranker), and L1 still holds the object (looked up, so that eviction sees the hit). A change
    between rendering and a later reply only makes it stricter. Holds the object weakly:
    eviction must free it."""

    __slots__ = ("entry", "stamp", "fields", "cache_status", "_edge", "_key", "_policies", "_generation", "_personalize")

    def __init__(
        self, edge: Edge, entry: CacheEntry, key: bytes, stamp: tuple[int, int], fields: str, cache_status: CacheStatus
    ) -> None:
        self.entry = weakref.ref(entry)
        self.stamp = stamp
        self.fields = fields
        self.cache_status = cache_status
        self._edge, self._key = edge, key
        self._policies, self._generation, self._personalize = edge.policies(), edge.bans.generation, edge.personalize

    def __call__(self) -> bool:
        edge = self._edge
        held = edge.store.l1.get_nowait(self._key)
        return (held is not None and held is self.entry() and edge.bans.generation == self._generation
                and edge.policies() is self._policies and edge.personalize is self._personalize)


class Edge:
    """Owns the per-process caching machinery and answers requests with it."""

    def __init__(
        self,
        *,
        policies: Callable[[], PolicySet],
        store: TieredStore,
        upstream: Upstream,
        default_origin: OriginSettings,
        bans: BanList,
        max_object_lifetime: float = 86_400.0,
        fill_lock: FillLock | None = None,
        fleet_ready: Callable[[], bool] = lambda: True,
        hosts: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = policies
        """The policy set in force now (a reload swaps what this returns)."""
        self.store = store
        self.upstream = upstream
        self.default_origin = default_origin
        self.bans = bans
        self.collapser = Collapser()
        self.hit_for_miss = HitForMiss()
        self.max_object_lifetime = max_object_lifetime
        self.fill_lock = fill_lock
        self.fleet_ready = fleet_ready
        """False while Redis is known to be down: skip fleet locks instead of timing out on them."""
        self.hosts = hosts
        """Hosts this proxy serves (lower-case, no port); empty: any Host."""
        self.personalize: PersonalizeStage | None = None
        """Set once the ranker is loaded; until then lists are served in their base order."""
        self.clock = clock
        self.routes = RouteCache()
        self._rendered: dict[bytes, _RenderedHit] = {}
        """Per key: the hit block last rendered for its L1 object."""
        self._refreshing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ entry point

    def misdirected(self, host: str) -> bool:
        """RFC 9110 §15.5.20: a Host outside the configured list is not ours to answer (the
        origin may serve other virtual hosts that must not be reachable through us)."""
        if not self.hosts:
            return False
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower().rstrip(".") not in self.hosts

    async def handle(self, inc: Incoming) -> Reply:
        req = inc.head
        if self.misdirected(req.host):
            return self._error_reply(421, f"this proxy does not serve host {req.host!r}", CachePhase.BYPASS, "misdirected")
        route = self.routes.route(self.policies(), req)
        policy = route.policy
        settings = policy.personalize if self.personalize is not None else None
        if settings is None or req.method not in ("GET", "HEAD"):
            reply = await self._handle(inc, route)
        else:
            # The client's validators belong to its personalized copy, never to the base object
            # (they are not fields a route depends on, so the route stays the same); a Range is
            # ignored there (RFC 9110 §14.2 allows it): the ranked copy is sent whole.
            base_inc = replace(inc, head=replace(req, headers=tuple(
                (k, v) for k, v in req.headers if k not in hdrs.CONDITIONALS and k != "range")))
            reply = await self._handle(base_inc, route)
            if reply.entry is not None and reply.status == 200:
                reply = await self._personalized(req, reply, settings)
        if reply.origin_time is not None or reply.origin_error is not None:
            reply.origin = (policy.origin or self.default_origin).url
        return reply

    def answer_now(self, inc: Incoming) -> Reply | None:
        """The synchronous hit path: a fresh L1 hit answered without a coroutine; None sends
        the request down the full path (``handle``). Same rules, fewer awaits."""
        req = inc.head
        if self.hosts and self.misdirected(req.host):
            return None
        route = self.routes.route(self.policies(), req)
        rk = route.key
        if rk is None or (route.policy.personalize is not None and self.personalize is not None):
            return None
        now = self.clock()
        entry = self.store.l1.get_nowait(rk.hash)
        if not isinstance(entry, CacheEntry) or entry.key != rk.text or self.bans.verdict(entry) is not BanVerdict.NONE:
            return None
        cache_control = req.header("cache-control")
        if not isinstance(spec.decide_lookup(parse_cache_control(cache_control), entry, now), spec.Fresh):
            return None
        if spec.client_not_modified(req, entry) or req.header("range") is not None:
            return self._from_cache(req, entry, CachePhase.HIT, now, rk, tier=Tier.L1)
        # Request directives make freshness depend on the request; without them it is the
        # object's own, and the reply holds until Age or ttl tick over or anything changes.
        return self._rendered_hit(req, entry, now, rk, reusable=cache_control is None)

    def _rendered_hit(self, req: RequestHead, entry: CacheEntry, now: float, rk: RequestKey, *, reusable: bool) -> Reply:
        """A fresh L1 hit with its header block rendered at most once per second: the block
        changes only when the whole seconds of Age or of the Cache-Status ttl do (which is also
        how long a ``reusable`` reply may be replayed)."""
        age = spec.current_age(entry, now)
        ttl = entry.fresh_for - age
        stamp = (int(age), int(ttl))
        rendered = self._rendered.get(rk.hash)
        if rendered is None or rendered.entry() is not entry or rendered.stamp != stamp:
            reply = self._from_cache(req, entry, CachePhase.HIT, now, rk, tier=Tier.L1)
            assert reply.cache_status is not None
            if len(self._rendered) >= RENDERED_HITS:
                self._rendered.clear()
            rendered = _RenderedHit(self, entry, rk.hash, stamp, render_fields(reply.headers), reply.cache_status)
            self._rendered[rk.hash] = rendered
        return Reply(
            entry.status,
            [],
            body=entry.body,
            phase=CachePhase.HIT,
            key_hash=rk.hash,
            ttl=ttl,
            detail=Tier.L1.value,
            entry=entry,
            cache_status=rendered.cache_status,
            reuse=Reuse(now + min(1.0 - age % 1.0, ttl % 1.0), rendered) if reusable else None,
            fields=rendered.fields,
        )

    async def _handle(self, inc: Incoming, route: Route) -> Reply:
        req = inc.head
        policy = route.policy
        if route.bypass is not None:
            return await self._pass(inc, policy, route.bypass)
        rk = route.key
        assert rk is not None
        req_cc = parse_cache_control(req.header("cache-control"))
        entry, miss_phase, tier, variant = await self._lookup(rk, req)
        now = self.clock()
        decision = spec.decide_lookup(req_cc, entry, now)
        match decision:
            case spec.Fresh(entry=hit):
                return self._from_cache(req, hit, CachePhase.HIT, now, rk, tier=tier)
            case spec.StaleWhileRevalidate(entry=stale):
                self._refresh_in_background(inc, policy, rk, stale)
                return self._from_cache(req, stale, CachePhase.STALE_UPDATING, now, rk, tier=tier)
            case spec.Revalidate(entry=stale, conditional_headers=conditional, by_request=by_request):
                return await self._collapsed_fetch(
                    Fetch(inc, policy, rk, req_cc, CachePhase.EXPIRED, stale, conditional, _fwd(by_request), variant=variant)
                )
            case spec.Miss(phase=phase, stale=stale, by_request=by_request):
                phase = miss_phase if phase is CachePhase.MISS else phase
                return await self._collapsed_fetch(
                    Fetch(inc, policy, rk, req_cc, phase, stale, (), _fwd(by_request), variant=variant)
                )
            case spec.OnlyIfCachedMiss():
                return self._error_reply(504, "only-if-cached: no stored response fits", CachePhase.ONLY_IF_CACHED)

    async def _personalized(self, req: RequestHead, reply: Reply, settings: PersonalizeSettings) -> Reply:
        assert self.personalize is not None and reply.entry is not None and reply.cache_status is not None
        entry = reply.entry
        now = self.clock()
        if entry.prepared is None:
            # Entries promoted from L2 (or stored before the ranker loaded) are prepared once here.
            entry = self.personalize.prepare_entry(entry, settings)
            self.store.l1.put_nowait(key_hash(entry.key), entry, max(0.0, spec.storage_ttl(entry, now)))
        ranked = await self.personalize.rank(req, entry, settings, now)
        if ranked is None:
            # Nothing to rank: the shared representation goes out, and the client's own
            # validators (set aside for the ranked case) are answered against it.
            if spec.client_not_modified(req, entry):
                return replace(reply, status=304, headers=_not_modified(reply.headers), body=b"")
            return reply
        body, extra_headers, detail, elapsed = ranked
        status = replace(reply.cache_status, detail=f"{reply.cache_status.detail or reply.phase.value} {detail}")
        ttl = int(reply.ttl) if reply.ttl is not None and reply.ttl > 0 else 0
        # Never stored downstream as shared: this copy is for one user (issue: personalization).
        cache_control = f"private, max-age={ttl}" if ttl else "private, no-cache"
        headers = [(k, v) for k, v in reply.headers if k not in BASE_ONLY_FIELDS and k not in ("cache-status", "vary")]
        # RFC 9110 §12.5.5: this copy was selected by who the user is.
        vary = ", ".join(dict.fromkeys((*(vary_names(reply.entry.header("vary")) or ()), "cookie", settings.user_header)))
        headers += [*extra_headers, ("cache-control", cache_control), ("vary", vary), ("cache-status", status.render())]
        etag = extra_headers[0][1]
        inm = req.header("if-none-match")
        if inm is not None and spec.none_match_hits(inm, etag):
            return replace(reply, status=304, headers=_not_modified(headers), body=b"", cache_status=status, timings={"rank": elapsed})
        return replace(reply, headers=headers, body=body, cache_status=status, timings={**reply.timings, "rank": elapsed})

    # ------------------------------------------------------------ lookup

    async def _lookup(
        self, rk: RequestKey, req: RequestHead, *, joined: bool = True
    ) -> tuple[CacheEntry | None, CachePhase, Tier, bytes | None]:
        """The stored entry for ``req`` (None: a miss, of which phase), the tier that had it, and
        the key of its Vary variant when the variant index named one."""
        obj, tier = await self.store.get_with_tier(rk.hash, joined=joined)
        if obj is None:
            return None, CachePhase.MISS, Tier.NONE, None
        variant: bytes | None = None
        if isinstance(obj, VaryIndex):
            if obj.key != rk.text:
                return None, CachePhase.MISS, Tier.NONE, None
            variant_text = variant_key_text(rk.text, selecting_headers(obj.header_names, req))
            variant = key_hash(variant_text)
            obj, tier = await self.store.get_with_tier(variant, joined=joined)
            if not isinstance(obj, CacheEntry) or obj.key != variant_text:
                return None, CachePhase.VARY_MISS, Tier.NONE, variant
        elif obj.key != rk.text:
            # A real xxh3_128 collision: never serve another URL's object.
            return None, CachePhase.MISS, Tier.NONE, None
        entry = obj
        verdict = self.bans.verdict(entry)
        if verdict is BanVerdict.HARD:
            return None, CachePhase.MISS, Tier.NONE, variant
        if verdict is BanVerdict.SOFT:
            now = self.clock()
            # Soft purge: the object becomes stale now; stale windows count from here.
            entry = replace(entry, fresh_for=min(entry.fresh_for, spec.current_age(entry, now)), stored_at=now)
        return entry, CachePhase.MISS, tier, variant

    # ------------------------------------------------------------ fetching

    async def _collapsed_fetch(self, f: Fetch) -> Reply:
        marked = self.hit_for_miss.marked(f.rk.hash, self.clock())
        too_large = marked is NoCacheReason.TOO_LARGE
        if marked is not None and f.stale is None and (too_large or f.inc.head.method == "HEAD"):
            # Fetching it whole to store it is futile: too large (hit-for-pass: Range, validators
            # and HEAD go as the client sent them, so seeking in a big file fetches a part), or a
            # HEAD whose GET would be dropped mid-body with its connection (a later GET stores it).
            return await self._pass(f.inc, f.policy, "hit-for-pass" if too_large else "hit-for-miss")
        if marked is not None:
            # Recently uncacheable: no waiting on each other (checked only after the lookup,
            # so a usable stored object is never skipped because of one client's answer).
            return await self._fetch(replace(f, phase=CachePhase.HIT_FOR_MISS))
        pending = self.collapser.in_flight(f.home)
        if pending is not None:
            outcome = await asyncio.shield(pending)
            match outcome:
                case Filled(entry=entry) if self._usable_by(f.inc.head, f.rk, entry):
                    return self._from_cache(f.inc.head, entry, CachePhase.HIT, self.clock(), f.rk, collapsed=True)
                case Filled(entry=entry) if entry.vary and f.variant is None:
                    # The leader filled another variant: collapse with this variant's requests.
                    variant = key_hash(_request_variant(f.rk, f.inc.head, entry))
                    return await self._collapsed_fetch(replace(f, variant=variant))
                case Failed(error=error):
                    return self._origin_failed(f, error)
            return await self._fetch(f)
        with self.collapser.lead(f.home) as lead:
            if self.fill_lock is None or not self.fleet_ready():
                return await self._fetch(f, lead)
            return await self._fleet_collapsed_fetch(f, lead)

    async def _fleet_collapsed_fetch(self, f: Fetch, lead: Lead) -> Reply:
        """Collapsing across processes and PoPs sharing Redis: one fetches under a short fenced
        lock, the others wait briefly for it to fill L2, then go to the origin themselves, so
        a lost lock or a dead Redis can only cost an extra origin request, never a stall."""
        assert self.fill_lock is not None
        ttl = (f.policy.origin or self.default_origin).read_timeout
        token = await self.fill_lock.acquire(f.home, int(min(ttl, FLEET_LOCK_MAX) * 1000))
        lease = self.fill_lock.lease(f.home, token) if token is not None else None
        if token is None and await self.fill_lock.wait_released(f.home, FLEET_WAIT):
            # A read of our own still in flight may predate the fill the release announces.
            entry, _, tier, _ = await self._lookup(f.rk, f.inc.head, joined=False)
            if entry is not None and isinstance(spec.decide_lookup(f.req_cc, entry, self.clock()), spec.Fresh):
                lead.resolve(Filled(entry))
                return self._from_cache(f.inc.head, entry, CachePhase.HIT, self.clock(), f.rk, tier=tier, collapsed=True)
        try:
            return await self._fetch(replace(f, lease=lease), lead)
        finally:
            if lease is not None and not lease.released:  # nothing stored it: released on its own
                await self.fill_lock.release(f.home, lease.token)

    def _usable_by(self, req: RequestHead, rk: RequestKey, entry: CacheEntry) -> bool:
        """A collapsed waiter may only take the leader's object if it is the same variant."""
        if entry.key == rk.text:
            return True
        return bool(entry.vary) and entry.key == _request_variant(rk, req, entry)

    async def _fetch(self, f: Fetch, lead: Lead | None = None) -> Reply:
        req, rk, policy = f.inc.head, f.rk, f.policy
        origin = policy.origin or self.default_origin
        # HEAD misses are fetched as GET so the object can be stored (HEAD is then answered from it).
        headers = self._upstream_headers(f.inc, policy, drop_conditionals=True) + f.conditional
        request_time = self.clock()
        started = time.perf_counter()
        try:
            resp = await self.upstream.send(origin, "GET", rk.upstream_target, headers)
        except UpstreamError as error:
            self._resolve(lead, Failed(error))
            return self._origin_failed(f, error)
        response_time = self.clock()
        origin_time = time.perf_counter() - started
        head = ResponseHead(resp.status, spec.with_date(resp.headers, response_time))
        answer = Answer(resp, head, request_time, response_time, origin_time)

        if resp.status == 304 and f.conditional:
            resp.close()
            if f.stale is not None and spec.validator_matches(f.stale, head):
                return await self._revalidated(f, f.stale, answer, lead)
            # §4.3.3: a 304 that selects no stored response is useless to us, and the client
            # sent no precondition of its own (we dropped it): ask again without conditions.
            return await self._fetch(replace(f, conditional=()), lead)
        if resp.status == 304:
            # We sent no precondition, so a 304 carries nothing a client without a copy can use.
            resp.close()
            bogus = UpstreamError(UpstreamFailure.PROTOCOL, "origin answered 304 to an unconditional request")
            self._resolve(lead, Failed(bogus))
            return self._origin_failed(f, bogus)
        if (
            resp.status in STALE_IF_ERROR_STATUSES
            and f.stale is not None
            and spec.may_serve_stale_on_error(f.stale, response_time, f.req_cc)
        ):
            resp.close()
            self._resolve(lead, Uncacheable())
            return self._from_cache(
                req, f.stale, CachePhase.STALE, response_time, rk, fwd_status=resp.status, detail=f"origin-{resp.status}",
                forward_reason=f.forward_reason,
            )

        decision = spec.decide_store(req, f.req_cc, head, policy.rules, request_time=request_time, response_time=response_time)
        if isinstance(decision, spec.NoStore):
            return await self._stream_uncached(f, answer, decision.reason, lead)
        if resp.content_length is not None and resp.content_length > policy.rules.max_object_size:
            return await self._stream_uncached(f, answer, NoCacheReason.TOO_LARGE, lead)
        try:
            body, complete = await resp.read_up_to(policy.rules.max_object_size)
        except UpstreamError as error:
            # A body that breaks mid-stream is never stored (RFC 9111 §3.3 incomplete responses).
            self._resolve(lead, Failed(error))
            return self._origin_failed(f, error)
        if not complete:
            return await self._stream_uncached(f, answer, NoCacheReason.TOO_LARGE, lead, prefix=body)
        entry, not_stored = await self._store(policy, rk, req, head, body, decision, request_time, response_time, f.lease)
        self.hit_for_miss.forget(rk.hash)
        self._resolve(lead, Filled(entry))
        # The client whose request filled the cache gets the origin's own header fields
        # (including private="field" / Set-Cookie ones the stored copy leaves out).
        reply = self._from_cache(
            req, entry, f.phase, response_time, rk, fwd_status=resp.status, stored=not_stored is None,
            headers=head.headers, detail=not_stored, forward_reason=f.forward_reason,
        )
        reply.origin_time = origin_time
        return reply

    async def _revalidated(self, f: Fetch, stale: CacheEntry, answer: Answer, lead: Lead | None) -> Reply:
        """§4.3.3/§4.3.4: the origin confirmed our copy; freshen it with the 304's fields."""
        req, rk = f.inc.head, f.rk
        updated_headers = spec.merged_headers(stale, answer.head)
        merged_head = ResponseHead(stale.status, updated_headers)
        decision = spec.decide_store(
            req, f.req_cc, merged_head, f.policy.rules, request_time=answer.request_time, response_time=answer.response_time
        )
        if isinstance(decision, spec.NoStore):
            entry = replace(stale, fields=pack_fields(tuple((k, v) for k, v in updated_headers if k != "age")), fresh_for=0.0)
            await self._forget(rk, stale)
            self._resolve(lead, Uncacheable())
            return self._from_cache(
                req, entry, CachePhase.REVALIDATED, answer.response_time, rk, fwd_status=304, forward_reason=f.forward_reason
            )
        entry = spec.freshened(
            stale, updated_headers, decision, request_time=answer.request_time, response_time=answer.response_time
        )
        stored = await self._put(rk, entry, answer.response_time, f.lease)
        self._resolve(lead, Filled(entry))
        reply = self._from_cache(
            req, entry, CachePhase.REVALIDATED, answer.response_time, rk, fwd_status=304, stored=stored,
            forward_reason=f.forward_reason,
        )
        reply.origin_time = answer.origin_time
        return reply

    async def _stream_uncached(
        self, f: Fetch, answer: Answer, reason: NoCacheReason, lead: Lead | None, prefix: bytes = b""
    ) -> Reply:
        """Relay a response we do not store; waiters are released to fetch on their own."""
        resp = answer.response
        # What the origin says of the resource for everyone: not transient failures (5xx), errors
        # one client provoked for itself (400, 429, …) nor answers for this request or user alone.
        for_everyone = reason not in HFM_EXEMPT and resp.status < 500 and resp.status not in spec.POISONABLE
        if for_everyone:
            self.hit_for_miss.remember(f.rk.hash, self.clock() + f.policy.rules.hit_for_miss, reason)
            if f.stale is not None:
                # §4.3.3: a full response means the stored one is no longer suitable, stored or
                # not: left in place, stale-while-revalidate or stale-if-error would serve it again.
                await self._forget(f.rk, f.stale)
        self._resolve(lead, Uncacheable())
        status = CacheStatus(f.phase, fwd_status=resp.status, forward_reason=f.forward_reason, detail=reason.value)
        delivered = self._delivery_headers(answer.head.headers, status)
        code = resp.status
        if spec.answer_not_modified(f.inc.head, answer.head):
            delivered, code = _not_modified(delivered), 304
        reply = Reply(code, delivered, phase=f.phase, key_hash=f.rk.hash, detail=reason.value, origin_time=answer.origin_time)
        if code == 304 or f.inc.head.method == "HEAD":
            resp.close()
        else:
            reply.stream = _prepend(prefix, resp.rest())
        return reply

    # ------------------------------------------------------------ pass (no lookup)

    async def _pass(self, inc: Incoming, policy: Policy, reason: str) -> Reply:
        req = inc.head
        origin = policy.origin or self.default_origin
        headers = self._upstream_headers(inc, policy, drop_conditionals=False)
        # Bodies on GET/HEAD are never forwarded: they have no defined semantics (RFC 9110 §9.3.1)
        # and are a request-smuggling vector.
        body = inc.body if req.method not in ("GET", "HEAD") else None
        started = time.perf_counter()
        try:
            resp = await self.upstream.send(origin, req.method, req.target, headers, body)
        except UpstreamError as error:
            log.warning("origin failure passing %s %s: %s", req.method, req.path, error)
            reply = self._error_reply(error.status_hint, error.public_message, CachePhase.ERROR, detail=error.kind.value)
            reply.origin_error = error.kind.value
            return reply
        origin_time = time.perf_counter() - started
        head = ResponseHead(resp.status, resp.headers)
        self._invalidate(req, head)
        forward_reason = "method" if reason == "req_method" else "bypass"
        status = CacheStatus(CachePhase.BYPASS, fwd_status=resp.status, forward_reason=forward_reason, detail=reason)
        headers_out = self._delivery_headers(head.headers, status)
        if req.method == "HEAD":
            resp.close()
            return Reply(resp.status, headers_out, phase=CachePhase.BYPASS, detail=reason, origin_time=origin_time)
        return Reply(
            resp.status, headers_out, stream=resp.rest(), phase=CachePhase.BYPASS, detail=reason, origin_time=origin_time
        )

    def _invalidate(self, req: RequestHead, head: ResponseHead) -> None:
        """RFC 9111 §4.4: unsafe methods invalidate what they (may have) changed, in this process:
        each target URI as sent and as the matching policy keys it."""
        targets = spec.invalidation_targets(req, head, req.host)
        if targets:
            keyed = [keyed_url(self.policies(), target) for target in targets]
            self.bans.add(Ban.create(self.clock(), urls=[*targets, *keyed]))

    # ------------------------------------------------------------ background refresh

    def _refresh_in_background(self, inc: Incoming, policy: Policy, rk: RequestKey, stale: CacheEntry) -> None:
        """RFC 5861 §3: one refresh per key, detached from the client that triggered it."""
        refresh = Fetch(
            Incoming(head=inc.head, client=inc.client, scheme=inc.scheme), policy, rk, Directives(),
            CachePhase.EXPIRED, stale, spec.conditional_headers(stale), variant=_variant_key(stale),
        )
        if self.collapser.in_flight(refresh.home) is not None:
            return

        async def run() -> None:
            try:
                reply = await self._collapsed_fetch(refresh)
                if reply.stream is not None:
                    async for _ in reply.stream:
                        pass
            except Exception:  # a failed background refresh must never surface anywhere
                log.warning("background refresh failed", exc_info=True)

        task = asyncio.get_running_loop().create_task(run())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    # ------------------------------------------------------------ storing

    async def _store(
        self,
        policy: Policy,
        rk: RequestKey,
        req: RequestHead,
        head: ResponseHead,
        body: bytes,
        decision: spec.Store,
        request_time: float,
        response_time: float,
        lease: Lease | None,
    ) -> tuple[CacheEntry, str | None]:
        """Build the entry and store it; the second item says why it was not stored (None: it was)."""
        names = vary_names(head.header("vary")) or ()
        vary_pairs = selecting_headers(names, req) if names else ()
        key_text = variant_key_text(rk.text, vary_pairs) if names else rk.text
        entry = spec.new_entry(
            decision, key=key_text, status=head.status, body=body, vary=vary_pairs,
            request_time=request_time, response_time=response_time,
        )
        if policy.personalize is not None and self.personalize is not None:
            entry = self.personalize.prepare_entry(entry, policy.personalize)
        placement = self._placement(rk, entry, response_time)
        if not placement:
            # Stale on arrival with no validator and no stale window: nothing could ever use it.
            return entry, "expired-on-arrival"
        if not names:
            await self.store.put_many(placement, lease=lease)
            return entry, None
        variant = key_hash(key_text).hex()
        known = await self.store.get(rk.hash)
        variants = known.variants if isinstance(known, VaryIndex) and known.header_names == names else ()
        if variant not in variants:
            if len(variants) >= MAX_VARIANTS:
                # Serve it, but do not let one URL's Vary'd header fill the cache.
                return entry, "too-many-variants"
            variants = (*variants, variant)
        index = VaryIndex(
            key=rk.text, header_names=names, stored_at=response_time,
            fresh_for=self.max_object_lifetime, variants=variants,
        )
        # Index and variant in one L2 round trip, so a peer rarely finds one without the other.
        await self.store.put_many([(rk.hash, index, self.max_object_lifetime), *placement], lease=lease)
        return entry, None

    def _placement(self, rk: RequestKey, entry: CacheEntry, now: float) -> list[tuple[bytes, StoredObject, float]]:
        """Where and how long ``entry`` is kept (a variant under its own key); nothing when it is
        already too old to keep."""
        ttl = min(spec.storage_ttl(entry, now), self.max_object_lifetime)
        return [(_variant_key(entry) or rk.hash, entry, ttl)] if ttl > 0 else []

    async def _put(self, rk: RequestKey, entry: CacheEntry, now: float, lease: Lease | None = None) -> bool:
        """Store ``entry`` where it belongs; False when it is already too old to keep."""
        placement = self._placement(rk, entry, now)
        if placement:
            await self.store.put_many(placement, lease=lease)
        return bool(placement)

    async def _forget(self, rk: RequestKey, entry: CacheEntry) -> None:
        """Remove ``entry`` from where :meth:`_placement` keeps it (a variant, not its index)."""
        await self.store.delete(_variant_key(entry) or rk.hash)

    # ------------------------------------------------------------ replies

    def _from_cache(
        self,
        req: RequestHead,
        entry: CacheEntry,
        phase: CachePhase,
        now: float,
        rk: RequestKey,
        *,
        tier: Tier = Tier.NONE,
        fwd_status: int | None = None,
        stored: bool = False,
        collapsed: bool = False,
        detail: str | None = None,
        headers: Headers | None = None,
        forward_reason: str | None = None,
    ) -> Reply:
        """Deliver a stored response; ``headers`` (the origin's own fields, for the client whose
        request filled the cache) replaces its stored fields for this delivery."""
        ttl = spec.remaining_ttl(entry, now)
        hit_detail = detail or (tier.value if phase is CachePhase.HIT and tier is not Tier.NONE else None)
        status = CacheStatus(
            phase, fwd_status=fwd_status, ttl=ttl, stored=stored, collapsed=collapsed, forward_reason=forward_reason,
            detail=hit_detail,
        )
        # Stored fields already lack Age and the surrogate fields (spec drops them at store time).
        base = entry.headers if headers is None else [(k, v) for k, v in headers if k not in ORIGIN_ONLY_FIELDS]
        delivered = _finish([*base, ("age", str(int(spec.current_age(entry, now))))], status)
        if spec.client_not_modified(req, entry):
            return Reply(304, _not_modified(delivered), phase=phase, key_hash=rk.hash, ttl=ttl, detail=hit_detail)
        code, fields, body = entry.status, delivered, entry.body
        served: CacheEntry | None = entry
        wanted = spec.requested_range(req, entry)
        if wanted is not None:
            # RFC 9110 §14.2: one byte range served from the complete stored body.
            fields = [*delivered, ("content-range", wanted.content_range)]
            served = None  # a part is not a representation to personalize
            if isinstance(wanted, spec.ByteRange):
                code, body = 206, entry.body[wanted.first : wanted.last + 1]
            else:
                code, body = 416, b""
        return Reply(
            code,
            fields,
            body=body,
            phase=phase,
            key_hash=rk.hash,
            ttl=ttl,
            detail=hit_detail,
            collapsed=collapsed,
            entry=served,
            cache_status=status,
        )

    def _origin_failed(self, f: Fetch, error: UpstreamError) -> Reply:
        """The stale copy if it may answer this failure (RFC 5861 §4 stale-if-error, else RFC 9111
        §4.2.4 while disconnected from the origin), else 502/504."""
        now = self.clock()
        because = None
        status = error.status_hint
        if f.stale is not None:
            if spec.may_serve_stale_on_error(f.stale, now, f.req_cc):
                because = f"origin-{error.kind.value}"
            elif error.disconnected and spec.may_serve_stale_disconnected(f.stale, now):
                because = "disconnected"
            elif error.disconnected and f.stale.must_revalidate:
                status = 504  # §5.2.2.2: disconnected, it "SHOULD be 504 (Gateway Timeout)"
        if f.stale is not None and because is not None:
            reply = self._from_cache(
                f.inc.head, f.stale, CachePhase.STALE, now, f.rk, detail=because, forward_reason=f.forward_reason
            )
        else:
            log.warning("origin failure for key %s: %s", f.rk.hash.hex(), error)
            reply = self._error_reply(
                status, error.public_message, CachePhase.ERROR, error.kind.value,
                f.forward_reason or forwarded_because(f.phase),
            )
        reply.origin_error = error.kind.value
        return reply

    def _error_reply(
        self, status: int, message: str, phase: CachePhase, detail: str | None = None, forward_reason: str | None = None
    ) -> Reply:
        cache_status = CacheStatus(phase, forward_reason=forward_reason, detail=detail or phase.value)
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
            ("via", hdrs.VIA_VALUE),
            ("cache-status", cache_status.render()),
        ]
        return Reply(status, headers, body=f"{status} {message}\n".encode(), phase=phase, detail=detail)

    @staticmethod
    def _delivery_headers(headers: Headers, status: CacheStatus) -> list[tuple[str, str]]:
        """An origin response relayed unstored: its fields minus the surrogate ones, plus ours."""
        return _finish([(k, v) for k, v in headers if k not in spec.SURROGATE_HEADERS], status)

    # ------------------------------------------------------------ upstream request headers

    def _upstream_headers(self, inc: Incoming, policy: Policy, *, drop_conditionals: bool) -> Headers:
        head = inc.head
        drop = _not_forwarded(policy.key.headers, drop_conditionals)
        if connection := spec.connection_options(head.header("connection")):
            drop = drop | connection
        out = [(k, v) for k, v in head.headers if k not in drop]
        forwarded_for = head.header("x-forwarded-for")
        out.append(("x-forwarded-for", f"{forwarded_for}, {inc.client}" if forwarded_for else inc.client))
        out.append(("x-forwarded-proto", inc.scheme))
        # Edge Architecture 1.0: tell the origin we understand Surrogate-Control.
        out.append(spec.SURROGATE_CAPABILITY)
        # RFC 9110 §7.6.3: each intermediary appends itself to the Via chain.
        via = head.header("via")
        out.append(("via", f"{via}, {hdrs.VIA_VALUE}" if via else hdrs.VIA_VALUE))
        # A body of known length keeps it, so origins that refuse chunked uploads still work
        # (the server layer already validated the client's framing).
        length = head.header("content-length")
        if inc.body is not None and head.method not in ("GET", "HEAD") and length and length.isdigit():
            out.append(("content-length", length))
        return tuple(out)

    @staticmethod
    def _resolve(lead: Lead | None, outcome: Filled | Uncacheable | Failed) -> None:
        if lead is not None:
            lead.resolve(outcome)

    async def close(self, timeout: float = REFRESH_STOP_TIMEOUT) -> None:
        """Stop background refreshes, within ``timeout`` even if one talking to Redis loses its
        cancellation (``tasks.cancel_and_wait``)."""
        await cancel_and_wait(self._refreshing, timeout, what="background refresh")


@functools.lru_cache(maxsize=256)
def _not_forwarded(keyed: tuple[str, ...], drop_conditionals: bool) -> frozenset[str]:
    """Request fields never sent upstream (besides those Connection names): hop-by-hop, the ones
    we set ourselves, and cache-poisoning ones unless the policy keys on them. A cacheable miss
    also drops preconditions and Range: it fetches the whole representation for everyone, and
    the client's are answered from what we store (RFC 9110 §14.2 lets a cache ignore Range), so
    one Range request cannot make a hot key uncacheable."""
    drop = hdrs.HOP_BY_HOP | hdrs.PROXY_SET | (hdrs.POISONING_HEADERS - set(keyed))
    return drop | hdrs.CONDITIONALS | {"range"} if drop_conditionals else drop


def _variant_key(entry: CacheEntry) -> bytes | None:
    """The key a Vary variant is stored under; None for an entry kept under its URL's key."""
    return key_hash(entry.key) if entry.vary else None


def _request_variant(rk: RequestKey, req: RequestHead, entry: CacheEntry) -> str:
    """The variant key text ``req`` selects under the Vary fields ``entry`` was selected by."""
    return variant_key_text(rk.text, selecting_headers(tuple(name for name, _ in entry.vary), req))


def _fwd(by_request: bool) -> str | None:
    """RFC 9211 §2.2: ``request`` when a fresh stored response was refused by the request itself."""
    return "request" if by_request else None


def _finish(headers: list[tuple[str, str]], status: CacheStatus) -> list[tuple[str, str]]:
    """Append the fields every reply of ours carries (RFC 9110 §7.6.3 Via, RFC 9211 Cache-Status)."""
    headers.append(("via", hdrs.VIA_VALUE))
    headers.append(("cache-status", status.render()))
    return headers


def _not_modified(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k in NOT_MODIFIED_KEPT]


async def _prepend(prefix: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    async for chunk in rest:
        yield chunk
