"""The admin HTTP API on its own address: purge, reload, model rollout, health, stats, metrics.

Middlewares run in order: security headers, per-client rate limit, bearer token. Only ``/healthz``
(for orchestrator probes) and ``/`` (the status page shell, which holds no data and fetches
``/stats`` with the token) are served without a token; everything else needs
``Authorization: Bearer <token>`` when a token is configured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edgeproxy import metrics
from edgeproxy.admin.auth import bearer_matches
from edgeproxy.admin.control import (
    AdminControl,
    HealthState,
    ModelOutcome,
    PurgeOutcome,
    ReloadOutcome,
)
from edgeproxy.admin.payloads import InvalidPayload, parse_model_command, parse_purge
from edgeproxy.admin.ratelimit import RateLimit, RateLimiter, retry_after_header

if TYPE_CHECKING:
    # The protocol aiohttp checks ``middlewares=`` against (a plain Callable has positional-only
    # parameters, which it rejects).
    from aiohttp.typedefs import Middleware

audit = logging.getLogger("edgeproxy.admin.audit")
"""One JSON line per state-changing call: who (address), what, result."""

MAX_BODY = 64 * 1024
PUBLIC_PATHS = frozenset({"/", "/healthz"})

DEFAULT_RATE = RateLimit()
"""The admin API's default per-client limit; one shared instance is safe, ``RateLimit`` is frozen
(the buckets live in each app's ``RateLimiter``)."""

CONTROL = web.AppKey("control", AdminControl)
LIMITER = web.AppKey("limiter", RateLimiter)

PURGE_STATUS = {PurgeOutcome.FLEET: 200, PurgeOutcome.LOCAL: 200, PurgeOutcome.LOCAL_ONLY: 503}
"""LOCAL_ONLY is a 503 so scripts retry: other proxies in the fleet still hold the old objects."""
RELOAD_STATUS = {ReloadOutcome.RELOADED: 200, ReloadOutcome.UNCHANGED: 200, ReloadOutcome.REJECTED: 422}
MODEL_STATUS = {
    ModelOutcome.APPLIED: 200, ModelOutcome.UNKNOWN_MODEL: 404,
    ModelOutcome.UNKNOWN_VERSION: 404, ModelOutcome.REJECTED: 409, ModelOutcome.UNAVAILABLE: 503,
}
HEALTH_STATUS = {HealthState.OK: 200, HealthState.DEGRADED: 200, HealthState.FAILING: 503}
"""DEGRADED stays 200: with Redis down the proxy still serves (L1 + origin), and a 503 would make
the orchestrator restart every PoP at once for a dependency outage."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_admin_app(
    control: AdminControl,
    *,
    token: str | None,
    rate: RateLimit = DEFAULT_RATE,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """Build the admin app; serve it with ``web.AppRunner`` on the ``--admin`` address after
    :func:`edgeproxy.admin.auth.check_admin_bind` accepted that address. An empty ``token``
    means no token, exactly as ``check_admin_bind`` reads it."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[_security_headers, _rate_limit(clock), _require_token(token or None)],
    )
    app[CONTROL] = control
    app[LIMITER] = RateLimiter(rate)
    app.router.add_get("/", _status_page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/purge", _purge)
    app.router.add_post("/reload", _reload)
    app.router.add_post("/models/{model}", _model)
    return app


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _error(status: int, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Router and body-size errors (404, 405, 413) answer in the API's JSON shape.
        response = _error(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _rate_limit(clock: Callable[[], float]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Probes are exempt so a busy operator cannot get a PoP marked unhealthy; everything else,
        # including failed logins, is throttled, which also slows token guessing.
        if request.path != "/healthz":
            wait = request.app[LIMITER].acquire(_client(request), clock())
            if wait:
                return _error(429, "rate limit exceeded; slow down", **{"Retry-After": retry_after_header(wait)})
        return await handler(request)

    return middleware


def _require_token(token: str | None) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in PUBLIC_PATHS:
            return await handler(request)
        if not bearer_matches(request.headers.get("Authorization"), token):
            # RFC 6750 §3: a missing or wrong token is a 401 with a Bearer challenge.
            challenge = 'Bearer realm="edgeproxy-admin"'
            if "Authorization" in request.headers:
                challenge += ', error="invalid_token"'
                _audit("unauthorized", _client(request), {"method": request.method, "path": request.path})
            return _error(401, "missing or invalid bearer token", **{"WWW-Authenticate": challenge})
        return await handler(request)

    return middleware


async def _json_body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        raise InvalidPayload("empty body; send a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPayload(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


async def _purge(request: web.Request) -> web.Response:
    client = _client(request)
    try:
        purge = parse_purge(await _json_body(request), client)
    except InvalidPayload as exc:
        _audit("purge", client, {"rejected": exc.reason})
        return _error(400, exc.reason)
    result = await request.app[CONTROL].purge(purge)
    _audit("purge", client, {
        "urls": purge.urls, "prefixes": purge.prefixes, "tags": purge.tags, "all": purge.all,
        "soft": purge.soft, "outcome": result.outcome.value, "selectors": result.selectors,
    })
    return web.json_response(
        {"outcome": result.outcome.value, "selectors": result.selectors, "detail": result.detail},
        status=PURGE_STATUS[result.outcome],
    )


async def _reload(request: web.Request) -> web.Response:
    result = await request.app[CONTROL].reload_policies()
    _audit("reload", _client(request), {"outcome": result.outcome.value, "version": result.version})
    return web.json_response(
        {"outcome": result.outcome.value, "version": result.version, "detail": result.detail},
        status=RELOAD_STATUS[result.outcome],
    )


async def _model(request: web.Request) -> web.Response:
    client = _client(request)
    try:
        command = parse_model_command(request.match_info["model"], await _json_body(request), client)
    except InvalidPayload as exc:
        return _error(400, exc.reason)
    result = await request.app[CONTROL].model_command(command)
    _audit("model", client, {
        "model": command.model, "action": command.action.value, "version": command.version,
        "share": command.share, "outcome": result.outcome.value,
    })
    return web.json_response(
        {"outcome": result.outcome.value, "active_version": result.active_version, "detail": result.detail},
        status=MODEL_STATUS[result.outcome],
    )


async def _healthz(request: web.Request) -> web.Response:
    report = request.app[CONTROL].health()
    return web.json_response(
        {"state": report.state.value, "checks": dict(report.checks)}, status=HEALTH_STATUS[report.state],
    )


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[CONTROL].stats()))


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CONTROL].metrics(), headers={"Content-Type": metrics.CONTENT_TYPE})


def _audit(action: str, client: str, what: dict[str, Any]) -> None:
    audit.info(json.dumps({"event": action, "client": client, **what}, default=list, sort_keys=True))


def _load_status_page() -> tuple[bytes, str]:
    """The page and a Content-Security-Policy that allows exactly its own inline script and style
    (by hash), same-origin fetches, and nothing else: no external assets, no framing."""
    html = resources.files("edgeproxy.admin").joinpath("static/status.html").read_text("utf-8")

    def digest(tag: str) -> str:
        match = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        if match is None:
            raise RuntimeError(f"status.html lost its <{tag}> block")
        return "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() + "'"

    csp = (
        f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html.encode("utf-8"), csp


_STATUS_PAGE, _STATUS_CSP = _load_status_page()


async def _status_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_STATUS_PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _STATUS_CSP, "Referrer-Policy": "no-referrer"},
    )
