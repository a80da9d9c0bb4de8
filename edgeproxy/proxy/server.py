"""The client side: aiohttp's low-level server (C llhttp parser, no router) feeding the Edge.

Only wire concerns live here: request sanity limits, converting to/from the core's records,
writing the reply, and aborting a connection whose body broke mid-stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from edgeproxy.cache.message import RequestHead
from edgeproxy.proxy.edge import Edge, Incoming, Reply
from edgeproxy.proxy.upstream import UpstreamError

log = logging.getLogger("edgeproxy.server")

ReplyHook = Callable[[Incoming, Reply, float], None]
"""Called once per request after the reply is written: metrics and access log."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Defaults in line with nginx/Varnish: 8 KiB request line and header field, 100 fields."""

    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 100
    keepalive_timeout: float = 75.0


def _bad_request(message: str, status: int = 400) -> web.Response:
    return web.Response(status=status, text=f"{status} {message}\n", headers={"Cache-Control": "no-store"})


def make_handler(
    edge: Edge,
    *,
    extra_routes: dict[str, Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]] | None = None,
    on_reply: ReplyHook | None = None,
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The request handler for ``web.Server``. ``extra_routes`` maps exact paths served by the
    edge itself (e.g. ``/_edge/feedback``) before any proxying."""
    routes = extra_routes or {}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        route = routes.get(request.path)
        if route is not None:
            return await route(request)
        host = request.headers.get("Host")
        if not host:
            # RFC 9112 §3.2: a request without Host (or with several) is rejected.
            return _bad_request("missing Host header")
        if len(request.headers.getall("Host")) > 1:
            return _bad_request("more than one Host header")
        head = RequestHead(
            method=request.method,
            host=host,
            target=request.raw_path,
            headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.raw_headers),
        )
        incoming = Incoming(
            head=head,
            client=request.remote or "-",
            scheme=request.scheme,
            body=request.content.iter_any() if request.body_exists else None,
        )
        reply = await edge.handle(incoming)
        response = await _write(request, reply, started)
        if on_reply is not None:
            on_reply(incoming, reply, time.perf_counter() - started)
        return response

    return handle


async def _write(request: web.BaseRequest, reply: Reply, started: float) -> web.StreamResponse:
    headers = CIMultiDict(reply.headers)
    headers.add("Server-Timing", _server_timing(reply, started))
    if reply.stream is None:
        return web.Response(status=reply.status, headers=headers, body=reply.body)
    # A streamed body is relayed with the origin's framing replaced by ours.
    headers.popall("Content-Length", None)
    response = web.StreamResponse(status=reply.status, headers=headers)
    await response.prepare(request)
    try:
        async for chunk in reply.stream:
            await response.write(chunk)
    except UpstreamError as error:
        # The origin body broke mid-stream: the client must see a broken response, never a
        # complete-looking short one, so the connection is aborted without the final chunk.
        log.warning("origin body broke mid-stream; aborting client connection: %s", error)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


def _server_timing(reply: Reply, started: float) -> str:
    """RFC-style Server-Timing metrics: what the cache did, and time spent at the origin."""
    parts = [f'cache;desc="{reply.phase.value}"']
    if reply.origin_time is not None:
        parts.append(f"origin;dur={reply.origin_time * 1000:.2f}")
    for name, seconds in reply.timings.items():
        parts.append(f"{name};dur={seconds * 1000:.3f}")
    parts.append(f"edge;dur={(time.perf_counter() - started) * 1000:.2f}")
    return ", ".join(parts)


def make_server(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], limits: ServerLimits) -> web.Server:
    # auto_decompress=False: request bodies are relayed to the origin exactly as sent.
    return web.Server(
        handler,
        access_log=None,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
        keepalive_timeout=limits.keepalive_timeout,
        auto_decompress=False,
    )
