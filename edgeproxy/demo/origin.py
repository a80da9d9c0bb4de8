"""The demo origin: a small catalog API of the kind a CDN fronts, with routes for every cache case.

Each route exercises one caching behaviour (shared freshness with stale extensions, validators and
304s, immutable assets, Vary, private responses, no-cache revalidation, errors on demand), and the
``/_control`` routes let tests and the demo fail the origin and count what reached it.

Bodies are precomputed and memoized per argument so the origin is never the bottleneck of a
benchmark: a request costs a dict lookup plus the conditional check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape

import uvloop
import xxhash
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from edgeproxy.cache.httpdate import format_http_date
from edgeproxy.cache.spec import none_match_hits
from edgeproxy.demo.catalog import CATEGORIES, EPOCH, Item, items_in, make_catalog

CATALOG_MODIFIED = EPOCH
"""The catalog is generated once and never edited, so every catalog response was last modified at
its creation (publication dates in the catalog may lie in the future and are not used here)."""

ITEMS_CACHE_CONTROL = "public, max-age=30, stale-while-revalidate=30, stale-if-error=300"
ITEM_PAGE_CACHE_CONTROL = "max-age=60"
STATIC_CACHE_CONTROL = "public, max-age=31536000, immutable"
BLOB_CACHE_CONTROL = "public, max-age=300"
GREETING_CACHE_CONTROL = "public, max-age=60"
SLOW_CACHE_CONTROL = "public, max-age=10"
NOT_FOUND_CACHE_CONTROL = "max-age=10"

DEFAULT_LIMIT, MAX_LIMIT = 20, 500
MIN_BLOB, MAX_BLOB = 2, 8 * 1024 * 1024
"""A blob is a JSON string: two quotes is the smallest one; 8 MiB bounds memory per body."""
MAX_DELAY = 30.0
CONTROL_PREFIX = "/_control/"

JSON = "application/json"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

GREETINGS = {"en": "Hello!", "fr": "Bonjour !", "de": "Hallo!"}
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class Representation:
    """A response body with the validators computed once (RFC 9110 §8.8)."""

    body: bytes
    content_type: str
    etag: str
    last_modified: int
    last_modified_text: str
    """``last_modified`` as an IMF-fixdate, formatted once rather than per response."""

    @classmethod
    def of(cls, body: bytes, content_type: str, last_modified: int = CATALOG_MODIFIED) -> Representation:
        """A strong ETag from the body hash: equal bodies, equal tags, on every origin process."""
        etag = f'"{xxhash.xxh3_64_hexdigest(body)}"'
        return cls(body, content_type, etag, last_modified, format_http_date(last_modified))


@dataclass(slots=True)
class OriginState:
    """Per-app mutable state: the failure switch and what reached the origin."""

    catalog_size: int
    failing: bool = False
    counter: int = 0
    next_uid: int = 0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(path, method) -> requests received, control routes excluded."""

    def reset(self) -> None:
        """Back to a fresh origin: not failing, counters at zero."""
        self.failing, self.counter, self.next_uid = False, 0, 0
        self.requests.clear()

    def stats(self) -> dict[str, object]:
        paths: dict[str, dict[str, int]] = {}
        for (path, method), n in sorted(self.requests.items()):
            paths.setdefault(path, {})[method] = n
        return {"total": sum(self.requests.values()), "failing": self.failing, "paths": paths}


STATE = web.AppKey("demo_origin_state", OriginState)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# --- representations, memoized per argument --------------------------------------------------


@lru_cache(maxsize=512)
def _items_list(catalog_size: int, category: str | None, limit: int) -> Representation:
    items = items_in(category, n_items=catalog_size)[:limit]
    return Representation.of(_json({"category": category, "items": [it.as_json() for it in items]}), JSON)


@lru_cache(maxsize=4096)
def _item_page(catalog_size: int, item_id: int) -> Representation | None:
    catalog = make_catalog(catalog_size)
    if not 1 <= item_id <= len(catalog):
        return None
    item: Item = catalog[item_id - 1]
    page = (
        f"<!doctype html><html><head><title>{escape(item.title)}</title>"
        '<link rel="stylesheet" href="/static/app.css"></head><body>'
        f"<h1>{escape(item.title)}</h1><p>Category: {escape(item.category)}</p>"
        f"<p>Price: {item.price:.2f}</p></body></html>"
    )
    return Representation.of(page.encode(), HTML)


STATIC_ASSETS: dict[str, Representation] = {
    "app.css": Representation.of(b"body{font-family:sans-serif;margin:2rem}h1{color:#235}\n", "text/css"),
    "app.js": Representation.of(b"document.documentElement.dataset.ready='1';\n", "application/javascript"),
    "logo.svg": Representation.of(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="7"/></svg>\n',
        "image/svg+xml",
    ),
}


@lru_cache(maxsize=16)
def _blob(size: int, seed: int) -> Representation:
    """Exactly ``size`` bytes of deterministic JSON (a string of base64 characters).

    At most 16 distinct blobs are kept (≤ 128 MiB); benchmarks use a handful of sizes.
    """
    n_chars = size - 2
    raw = random.Random(seed).randbytes(n_chars * 3 // 4 + 3)
    text = base64.b64encode(raw)[:n_chars]
    return Representation.of(b'"' + text + b'"', JSON)


GREETING_PAGES: dict[str, Representation] = {
    lang: Representation.of(_json({"language": lang, "greeting": text}), JSON)
    for lang, text in GREETINGS.items()
}


def negotiate_language(accept_language: str | None) -> str:
    """The supported language the client prefers most (RFC 9110 §12.5.4), English by default.

    Ranges match on the primary subtag (``fr-CH`` selects ``fr``); ``q=0`` means "not acceptable".
    """
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if primary in GREETINGS and q > best_q:
            best, best_q = primary, q
    return best


# --- responses -------------------------------------------------------------------------------


def not_modified(request: web.Request, etag: str | None, last_modified: float | None) -> bool:
    """Whether a GET/HEAD's preconditions say the client already holds this (RFC 9110 §13.2.2)."""
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None:
        return none_match_hits(if_none_match, etag)  # §13.1.2, the same rule the cache applies
    # §13.1.3: If-Modified-Since is evaluated only when If-None-Match is absent.
    since = request.if_modified_since
    return since is not None and last_modified is not None and last_modified <= since.timestamp()


def send(
    request: web.Request, rep: Representation, cache_control: str, extra: dict[str, str] | None = None
) -> web.Response:
    """A 200 with the representation, or a 304 when the client's validators still match."""
    headers = {
        hdrs.CACHE_CONTROL: cache_control,
        "ETag": rep.etag,  # aiohttp's hdrs.ETAG spells it "Etag"
        hdrs.LAST_MODIFIED: rep.last_modified_text,
        **(extra or {}),
    }
    if not_modified(request, rep.etag, rep.last_modified):
        # RFC 9110 §15.4.5: a 304 carries the ETag, Cache-Control and Vary a 200 would have had.
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = rep.content_type
    return web.Response(body=rep.body, headers=headers)


def _error(status: int, message: str, cache_control: str = "no-store") -> web.Response:
    return web.Response(
        status=status,
        body=_json({"error": message}),
        headers={hdrs.CONTENT_TYPE: JSON, hdrs.CACHE_CONTROL: cache_control},
    )


def _number_param(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"query parameter {name}={raw!r}: expected a number in [{low}, {high}]")
    return value


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = _number_param(request, name, default, low, high)
    if value != int(value):
        raise web.HTTPBadRequest(text=f"query parameter {name}={request.query[name]!r}: expected an integer")
    return int(value)


# --- handlers --------------------------------------------------------------------------------


async def items(request: web.Request) -> web.Response:
    category = request.query.get("category") or None
    if category is not None and category not in CATEGORIES:
        return _error(404, f"unknown category {category!r}; known: {', '.join(CATEGORIES)}", NOT_FOUND_CACHE_CONTROL)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    rep = _items_list(request.app[STATE].catalog_size, category, limit)
    surrogate = f"items items:{category}" if category else "items"
    return send(request, rep, ITEMS_CACHE_CONTROL, {"Surrogate-Key": surrogate})


async def item_page(request: web.Request) -> web.Response:
    raw_id = request.match_info["item_id"]
    rep = _item_page(request.app[STATE].catalog_size, int(raw_id)) if raw_id.isdigit() else None
    if rep is None:
        return _error(404, f"no item {raw_id!r}", NOT_FOUND_CACHE_CONTROL)
    return send(request, rep, ITEM_PAGE_CACHE_CONTROL, {"Surrogate-Key": f"item:{int(raw_id)}"})


async def static_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    rep = STATIC_ASSETS.get(name)
    if rep is None:
        return _error(404, f"no static asset {name!r}; known: {', '.join(STATIC_ASSETS)}", NOT_FOUND_CACHE_CONTROL)
    return send(request, rep, STATIC_CACHE_CONTROL)


async def blob(request: web.Request) -> web.Response:
    size = _int_param(request, "size", 1024, MIN_BLOB, MAX_BLOB)
    seed = _int_param(request, "seed", 0, 0, 2**31)
    return send(request, _blob(size, seed), BLOB_CACHE_CONTROL)


async def slow(request: web.Request) -> web.Response:
    delay = _number_param(request, "delay", 1.0, 0.0, MAX_DELAY)
    await asyncio.sleep(delay)
    return send(request, Representation.of(_json({"delay": delay}), JSON), SLOW_CACHE_CONTROL)


async def error(request: web.Request) -> web.Response:
    status = _int_param(request, "status", 503, 400, 599)
    return _error(status, f"error {status} on request")


async def greeting(request: web.Request) -> web.Response:
    language = negotiate_language(request.headers.get(hdrs.ACCEPT_LANGUAGE))
    extra = {"Vary": "Accept-Language", "Content-Language": language}
    return send(request, GREETING_PAGES[language], GREETING_CACHE_CONTROL, extra)


async def account(request: web.Request) -> web.Response:
    state = request.app[STATE]
    uid = request.cookies.get("uid")
    if uid is None:
        state.next_uid += 1
        uid = f"u{state.next_uid}"
    response = web.Response(
        body=_json({"uid": uid, "greeting": f"Welcome back, {uid}"}),
        headers={hdrs.CONTENT_TYPE: JSON, hdrs.CACHE_CONTROL: "private"},
    )
    response.set_cookie("uid", uid, path="/", httponly=True, samesite="Lax")
    return response


async def counter(request: web.Request) -> web.Response:
    """A value that changes on every request, so a cache must revalidate it each time (no-cache)."""
    state = request.app[STATE]
    state.counter += 1
    rep = Representation.of(_json({"count": state.counter}), JSON, last_modified=int(time.time()))
    return send(request, rep, "no-cache")


async def control_fail(request: web.Request) -> web.Response:
    try:
        on = (await request.json())["on"]
    except (ValueError, KeyError, TypeError):
        on = None
    if not isinstance(on, bool):
        raise web.HTTPBadRequest(text='expected a JSON body {"on": true} or {"on": false}')
    request.app[STATE].failing = on
    return web.json_response({"failing": on})


async def control_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats(), headers={hdrs.CACHE_CONTROL: "no-store"})


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


@web.middleware
async def count_and_fail(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request that reaches a route, and answer 503 for all of them while failing."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = request.app[STATE]
    state.requests[(request.path, request.method)] += 1
    if state.failing:
        return _error(503, 'origin failing on demand; POST /_control/fail {"on": false} to recover')
    return await handler(request)


def make_app(*, catalog_size: int = 2000) -> web.Application:
    """The demo origin application; each app has its own counters and failure switch."""
    app = web.Application(middlewares=[count_and_fail])
    app[STATE] = OriginState(catalog_size=catalog_size)
    app.router.add_get("/api/items", items)
    app.router.add_get("/items/{item_id}", item_page)
    app.router.add_get("/static/{name}", static_asset)
    app.router.add_get("/api/blob", blob)
    app.router.add_get("/slow", slow)
    app.router.add_get("/error", error)
    app.router.add_get("/greeting", greeting)
    app.router.add_get("/account", account)
    app.router.add_get("/counter", counter)
    app.router.add_post(CONTROL_PREFIX + "fail", control_fail)
    app.router.add_get(CONTROL_PREFIX + "stats", control_stats)
    app.router.add_post(CONTROL_PREFIX + "reset", control_reset)
    return app


async def start(host: str = "127.0.0.1", port: int = 0, *, catalog_size: int = 2000) -> web.AppRunner:
    """Start the origin in the running loop; ``runner.addresses[0]`` is the bound (host, port).

    The caller owns the runner and must ``await runner.cleanup()``.
    """
    runner = web.AppRunner(make_app(catalog_size=catalog_size), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def run(host: str, port: int) -> None:
    """Serve the demo origin until interrupted (``edgeproxy demo-origin --listen HOST:PORT``)."""
    web.run_app(make_app(), host=host, port=port, access_log=None, loop=uvloop.new_event_loop())
